"""How messages leave: e-mail over SMTP, SMS through a small provider interface.

The embedded default for SMS is no provider at all: texts stay in the outbox table, where an
operator reads them (`classguard outbox list`). A real gateway is a class with ``async send``
named by the ``sms_provider`` setting as ``module:attribute``.
"""

from __future__ import annotations

import importlib
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

from classguard.settings import Settings


class SmsProvider(Protocol):
    async def send(self, to: str, text: str) -> None: ...


def sms_provider(settings: Settings) -> SmsProvider | None:
    """The configured SMS gateway, or None for the outbox default."""
    name = settings.sms_provider.strip()
    if name in ("", "outbox"):
        return None
    module, _, attr = name.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    provider: SmsProvider = factory(settings)
    return provider


def mail_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def send_mail(settings: Settings, to: str, subject: str, body: str) -> None:
    """Send one plain-text UTF-8 e-mail (blocking: call it from a thread)."""
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="classguard")
    msg.set_content(body, charset="utf-8")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(msg)
