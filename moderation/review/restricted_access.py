"""Access to decisions and appeals for users whose account is restricted.

A suspension or ban ends the user's sessions and refuses new logins (accounts), yet the user
must still be able to read why and to appeal (EU DSA Art. 20: the complaint system stays open
to restricted users). Such a user proves their credentials here and receives a short-lived
token that is good only for ``/api/v1/me/decisions`` and ``/api/v1/appeals``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from accounts import repository as accounts_repo
from accounts import service as accounts
from accounts.models import User, UserStatus
from moderation.review import repository as repo
from moderation.review.models import AppealSession
from storage.db import utcnow
from storage.errors import Conflict, Unauthorized
from storage.runtime import get_runtime

TTL = timedelta(hours=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(session: AsyncSession, identifier: str, password: str, ip: str | None,
                       user_agent: str | None) -> tuple[str, datetime]:
    """A decisions-and-appeals token for a restricted account; 409 for an account that is not
    restricted (it logs in normally). Credentials, throttling and failure counting are the
    ordinary login's (``accounts.service.check_credentials``)."""
    creds = await accounts.check_credentials(get_runtime(), identifier, password, ip)
    user = await accounts_repo.get_user(session, creds.user_id)
    if user is None or user.status == UserStatus.cancelled.value:
        raise Unauthorized("wrong e-mail/phone or password")
    try:
        accounts.check_not_restricted(user, utcnow())
    except accounts.AccountRestricted:
        await accounts.credentials_succeeded(session, creds)
        token = secrets.token_urlsafe(32)
        expires = utcnow() + TTL
        await repo.add(session, AppealSession(user_id=user.id, token_hash=token_hash(token), expires_at=expires))
        return token, expires
    raise Conflict("this account is not restricted; log in normally")


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    """The restricted user behind a live appeal token, or None."""
    found = await repo.appeal_session_by_hash(session, token_hash(token))
    if found is None or found.expires_at <= utcnow():
        return None
    user = await accounts_repo.get_user(session, found.user_id)
    if user is None or user.status == UserStatus.cancelled.value:
        return None
    return user
