"""Texts of the messages accounts sends to people, in English and Simplified Chinese."""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class Notice:
    subject: str
    body: str


def pick_language(accept_language: str | None, explicit: str | None = None) -> str:
    """``en`` or ``zh`` from an explicit choice or the Accept-Language header (highest q wins)."""
    if explicit in LANGUAGES:
        return explicit
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


def registration_code(language: str, code: str, minutes: int) -> Notice:
    if language == "zh":
        return Notice(
            "您的 classguard 验证码",
            f"您的 classguard 注册验证码是 {code}，{minutes} 分钟内有效，只能使用一次。"
            "如果这不是您本人的操作，请忽略此消息。",
        )
    return Notice(
        "Your classguard code",
        f"Your classguard registration code is {code}. It expires in {minutes} minutes and works once. "
        "If you did not try to register, ignore this message.",
    )


def someone_tried_to_register(language: str) -> Notice:
    if language == "zh":
        return Notice(
            "有人尝试用您的地址注册 classguard",
            "有人尝试用此地址注册新的 classguard 账户，但此地址已经有账户了。"
            "如果是您本人，请直接登录。如果不是，您无需任何操作，您的账户没有任何变化。",
        )
    return Notice(
        "Someone tried to register with your address",
        "Someone tried to create a new classguard account with this address, which already has an account. "
        "If it was you, just sign in. If not, there is nothing to do: your account is unchanged.",
    )
