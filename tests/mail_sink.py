"""A real local SMTP server (aiosmtpd) that keeps what it receives, for tests that read mail."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller

from classguard.cli.common import free_port

CODE_RE = re.compile(r"\b(\d{6})\b")


@dataclass
class Received:
    to: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        assert isinstance(self.message, EmailMessage)
        part = self.message.get_body(("plain",))
        assert isinstance(part, EmailMessage)
        return str(part.get_content())


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.received.append(Received([str(t).lower() for t in envelope.rcpt_tos], msg))
        return "250 Message accepted for delivery"


class MailSink:
    """``with MailSink() as sink:`` — an SMTP server on 127.0.0.1:``sink.port``."""

    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _Handler()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def settings(self) -> dict[str, Any]:
        """Settings overrides that send the app's mail here."""
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_starttls": False}

    def env(self) -> dict[str, str]:
        return {"CLASSGUARD_SMTP_HOST": "127.0.0.1", "CLASSGUARD_SMTP_PORT": str(self.port),
                "CLASSGUARD_SMTP_STARTTLS": "false"}

    def messages_to(self, address: str) -> list[Received]:
        with self._handler.lock:
            return [m for m in self._handler.received if address.lower() in m.to]

    def wait_for(self, address: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        """The messages to ``address`` once there are ``count`` of them (blocking; from a test thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages_to(address)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no mail to {address} within {timeout} s")

    async def await_for(self, address: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        """``wait_for`` for async tests (does not block the event loop that sends the mail)."""
        import asyncio

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages_to(address)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no mail to {address} within {timeout} s")


def code_in(message: Received) -> str:
    found = CODE_RE.search(message.text)
    assert found, message.text
    return found.group(1)
