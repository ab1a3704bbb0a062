"""Self-registration that does not tell who already has an account.

``start`` answers the same for a new address and for one that has an account: both validate,
hash the password, write a pending registration and one message, in the same steps. A new
address gets a one-time code; an existing owner gets "someone tried to register with your
address" instead (and the pending row holds a code nobody was sent). The account exists only
after ``verify``. Codes are 6 digits, stored as a keyed hash, expire, work once, allow a few
attempts, and are throttled per address and per client address.
"""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from datetime import date, timedelta

from accounts import notices, outbox, throttle
from accounts import registration_repository as repo
from accounts.models import PENDING_CT_CONTEXT, PendingRegistration, Role, User
from accounts.schemas import GuardianConsentIn
from accounts.service import (
    CheckedUser,
    NewUser,
    canonical_identifier,
    check_new_user,
    create_user,
    existing_owner,
    hash_pool,
)
from storage.db import unit_of_work, utcnow
from storage.errors import AppError, Unprocessable
from storage.runtime import Runtime, get_runtime

ACCEPTED = "We sent a one-time code to this address. Enter it to finish registering."


class InvalidCode(AppError):
    status, error = 400, "InvalidCode"


def _contact_key(kind: str, canonical: str) -> str:
    return "reg:" + get_runtime().cipher.blind_index(f"{kind}:{canonical}", "registration.contact")


def _code_hash(row_id: uuid.UUID, code: str) -> str:
    # Keyed: a million possible codes are no secret against a plain hash.
    return get_runtime().cipher.blind_index(f"{row_id}:{code}", "registration.code")


def _payload(checked: CheckedUser, password_hash: str) -> bytes:
    new = checked.new
    data = {
        "email": checked.email, "phone": checked.phone, "password_hash": password_hash,
        "display_name": new.display_name, "date_of_birth": new.date_of_birth.isoformat(),
        "role": new.role.value, "region": checked.region, "language": new.language,
        "guardian": new.guardian.model_dump() if new.guardian else None,
    }
    return json.dumps(data).encode()


def _unpack(raw: bytes) -> tuple[CheckedUser, str]:
    data = json.loads(raw)
    new = NewUser(
        password="", display_name=data["display_name"], date_of_birth=date.fromisoformat(data["date_of_birth"]),
        role=Role(data["role"]), email=data["email"], phone=data["phone"], region=data["region"],
        guardian=GuardianConsentIn(**data["guardian"]) if data["guardian"] else None, language=data["language"],
    )
    today = utcnow().date()
    dob = new.date_of_birth
    age = today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))
    return CheckedUser(new, data["email"], data["phone"], data["region"], age), data["password_hash"]


async def start(rt: Runtime, new: NewUser, ip: str | None) -> None:
    """Begin a registration; the answer never depends on whether the address has an account."""
    settings = rt.settings
    if new.email and new.phone:
        raise Unprocessable("give an e-mail address or a phone number, not both (add the other later)")
    checked = check_new_user(settings, new)
    kind, contact = ("email", checked.email) if checked.email else ("phone", checked.phone or "")
    contact_key = _contact_key(kind, contact)
    now = utcnow()
    await throttle.reserve(rt, [
        throttle.Rule(f"{contact_key}|sent", settings.registration_max_per_contact, 3600),
        throttle.Rule(f"reg-{throttle.address_key(ip)}", settings.registration_max_per_address, 3600),
    ], now)
    password_hash = await hash_pool(rt).hash(new.password)  # before taking a connection
    code = f"{secrets.randbelow(10**6):06d}"
    ttl = settings.registration_code_ttl_seconds
    async with unit_of_work(rt.sessionmaker) as session:
        owner = await existing_owner(session, checked.email, checked.phone)
        row = PendingRegistration(id=uuid.uuid4(), contact_key=contact_key, expires_at=now + timedelta(seconds=ttl),
                                  attempts=0, for_existing=owner is not None)
        row.code_hash = _code_hash(row.id, code if owner is None else secrets.token_hex(16))
        row.payload_ct = rt.cipher.encrypt(_payload(checked, password_hash), PENDING_CT_CONTEXT.format(pk=row.id))
        await repo.supersede(session, contact_key, now)
        await repo.add(session, row)
        if owner is None:
            notice = notices.registration_code(new.language, code, max(1, ttl // 60))
        else:
            notice = notices.someone_tried_to_register(owner.language)
        await outbox.queue(session, "email" if kind == "email" else "sms", contact, notice)


async def verify(rt: Runtime, identifier: str, code: str) -> User:
    """Create the account if ``code`` is the live code of ``identifier``'s registration."""
    wrong = InvalidCode("the code is wrong, used up or expired; register again to get a new one")
    kind, canonical = canonical_identifier(identifier)
    if kind == "other":
        raise wrong
    contact_key = _contact_key(kind, canonical)
    now = utcnow()
    async with unit_of_work(rt.sessionmaker) as session:  # the attempt counts even if the code is wrong
        row = await repo.take_attempt(session, contact_key, now, rt.settings.registration_code_max_attempts)
        found = (row.id, row.code_hash, row.for_existing, row.payload_ct) if row else None
    if found is None:
        raise wrong
    row_id, code_hash, for_existing, payload_ct = found
    if for_existing or not hmac.compare_digest(code_hash, _code_hash(row_id, code.strip())):
        raise wrong
    checked, password_hash = _unpack(rt.cipher.decrypt(payload_ct, PENDING_CT_CONTEXT.format(pk=row_id)))
    async with unit_of_work(rt.sessionmaker) as session:
        if not await repo.use(session, row_id, now):
            raise wrong
        if await existing_owner(session, checked.email, checked.phone) is not None:
            raise wrong  # taken since the code was sent (the transaction rolls back, code unused)
        return await create_user(session, checked, password_hash)


def accepted_body() -> dict[str, str]:
    return {"status": "verification_pending", "detail": ACCEPTED}

