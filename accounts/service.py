"""Rules of accounts: registration, login sessions, throttling, restrictions.

Services flush, never commit; the request (or unit of work) commits at the edge.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from accounts import repository as repo
from accounts import throttle
from accounts.events import SignOut, SignOutReason, announce_sign_out
from accounts.models import PHONE_CT_CONTEXT, AuthSession, GuardianConsent, Role, User, UserStatus
from accounts.passwords import DUMMY_HASH, HashPool, hash_password, weakness
from accounts.schemas import GuardianConsentIn, UserOut
from classguard.settings import Settings
from storage.db import unit_of_work, utcnow
from storage.errors import AppError, Conflict, Forbidden, NotFound, ServiceUnavailable, Unauthorized, Unprocessable
from storage.runtime import Runtime, get_runtime

PHONE_CONTEXT = "users.phone"
ADULT_AGE = 18


class AccountRestricted(AppError):
    status, error = 403, "AccountRestricted"


def normalise_email(raw: str) -> str:
    try:
        info = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise Unprocessable(f"invalid e-mail address: {exc}") from exc
    return info.normalized.lower()


def normalise_phone(raw: str) -> str:
    """E.164 form of a phone number given in international format."""
    try:
        num = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise Unprocessable(f"invalid phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(num):
        raise Unprocessable("invalid phone number: not a valid number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def age_on(dob: date, today: date) -> int:
    return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))


def phone_bidx(e164: str) -> str:
    return get_runtime().cipher.blind_index(e164, PHONE_CONTEXT)


@dataclass
class NewUser:
    password: str
    display_name: str
    date_of_birth: date
    role: Role = Role.student
    email: str | None = None
    phone: str | None = None
    region: str | None = None
    guardian: GuardianConsentIn | None = None
    language: str = "en"


@dataclass
class CheckedUser:
    """A new account's form after validation: canonical contact, region, age."""

    new: NewUser
    email: str | None
    phone: str | None
    region: str
    age: int


def check_new_user(settings: Settings, new: NewUser) -> CheckedUser:
    """Validate contact, password and age rules (no database: answers the same for everyone)."""
    if not new.email and not new.phone:
        raise Unprocessable("an e-mail address or a phone number is required")
    email = normalise_email(new.email) if new.email else None
    phone = normalise_phone(new.phone) if new.phone else None
    personal = [new.display_name, (email or "").split("@")[0], (phone or "")[-6:]]
    if why := weakness(new.password, settings.min_password_length, personal):
        raise Unprocessable(why)
    today = utcnow().date()
    if new.date_of_birth > today:
        raise Unprocessable("date of birth is in the future")
    age = age_on(new.date_of_birth, today)
    if age > 120:
        raise Unprocessable("date of birth is implausible")
    if new.role == Role.teacher and age < ADULT_AGE:
        raise Unprocessable("teachers must be at least 18 years old")
    if age < ADULT_AGE and (new.guardian is None or not new.guardian.consent):
        raise Unprocessable("students under 18 need a guardian's consent (field 'guardian' with consent=true)")
    region = new.region or settings.default_region
    if region not in settings.regions:
        raise Unprocessable(f"unknown region {region!r}; one of {', '.join(settings.regions)}")
    return CheckedUser(new, email, phone, region, age)


async def existing_owner(session: AsyncSession, email: str | None, phone: str | None) -> User | None:
    """The account that already has this e-mail address or phone number, if any (both are looked
    up either way, so the time taken does not tell which)."""
    by_email = await repo.get_user_by_email(session, email or "")
    by_phone = await repo.get_user_by_phone_bidx(session, phone_bidx(phone or ""))
    return by_email or by_phone


async def register(session: AsyncSession, settings: Settings, new: NewUser) -> User:
    """Create a verified account directly (operators' CLI, tests); self-registration goes through
    ``accounts.registration`` and its one-time code instead."""
    checked = check_new_user(settings, new)
    if checked.email and await repo.get_user_by_email(session, checked.email):
        raise Conflict("an account with this e-mail address already exists")
    if checked.phone and await repo.get_user_by_phone_bidx(session, phone_bidx(checked.phone)):
        raise Conflict("an account with this phone number already exists")
    return await create_user(session, checked, hash_password(new.password))


async def create_user(session: AsyncSession, checked: CheckedUser, password_hash: str) -> User:
    """Insert the account (and its guardian's consent) for a validated form."""
    new = checked.new
    user = User(
        id=uuid.uuid4(),
        email=checked.email,
        phone_bidx=phone_bidx(checked.phone) if checked.phone else None,
        password_hash=password_hash,
        display_name=new.display_name,
        date_of_birth=new.date_of_birth,
        role=new.role.value,
        status=UserStatus.active.value,
        region=checked.region,
        language=new.language if new.language in ("en", "zh") else "en",
    )
    if checked.phone:
        user.phone_ct = get_runtime().cipher.encrypt(checked.phone.encode(), PHONE_CT_CONTEXT.format(pk=user.id))
    await repo.add(session, user)
    if checked.age < ADULT_AGE and new.guardian is not None:
        g = new.guardian
        await repo.add(session, GuardianConsent(
            user_id=user.id, guardian_name=g.guardian_name, guardian_contact=g.guardian_contact,
            relationship=g.relationship,
        ))
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def canonical_identifier(identifier: str) -> tuple[str, str]:
    """(kind, canonical form) of a login identifier: every spelling of one address is one form.

    E-mail addresses are normalised; phone numbers become E.164 (``tel:+1-415-…``, ``+1*415*…``,
    brackets, a trailing ``;`` …); anything else is lowered and stripped of punctuation.
    """
    ident = identifier.strip()
    try:
        if "@" in ident:
            return "email", normalise_email(ident)
        return "phone", normalise_phone(ident)
    except Unprocessable:
        return "other", re.sub(r"[^0-9a-z@+]", "", ident.lower())


async def _find_by_canonical(session: AsyncSession, kind: str, value: str) -> User | None:
    if kind == "email":
        return await repo.get_user_by_email(session, value)
    if kind == "phone":
        return await repo.get_user_by_phone_bidx(session, phone_bidx(value))
    return None


def hash_pool(rt: Runtime) -> HashPool:
    """The process's argon2 threads (one pool per runtime)."""
    pool = rt.extras.get("password_hash_pool")
    if pool is None:
        pool = HashPool(rt.settings.password_hash_workers, rt.settings.password_hash_queue_max)
        rt.extras["password_hash_pool"] = pool
    assert isinstance(pool, HashPool)
    return pool


def check_not_restricted(user: User, now: datetime) -> None:
    """Raise 403 when the user is banned, cancelled or suspended right now."""
    if user.status == UserStatus.banned.value:
        raise AccountRestricted("this account is banned")
    if user.status == UserStatus.cancelled.value:
        raise AccountRestricted("this account is cancelled")
    if user.status == UserStatus.suspended.value and (user.suspended_until is None or user.suspended_until > now):
        until = user.suspended_until.isoformat() if user.suspended_until else "further notice"
        raise AccountRestricted(f"this account is suspended until {until}")


@dataclass
class Credentials:
    """Credentials that checked out: whose they are, and the throttle rules they were reserved under."""

    user_id: uuid.UUID
    rules: list[throttle.Rule]


async def check_credentials(rt: Runtime, identifier: str, password: str, ip: str | None) -> Credentials:
    """Throttle, then check a password; 401 when wrong, 429 when throttled, 503 when overloaded.

    Short transactions around the password check, on purpose: a lookup, then the throttle's
    reservation, committed (so it counts even though the request then answers 401). No
    connection is held while argon2 runs, and a request never holds two. The caller gives the
    reservation back with ``credentials_succeeded`` once it has let the user in.
    """
    settings = rt.settings
    pool = hash_pool(rt)
    if not pool.has_room():
        raise ServiceUnavailable("too many sign-ins at once; try again in a moment")
    now = utcnow()
    kind, canonical = canonical_identifier(identifier)
    address = throttle.address_key(ip)
    async with unit_of_work(rt.sessionmaker) as session:
        user = await _find_by_canonical(session, kind, canonical)
        if user is not None:
            account = throttle.account_key_for_user(user.id)
            since = now - timedelta(days=settings.login_known_address_days)
            known = ip is not None and await repo.signed_in_from(session, user.id, ip, since)
        else:
            account, known = throttle.account_key_for_identifier(f"{kind}:{canonical}"), False
        user_id, stored_hash = (user.id, user.password_hash) if user else (None, DUMMY_HASH)
    rules = throttle.login_rules(settings, account, address, known)
    started = await throttle.reserve(rt, rules, now)
    if not await pool.verify(stored_hash, password) or user_id is None:
        await throttle.failed(rt, started)
        raise Unauthorized("wrong e-mail/phone or password")
    return Credentials(user_id, rules)


async def credentials_succeeded(session: AsyncSession, creds: Credentials) -> None:
    await throttle.succeeded(session, creds.rules)


async def login(
    rt: Runtime, identifier: str, password: str, ip: str | None = None, user_agent: str | None = None,
) -> tuple[str, AuthSession, User]:
    """Check credentials and open a session. Returns the plain token (shown once) and its row."""
    creds = await check_credentials(rt, identifier, password, ip)
    now = utcnow()
    async with unit_of_work(rt.sessionmaker) as session:
        found = await repo.get_user(session, creds.user_id)
        if found is None:
            raise Unauthorized("wrong e-mail/phone or password")
        check_not_restricted(found, now)
        if found.status == UserStatus.suspended.value:  # suspension has run out
            found.status = UserStatus.active.value
            found.suspended_until = None
        await credentials_succeeded(session, creds)
        token = secrets.token_urlsafe(32)
        row = AuthSession(
            user_id=found.id, token_hash=_token_hash(token),
            expires_at=now + timedelta(seconds=rt.settings.session_ttl_seconds),
            ip=ip, user_agent=(user_agent or "")[:300] or None,
        )
        await repo.add(session, row)
    return token, row, found


async def authenticate(session: AsyncSession, token: str) -> tuple[AuthSession, User]:
    """The live session and user behind a token, or 401/403."""
    return _still_valid(await repo.get_session_by_hash(session, _token_hash(token)))


async def authenticate_session_id(session: AsyncSession, auth_session_id: uuid.UUID) -> tuple[AuthSession, User]:
    """Like ``authenticate`` for a token known by its row id (what a join ticket names): the
    token must still be valid and the account not restricted, right now."""
    return _still_valid(await repo.get_session_by_id(session, auth_session_id))


def _still_valid(found: tuple[AuthSession, User] | None) -> tuple[AuthSession, User]:
    now = utcnow()
    if found is None:
        raise Unauthorized("invalid session token")
    auth, user = found
    if auth.revoked_at is not None or auth.expires_at <= now:
        raise Unauthorized("session expired or logged out")
    check_not_restricted(user, now)
    return auth, user


async def logout(session: AsyncSession, auth: AuthSession) -> None:
    """Revoke one token; after commit, whatever it holds open (live connections) is closed."""
    await repo.revoke_session(session, auth.id, utcnow())
    announce_sign_out(session, SignOut(auth.user_id, SignOutReason.logout, auth.id))


async def suspend(session: AsyncSession, user_id: uuid.UUID, until: datetime | None) -> User:
    """Suspend until ``until`` (None: indefinitely) and end the user's open sessions."""
    user = await get_user_or_404(session, user_id)
    if user.status != UserStatus.banned.value:
        user.status = UserStatus.suspended.value
        user.suspended_until = until
    await repo.revoke_user_sessions(session, user_id, utcnow())
    await session.flush()
    announce_sign_out(session, SignOut(user_id, SignOutReason.suspended))
    return user


async def ban(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await get_user_or_404(session, user_id)
    user.status = UserStatus.banned.value
    user.suspended_until = None
    await repo.revoke_user_sessions(session, user_id, utcnow())
    await session.flush()
    announce_sign_out(session, SignOut(user_id, SignOutReason.banned))
    return user


async def reinstate(session: AsyncSession, user_id: uuid.UUID) -> User:
    """Lift a suspension or ban (e.g. an appeal was upheld for the user)."""
    user = await get_user_or_404(session, user_id)
    if user.status in (UserStatus.suspended.value, UserStatus.banned.value):
        user.status = UserStatus.active.value
        user.suspended_until = None
    await session.flush()
    return user


async def get_user_or_404(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repo.get_user(session, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


def decrypt_phone(user: User) -> str | None:
    if user.phone_ct is None:
        return None
    return get_runtime().cipher.decrypt(user.phone_ct, PHONE_CT_CONTEXT.format(pk=user.id)).decode()


def to_out(user: User) -> UserOut:
    return UserOut(
        id=user.id, email=user.email, phone=decrypt_phone(user), display_name=user.display_name,
        date_of_birth=user.date_of_birth, role=Role(user.role), status=user.status,
        suspended_until=user.suspended_until, region=user.region, created_at=user.created_at,
    )


def require_role(user: User, *roles: Role) -> None:
    if user.role not in {r.value for r in roles}:
        raise Forbidden(f"requires role {' or '.join(r.value for r in roles)}")




async def staff_read_user(session: AsyncSession, staff: User, user_id: uuid.UUID, reason: str) -> UserOut:
    """A staff member reads a user's contact data; the read is written to the access log first."""
    from storage.access_log.service import record_access

    user = await get_user_or_404(session, user_id)
    await record_access(
        session, actor_id=staff.id, actor_role=staff.role, action="read", resource_type="user_contact",
        resource_id=str(user.id), subject_id=user.id, reason=reason,
    )
    return to_out(user)


async def list_users(
    session: AsyncSession, admin: User, role: Role | None, status: UserStatus | None, limit: int, offset: int
) -> list[User]:
    """Accounts for an admin; each account listed gets an access-log entry (names, roles, states)."""
    from storage.access_log.service import record_reads

    users = await repo.list_users(session, role.value if role else None, status.value if status else None,
                                  limit, offset)
    await record_reads(session, actor_id=admin.id, actor_role=admin.role, resource_type="user_list",
                       resource_id="users", subject_ids=[u.id for u in users if u.id != admin.id],
                       reason="admin list of accounts")
    return users


async def cancel_account(session: AsyncSession, user: User, password: str) -> None:
    """Cancel the account: anonymise it, end its sessions, detach it from the access log, and
    let every domain delete or anonymise its data (privacy promise 5)."""
    from accounts.events import cancellation_hooks  # filled by the composition root
    from storage.access_log.service import detach_person

    if not await hash_pool(get_runtime()).verify(user.password_hash, password):
        raise Unauthorized("password does not match")
    now = utcnow()
    user.email = None
    user.phone_ct = None
    user.phone_bidx = None
    user.display_name = "Deleted user"
    user.password_hash = hash_password(secrets.token_urlsafe(32))
    user.status = UserStatus.cancelled.value
    user.cancelled_at = now
    user.suspended_until = None
    await repo.revoke_user_sessions(session, user.id, now)
    await repo.delete_guardian_consents(session, user.id)
    for hook in cancellation_hooks:
        await hook(session, user.id)
    await detach_person(session, user.id)
    await session.flush()
    announce_sign_out(session, SignOut(user.id, SignOutReason.cancelled))


async def export_data(session: AsyncSession, user: User) -> dict[str, object]:
    """A copy of the user's personal data across domains (privacy promise 6)."""
    from accounts.events import export_providers
    from storage.access_log.service import entries_about

    consents = await repo.guardian_consents(session, user.id)
    out: dict[str, object] = {
        "exported_at": utcnow().isoformat(),
        "account": to_out(user).model_dump(mode="json"),
        "guardian_consents": [
            {"guardian_name": c.guardian_name, "guardian_contact": c.guardian_contact,
             "relationship": c.relationship, "consented_at": c.consented_at.isoformat()} for c in consents
        ],
        "staff_reads_of_my_data": [
            {"at": e.at.isoformat(), "actor_role": e.actor_role, "resource_type": e.resource_type,
             "reason": e.reason} for e in await entries_about(session, user.id)
        ],
    }
    for provider in export_providers:
        name, data = await provider(session, user.id)
        out[name] = data
    return out
