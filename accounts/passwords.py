"""Password hashing (argon2id) and the strength rule for new passwords."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

T = TypeVar("T")
_hasher = PasswordHasher()

# The most common leaked passwords that still pass a length check; a serious deployment
# would add a k-anonymity breach lookup, which needs network access we do not assume.
_COMMON = {
    "password123", "password1234", "1234567890", "qwertyuiop", "iloveyou12", "passw0rd123",
    "abcdefghij", "0123456789", "letmein1234", "welcome123", "administrator", "qwerty12345",
}

# A dummy hash so unknown-user logins cost the same time as wrong-password ones.
DUMMY_HASH = _hasher.hash("classguard-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def weakness(password: str, min_length: int, personal: list[str]) -> str | None:
    """Why a password is too weak, or None when it is acceptable."""
    if len(password) < min_length:
        return f"password must be at least {min_length} characters"
    if len(set(password)) < 4:
        return "password uses too few distinct characters"
    if password.lower() in _COMMON:
        return "password is too common"
    low = password.lower()
    for item in personal:
        if item and len(item) >= 4 and item.lower() in low:
            return "password must not contain your name, e-mail or phone"
    return None


def _lower_priority() -> None:
    """Nice the hashing thread (Linux: per thread, inherited by argon2's lane threads), so the
    event loop serving everyone else wins the CPU against a flood of password checks."""
    import os
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not permitted: plain priority
        pass


class HashPool:
    """Runs argon2 on a few dedicated threads, never on the event loop.

    argon2 is CPU- and memory-hard by design; on the loop it would freeze every other request
    (the relay shares the loop). The number of waiting checks is bounded: beyond ``queue_max``
    the caller is told the service is busy instead of piling up work an attacker asked for.
    """

    def __init__(self, workers: int, queue_max: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="argon2",
                                            initializer=_lower_priority)
        self.queue_max = queue_max
        self.waiting = 0

    def has_room(self) -> bool:
        return self.waiting < self.queue_max

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        import asyncio

        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self.waiting -= 1

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
