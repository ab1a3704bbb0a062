"""Field encryption: round trips, tamper and context checks, blind indexes, key rotation over real rows."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from classguard.settings import Settings
from storage import crypto
from storage.crypto import (
    CryptoError,
    EncryptedColumn,
    FieldCipher,
    UnknownKeyError,
    register_encrypted_column,
    rotate_all,
    token_from_text,
    token_to_text,
)
from storage.db import make_engine, make_sessionmaker

K1 = b"1" * 32
K2 = b"2" * 32
BLIND = b"b" * 32


def make_cipher(keys: dict[str, bytes] | None = None, active: str = "k1", blind: bytes = BLIND) -> FieldCipher:
    return FieldCipher(keys or {"k1": K1}, active, blind)


def test_round_trip_bytes_and_text() -> None:
    c = make_cipher()
    token = c.encrypt(b"\x00secret bytes\xff", "kyc.document")
    assert c.decrypt(token, "kyc.document") == b"\x00secret bytes\xff"
    assert c.decrypt_str(c.encrypt_str("电话 +8613812345678", "users.phone"), "users.phone") == "电话 +8613812345678"
    assert c.decrypt(c.encrypt(b"", "x"), "x") == b""
    assert c.key_id_of(token) == "k1"


def test_same_plaintext_encrypts_differently() -> None:
    c = make_cipher()
    assert c.encrypt(b"same", "ctx") != c.encrypt(b"same", "ctx")


def test_plaintext_not_in_token() -> None:
    c = make_cipher()
    assert b"4111111111111111" not in c.encrypt(b"4111111111111111", "payout.account")


@pytest.mark.parametrize("where", ["kid", "wrapped_dek", "nonce", "ciphertext", "tag"])
def test_tampered_token_fails(where: str) -> None:
    c = make_cipher({"k1": K1, "k2": K2})
    token = bytearray(c.encrypt(b"identity 110101199003077777", "kyc.id_number"))
    header = 3 + 1 + 2
    pos = {"kid": 5, "wrapped_dek": header + 12 + 3, "nonce": header + 12 + 48 + 2,
           "ciphertext": header + 12 + 48 + 12 + 1, "tag": len(token) - 1}[where]
    token[pos] ^= 0x01
    with pytest.raises(CryptoError):
        c.decrypt(bytes(token), "kyc.id_number")


def test_truncated_or_foreign_token_fails() -> None:
    c = make_cipher()
    token = c.encrypt(b"value", "ctx")
    for bad in (token[:-1], token[:20], b"", b"not a token at all" * 10, b"cg2" + token[3:]):
        with pytest.raises(CryptoError):
            c.decrypt(bad, "ctx")


def test_wrong_context_fails() -> None:
    c = make_cipher()
    token = c.encrypt_str("+15551234567", "users.phone:" + str(uuid.UUID(int=1)))
    with pytest.raises(CryptoError):
        c.decrypt(token, "users.phone:" + str(uuid.UUID(int=2)))
    with pytest.raises(CryptoError):
        c.decrypt(token, "payout.account")


def test_unknown_key_fails_clearly() -> None:
    token = make_cipher({"k1": K1, "k2": K2}, active="k2").encrypt(b"v", "ctx")
    with pytest.raises(UnknownKeyError, match="k2"):
        make_cipher({"k1": K1}).decrypt(token, "ctx")


def test_rewrap_changes_key_not_plaintext() -> None:
    old = make_cipher({"k1": K1})
    token = old.encrypt(b"bank 1234", "payout.account")
    new = make_cipher({"k1": K1, "k2": K2}, active="k2")
    rewrapped = new.rewrap(token, "payout.account")
    assert new.key_id_of(rewrapped) == "k2"
    assert rewrapped[-(len(b"bank 1234") + 16):] == token[-(len(b"bank 1234") + 16):]  # value ciphertext kept
    only_k2 = make_cipher({"k2": K2}, active="k2")
    assert only_k2.decrypt(rewrapped, "payout.account") == b"bank 1234"
    assert new.rewrap(rewrapped, "payout.account") == rewrapped
    with pytest.raises(CryptoError):
        new.rewrap(token, "another.context")


def test_text_form_round_trip() -> None:
    c = make_cipher()
    token = c.encrypt(b"v", "ctx")
    text = token_to_text(token)
    assert text.isascii() and "=" not in text
    assert token_from_text(text) == token


def test_bad_key_ring_rejected() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        FieldCipher({"k1": b"short"}, "k1", BLIND)
    with pytest.raises(ValueError, match="not in the key ring"):
        FieldCipher({"k1": K1}, "k9", BLIND)


def test_from_settings(tmp_path: pytest.TempPathFactory) -> None:
    s = Settings(data_dir=tmp_path, encryption_keys={"a": base64.b64encode(K1).decode(),
                                                      "b": base64.b64encode(K2).decode()},
                 encryption_active_key_id="b", blind_index_key=base64.b64encode(BLIND).decode())
    c = FieldCipher.from_settings(s)
    assert c.active_kid == "b" and c.key_ids == {"a", "b"}
    assert c.key_id_of(c.encrypt(b"x", "y")) == "b"


# --- blind index -------------------------------------------------------------------------


def test_blind_index_is_deterministic_and_normalised() -> None:
    c = make_cipher()
    a = c.blind_index("AB 12-34.56", "kyc.id_number")
    assert a == c.blind_index("ab123456", "kyc.id_number")
    assert a == c.blind_index("  Ab1234 56\t", "kyc.id_number")
    assert a == c.blind_index("ＡＢ１２３４５６", "kyc.id_number")  # full-width forms
    assert len(a) >= 32 and int(a, 16) >= 0
    assert c.blind_index("+1 (555) 123-4567", "users.phone") == c.blind_index("+15551234567", "users.phone")
    assert a != c.blind_index("AB123457", "kyc.id_number")


def test_blind_index_differs_per_key_and_context() -> None:
    c = make_cipher()
    other = make_cipher(blind=b"c" * 32)
    assert c.blind_index("AB123456", "kyc.id_number") != other.blind_index("AB123456", "kyc.id_number")
    assert c.blind_index("AB123456", "kyc.id_number") != c.blind_index("AB123456", "users.phone")
    # The index does not depend on the encryption keys, so rotating them keeps lookups working.
    assert c.blind_index("x", "c") == make_cipher({"k2": K2}, active="k2").blind_index("x", "c")


# --- rotation over real rows ---------------------------------------------------------------

_meta = sa.MetaData()
_secrets = sa.Table(
    "test_rotation_secrets", _meta,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("bound_ct", sa.LargeBinary(), nullable=True),  # context bound to the row
    sa.Column("text_ct", sa.Text(), nullable=True),  # token in text form
)
BOUND = EncryptedColumn("test_rotation_secrets", "id", "bound_ct", "test.bound:{pk}")
TEXT = EncryptedColumn("test_rotation_secrets", "id", "text_ct", "test.text")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def rotation_db(request: pytest.FixtureRequest) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    settings: Settings = request.getfixturevalue("settings" if request.param == "sqlite" else "pg_settings")
    engine: AsyncEngine = make_engine(settings.database_url)
    async with engine.begin() as conn:
        await conn.run_sync(_meta.create_all)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _fill(sm: async_sessionmaker[AsyncSession], cipher: FieldCipher, n: int) -> dict[uuid.UUID, tuple[str, str]]:
    plain: dict[uuid.UUID, tuple[str, str]] = {}
    rows = []
    for i in range(n):
        rid = uuid.uuid4()
        a, b = f"+1555000{i:04d}", f"ID-{i:06d}"
        plain[rid] = (a, b)
        rows.append({
            "id": rid,
            "bound_ct": cipher.encrypt_str(a, BOUND.context_for(rid)),
            "text_ct": None if i % 5 == 0 else token_to_text(cipher.encrypt_str(b, TEXT.context)),
        })
    async with sm() as s, s.begin():
        await s.execute(sa.insert(_secrets), rows)
    return plain


async def _read_all(sm: async_sessionmaker[AsyncSession]) -> list[sa.Row]:
    async with sm() as s:
        return list((await s.execute(sa.select(_secrets))).all())


async def test_rotate_all_rewraps_every_old_token(rotation_db: async_sessionmaker[AsyncSession]) -> None:
    sm = rotation_db
    plain = await _fill(sm, make_cipher({"k1": K1}), 23)
    ring = make_cipher({"k1": K1, "k2": K2}, active="k2")
    # Values written after the switch are already under k2 and must be left alone.
    extra_id = uuid.uuid4()
    async with sm() as s, s.begin():
        token = ring.encrypt_str("new", BOUND.context_for(extra_id))
        await s.execute(sa.insert(_secrets).values(id=extra_id, bound_ct=token))
    seen: list[tuple[int, int]] = []

    report = await rotate_all(sm, ring, batch_size=5, progress=lambda d, t: seen.append((d, t)), columns=[BOUND, TEXT])

    n_text = sum(1 for i in range(23) if i % 5 != 0)
    assert report.rewrapped == 23 + n_text
    assert report.scanned == 24 + n_text
    assert report.per_column == {"test_rotation_secrets.bound_ct": 23, "test_rotation_secrets.text_ct": n_text}
    assert seen[0] == (0, 24 + n_text) and seen[-1][0] == 24 + n_text
    only_k2 = make_cipher({"k2": K2}, active="k2")  # k1 removed from the ring
    for row in await _read_all(sm):
        assert only_k2.key_id_of(row.bound_ct) == "k2"
        if row.id == extra_id:
            assert only_k2.decrypt_str(row.bound_ct, BOUND.context_for(row.id)) == "new"
            continue
        assert only_k2.decrypt_str(row.bound_ct, BOUND.context_for(row.id)) == plain[row.id][0]
        if row.text_ct is not None:
            token = token_from_text(row.text_ct)
            assert only_k2.key_id_of(token) == "k2"
            assert only_k2.decrypt_str(token, TEXT.context) == plain[row.id][1]
    # Idempotent: a second run has nothing to do.
    again = await rotate_all(sm, ring, batch_size=7, columns=[BOUND, TEXT])
    assert again.rewrapped == 0 and again.scanned == 24 + n_text


async def test_rotate_all_with_a_session_and_the_registry(rotation_db: async_sessionmaker[AsyncSession]) -> None:
    sm = rotation_db
    await _fill(sm, make_cipher({"k1": K1}), 3)
    saved = dict(crypto.ENCRYPTED_COLUMNS)
    crypto.ENCRYPTED_COLUMNS.clear()
    try:
        register_encrypted_column("test_rotation_secrets", "id", "bound_ct", "test.bound:{pk}")
        async with sm() as session:
            report = await rotate_all(session, make_cipher({"k1": K1, "k2": K2}, active="k2"))
    finally:
        crypto.ENCRYPTED_COLUMNS.clear()
        crypto.ENCRYPTED_COLUMNS.update(saved)
    assert report.rewrapped == 3
    rows = await _read_all(sm)
    assert {FieldCipher.key_id_of(r.bound_ct) for r in rows} == {"k2"}
    assert {FieldCipher.key_id_of(token_from_text(r.text_ct)) for r in rows if r.text_ct} == {"k1"}


async def test_rotation_stops_on_a_token_it_cannot_unwrap(rotation_db: async_sessionmaker[AsyncSession]) -> None:
    """A value under a key that is no longer in the ring is reported, not silently skipped."""
    sm = rotation_db
    await _fill(sm, make_cipher({"k0": K2}, active="k0"), 2)
    with pytest.raises(UnknownKeyError):
        await rotate_all(sm, make_cipher({"k1": K1}), columns=[BOUND])
