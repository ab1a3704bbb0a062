"""Field encryption for personal data: envelope encryption with AES-256-GCM and keyed blind indexes.

Each value gets its own random 256-bit data key (DEK). The DEK encrypts the value; a
key-encryption key (KEK) from the key ring wraps the DEK. The stored token carries the format
version and the KEK id, so keys rotate without downtime: old tokens keep decrypting as long as
their KEK stays in the ring, and rotation only re-wraps the 32-byte DEK (the value's ciphertext
is untouched).

Token layout (bytes, for ``LargeBinary`` columns)::

    b"cg1" | len(kid):u8 | kid | wrap_nonce(12) | wrapped DEK(32+16) | nonce(12) | ciphertext+tag

``token_to_text`` / ``token_from_text`` give a compact URL-safe string form for text columns.

Both AES-GCM operations take the *context* as associated data (e.g. ``"users.phone"``, or
``"users.phone:<row id>"`` to bind a value to its row), so a token copied into another column
or row fails to decrypt.

Key rotation procedure (no downtime):

1. ``classguard keys generate`` prints a new base64 key.
2. Add it to ``CLASSGUARD_ENCRYPTION_KEYS`` under a new id, keeping the old one, e.g.
   ``{"k1": "<old>", "k2": "<new>"}``, and set ``CLASSGUARD_ENCRYPTION_ACTIVE_KEY_ID=k2``.
3. Restart every process (API, relay, workers). New values are now written under ``k2``;
   values under ``k1`` still decrypt.
4. Run ``classguard keys rotate``: it walks every registered encrypted column in small
   batches (short transactions, the service stays online) and re-wraps each data key that is
   not under the active key. It prints how many values were re-wrapped; run it again until it
   reports 0 (it is idempotent).
5. Remove ``k1`` from ``CLASSGUARD_ENCRYPTION_KEYS`` and restart.

The blind-index key (``CLASSGUARD_BLIND_INDEX_KEY``) is not rotated this way: changing it
changes every index value, which means recomputing the indexes from the plaintexts.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from classguard.settings import Settings

VERSION = b"cg1"
_NONCE = 12
_DEK = 32
_TAG = 16
_WRAPPED = _DEK + _TAG
_MIN_TOKEN = len(VERSION) + 1 + 1 + _NONCE + _WRAPPED + _NONCE + _TAG
_BLIND_BYTES = 16  # 128-bit index values, hex encoded (32 characters)
# Characters people type differently in the same identifier: spaces, dashes, dots, brackets.
_SEPARATORS = frozenset(" -._/()\t\n\r\u00a0")


class CryptoError(Exception):
    """A token cannot be decrypted: unknown format, unknown key, tampering or wrong context."""


class UnknownKeyError(CryptoError):
    """The token's key id is not in the key ring (was the old key removed before rotation?)."""


def generate_key() -> str:
    """A new random 256-bit key, base64 encoded (for ``CLASSGUARD_ENCRYPTION_KEYS``)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def token_to_text(token: bytes) -> str:
    """Compact URL-safe text form of a token, for text columns."""
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode()


def token_from_text(text: str) -> bytes:
    """Inverse of ``token_to_text``."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise CryptoError("not an encrypted token") from exc


def normalise_for_index(value: str) -> str:
    """The form a value is indexed under: NFKC, case-folded, without spaces and separators.

    ``"ab 12-34"`` and ``"AB1234"`` are the same identity number to a person, so they must be
    the same index value. Domains should still canonicalise first where a real canonical
    form exists (E.164 for phone numbers).
    """
    text = unicodedata.normalize("NFKC", value).casefold()
    return "".join(ch for ch in text if ch not in _SEPARATORS)


@dataclass(frozen=True)
class _Parsed:
    kid: str
    wrap_nonce: bytes
    wrapped: bytes
    nonce: bytes
    ciphertext: bytes
    header: bytes  # version | len | kid (bound into the DEK wrap)


def _parse(token: bytes) -> _Parsed:
    if not isinstance(token, bytes | bytearray | memoryview):
        raise CryptoError("token must be bytes")
    token = bytes(token)
    if len(token) < _MIN_TOKEN or not token.startswith(VERSION):
        raise CryptoError("not an encrypted token (unknown format or version)")
    n = token[len(VERSION)]
    pos = len(VERSION) + 1
    kid_raw = token[pos : pos + n]
    pos += n
    try:
        kid = kid_raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise CryptoError("malformed key id") from exc
    header = token[:pos]
    wrap_nonce = token[pos : pos + _NONCE]
    pos += _NONCE
    wrapped = token[pos : pos + _WRAPPED]
    pos += _WRAPPED
    nonce = token[pos : pos + _NONCE]
    pos += _NONCE
    ciphertext = token[pos:]
    if len(ciphertext) < _TAG or len(nonce) != _NONCE:
        raise CryptoError("truncated token")
    return _Parsed(kid, wrap_nonce, wrapped, nonce, ciphertext, header)


def _header(kid: str) -> bytes:
    raw = kid.encode("ascii")
    if not 0 < len(raw) < 256:
        raise ValueError("key id must be 1..255 ASCII characters")
    return VERSION + bytes([len(raw)]) + raw


def _wrap_aad(header: bytes, context: str) -> bytes:
    return b"wrap|" + header + b"|" + context.encode()


def _data_aad(context: str) -> bytes:
    # Not bound to the key id, so re-wrapping the DEK under another key leaves this part valid.
    return VERSION + b"|data|" + context.encode()


class FieldCipher:
    """Encrypts and decrypts field values with the key ring; computes blind indexes.

    One instance per process (``Runtime.cipher``). Thread-safe: it holds only immutable keys.
    """

    def __init__(self, keys: dict[str, bytes], active_kid: str, blind_key: bytes) -> None:
        if active_kid not in keys:
            raise ValueError(f"active key {active_kid!r} is not in the key ring")
        for kid, key in keys.items():
            _header(kid)
            if len(key) != 32:
                raise ValueError(f"key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
        if len(blind_key) < 16:
            raise ValueError("the blind-index key must be at least 16 bytes")
        self._keks = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active_kid = active_kid
        self._blind_key = bytes(blind_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> FieldCipher:
        keys, active, blind = settings.resolved_keys()
        return cls(keys, active, blind)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keks)

    # --- values --------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt ``plaintext`` under a fresh data key wrapped by the active key."""
        header = _header(self.active_kid)
        dek = AESGCM.generate_key(bit_length=256)
        wrap_nonce = secrets.token_bytes(_NONCE)
        wrapped = self._keks[self.active_kid].encrypt(wrap_nonce, dek, _wrap_aad(header, context))
        nonce = secrets.token_bytes(_NONCE)
        ciphertext = AESGCM(dek).encrypt(nonce, bytes(plaintext), _data_aad(context))
        return header + wrap_nonce + wrapped + nonce + ciphertext

    def decrypt(self, token: bytes, context: str) -> bytes:
        """Decrypt a token made by ``encrypt`` with the same ``context``; ``CryptoError`` otherwise."""
        p = _parse(token)
        dek = self._unwrap(p, context)
        try:
            return AESGCM(dek).decrypt(p.nonce, p.ciphertext, _data_aad(context))
        except InvalidTag as exc:
            raise CryptoError("value does not decrypt (tampered, or wrong context)") from exc

    def encrypt_str(self, text: str, context: str) -> bytes:
        """Encrypt a text value (UTF-8) to a binary token."""
        return self.encrypt(text.encode("utf-8"), context)

    def decrypt_str(self, token: bytes, context: str) -> str:
        """Decrypt a binary token made by ``encrypt_str``."""
        return self.decrypt(token, context).decode("utf-8")

    @staticmethod
    def key_id_of(token: bytes) -> str:
        """The id of the key that wraps this token's data key."""
        return _parse(token).kid

    def needs_rewrap(self, token: bytes) -> bool:
        return _parse(token).kid != self.active_kid

    def rewrap(self, token: bytes, context: str) -> bytes:
        """Re-wrap the token's data key under the active key; the value's ciphertext is kept as is.

        Returns the token unchanged when it is already under the active key.
        """
        p = _parse(token)
        if p.kid == self.active_kid:
            return bytes(token)
        dek = self._unwrap(p, context)
        header = _header(self.active_kid)
        wrap_nonce = secrets.token_bytes(_NONCE)
        wrapped = self._keks[self.active_kid].encrypt(wrap_nonce, dek, _wrap_aad(header, context))
        return header + wrap_nonce + wrapped + p.nonce + p.ciphertext

    def _unwrap(self, p: _Parsed, context: str) -> bytes:
        kek = self._keks.get(p.kid)
        if kek is None:
            raise UnknownKeyError(f"key {p.kid!r} is not in the key ring")
        try:
            return kek.decrypt(p.wrap_nonce, p.wrapped, _wrap_aad(p.header, context))
        except InvalidTag as exc:
            raise CryptoError("data key does not unwrap (tampered, or wrong context)") from exc

    # --- lookups -------------------------------------------------------------------------

    def blind_index(self, value: str, context: str) -> str:
        """A deterministic keyed index of ``value`` for equality lookups (e.g. duplicate identity).

        HMAC-SHA256 with the blind-index key over the context and the normalised value,
        truncated to 128 bits, hex. Differs per context, so equal values in two columns do
        not link.
        """
        msg = b"cg-bidx1|" + context.encode() + b"|" + normalise_for_index(value).encode()
        return hmac.new(self._blind_key, msg, hashlib.sha256).digest()[:_BLIND_BYTES].hex()

    def pseudonym(self, value: str, context: str) -> str:
        """A keyed pseudonym of an identifier (no normalisation), e.g. a user id in a log."""
        msg = b"cg-pseud1|" + context.encode() + b"|" + value.encode()
        return hmac.new(self._blind_key, msg, hashlib.sha256).hexdigest()


# --- the registry of encrypted columns, and rotation ------------------------------------------


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding tokens. ``context`` may contain ``{pk}``, filled with the row's key."""

    table: str
    pk_column: str
    column: str
    context: str

    def context_for(self, pk: Any) -> str:
        return self.context.format(pk=_pk_text(pk)) if "{pk}" in self.context else self.context


def _pk_text(pk: Any) -> str:
    # SQLite returns an untyped UUID column as 32 hex digits; PostgreSQL as uuid.UUID.
    import uuid

    if isinstance(pk, uuid.UUID):
        return str(pk)
    if isinstance(pk, str) and len(pk) == 32:
        try:
            return str(uuid.UUID(hex=pk))
        except ValueError:
            return pk
    return str(pk)


ENCRYPTED_COLUMNS: dict[tuple[str, str], EncryptedColumn] = {}


def register_encrypted_column(table_name: str, pk_column: str, column: str, context: str) -> None:
    """Declare that ``table_name.column`` holds tokens made with ``context`` (call from models.py).

    If the context binds the row (``"users.phone:{pk}"``), encrypt with
    ``EncryptedColumn.context_for(row_id)`` — i.e. the string UUID form — so rotation can
    rebuild it. Columns may be binary (tokens) or text (``token_to_text`` form).
    """
    ENCRYPTED_COLUMNS[(table_name, column)] = EncryptedColumn(table_name, pk_column, column, context)


@dataclass
class RotationReport:
    scanned: int = 0
    rewrapped: int = 0
    skipped_changed: int = 0  # rows changed by someone else between read and write; retried next run
    per_column: dict[str, int] = field(default_factory=dict)


ProgressFn = Callable[[int, int], None]  # (rows scanned so far, rows to scan in total)


async def rotate_all(
    db: AsyncSession | async_sessionmaker[AsyncSession],
    cipher: FieldCipher,
    batch_size: int = 500,
    progress: ProgressFn | None = None,
    columns: list[EncryptedColumn] | None = None,
) -> RotationReport:
    """Re-wrap every registered token whose key id is not the active one, batch by batch.

    Each batch is its own short transaction (committed before the next), so the service stays
    online and a crash loses at most one batch of work; running again continues. A row is
    only updated if its token is still the one read (``WHERE col = old``), so a concurrent
    writer always wins. This is an operator job, hence the commits; request code never
    calls it.
    """
    cols = list(ENCRYPTED_COLUMNS.values()) if columns is None else columns
    report = RotationReport()
    total = 0
    for col in cols:
        total += await _in_tx(db, functools.partial(_count, col=col))
    if progress:
        progress(0, total)
    for col in cols:
        done_here = 0
        last: Any = None
        while True:
            step = functools.partial(_rotate_batch, col=col, cipher=cipher, after=last, limit=batch_size)
            batch, last_seen, rewrapped, changed = await _in_tx(db, step)
            if batch == 0:
                break
            last = last_seen
            report.scanned += batch
            report.rewrapped += rewrapped
            report.skipped_changed += changed
            done_here += rewrapped
            if progress:
                progress(report.scanned, max(total, report.scanned))
        report.per_column[f"{col.table}.{col.column}"] = done_here
    return report


async def _in_tx(db: AsyncSession | async_sessionmaker[AsyncSession], fn: Callable[[AsyncSession], Any]) -> Any:
    if isinstance(db, AsyncSession):
        try:
            result = await fn(db)
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        return result
    async with db() as session, session.begin():
        return await fn(session)


def _table(col: EncryptedColumn) -> sa.TableClause:
    return sa.table(col.table, sa.column(col.pk_column), sa.column(col.column))


async def _count(session: AsyncSession, col: EncryptedColumn) -> int:
    t = _table(col)
    q = sa.select(sa.func.count()).select_from(t).where(t.c[col.column].is_not(None))
    return int((await session.execute(q)).scalar_one())


async def _rotate_batch(
    session: AsyncSession, col: EncryptedColumn, cipher: FieldCipher, after: Any, limit: int
) -> tuple[int, Any, int, int]:
    t = _table(col)
    pk, value = t.c[col.pk_column], t.c[col.column]
    q = sa.select(pk, value).where(value.is_not(None)).order_by(pk).limit(limit)
    if after is not None:
        q = q.where(pk > after)
    rows = (await session.execute(q)).all()
    if not rows:
        return 0, after, 0, 0
    # The AES work is small but a batch is hundreds of values: keep it off the event loop.
    updates = await asyncio.to_thread(_rewrap_rows, cipher, col, rows)
    if not updates:
        return len(rows), rows[-1][0], 0, 0
    # One executemany per batch; the WHERE on the old token makes a concurrent writer win.
    stmt = (
        sa.update(t)
        .where(pk == sa.bindparam("_pk"), value == sa.bindparam("_old"))
        .values({col.column: sa.bindparam("_new")})
    )
    res = await session.execute(stmt, [{"_pk": p, "_old": o, "_new": n} for p, o, n in updates])
    written = int(getattr(res, "rowcount", -1) or 0)
    changed = len(updates) - written if 0 <= written <= len(updates) else 0
    return len(rows), rows[-1][0], len(updates) - changed, changed


def _rewrap_rows(cipher: FieldCipher, col: EncryptedColumn, rows: Any) -> list[tuple[Any, Any, Any]]:
    out = []
    for row_pk, stored in rows:
        is_text = isinstance(stored, str)
        token = token_from_text(stored) if is_text else bytes(stored)
        if cipher.key_id_of(token) == cipher.active_kid:
            continue
        new = cipher.rewrap(token, col.context_for(row_pk))
        out.append((row_pk, stored, token_to_text(new) if is_text else new))
    return out
