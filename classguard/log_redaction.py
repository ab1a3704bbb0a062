"""Keep secrets in query strings out of the logs.

Uvicorn's access log prints each request line with its query string, and WebSocket clients
(browsers cannot set headers there) carry credentials in it. ``RedactSecrets`` rewrites the
value of every query parameter whose name says it is a secret (``token``, ``ticket``, ``code``,
``password``, ``key``, ``signature`` …) to ``[redacted]``, in the message and its arguments,
before any handler formats the record. ``install`` puts it on every handler that
``classguard serve`` logs through (ours and uvicorn's), so no logger can bypass it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
# Parameter names (case-insensitive, also as a suffix: access_token, X-Amz-Signature, api_key).
SECRET_NAMES = ("token", "ticket", "code", "password", "passwd", "secret", "key", "signature", "sig",
                "credential", "auth", "session")
_SECRET_PARAM = re.compile(
    r"(?P<lead>[?&;](?:[A-Za-z0-9_.\-]*[_.\-])?(?:" + "|".join(SECRET_NAMES) + r")=)(?P<value>[^&;#\s\"']*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the values of secret query parameters replaced by ``[redacted]``."""
    return _SECRET_PARAM.sub(lambda m: m.group("lead") + REDACTED, text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) and ("=" in value) else value


class RedactSecrets(logging.Filter):
    """A handler filter that never drops a record, only rewrites secret query values in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        return True


_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "classguard")


def install() -> RedactSecrets:
    """Add the filter to every handler of the root, uvicorn and classguard loggers (call it after
    logging is configured, i.e. after uvicorn's ``Config`` set up its handlers)."""
    flt = RedactSecrets()
    for name in _LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(flt)
    return flt
