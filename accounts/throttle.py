"""The one throttle of accounts, keyed by who is attacked and who attacks.

Failed logins are limited three ways (README "Login throttle" says why):

- ``pair`` — one account from one client address: ``login_max_failures`` free tries, then
  exponential back-off (base · 2^k, capped) for that pair only. A stranger guessing from their
  address slows down themselves, not the owner at home.
- ``addr`` — one client address over all accounts: ``login_address_max_failures`` per window,
  so spraying one password over many accounts is throttled too.
- ``acct`` — one account over all addresses: a slower ceiling against a botnet, which does not
  apply to addresses the owner signed in from recently (the owner keeps their way in).

Each attempt is *reserved* (counted as a failure) before the password is checked and given
back when it succeeds, so concurrent guesses can never be evaluated more often than allowed.
Registration codes use the same counters under ``reg:`` keys.
"""

from __future__ import annotations

import asyncio
import ipaddress
import weakref
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from accounts import throttle_repository as repo
from classguard.settings import Settings
from storage.db import unit_of_work, utcnow
from storage.errors import TooManyRequests
from storage.runtime import Runtime, get_runtime


@dataclass(frozen=True)
class Rule:
    key: str
    limit: int
    window_seconds: float
    sliding: bool = False  # the window restarts only after this long without attempts
    backoff: bool = False  # past the limit: one more try after base · 2^(count - limit) seconds
    backoff_base: float = 0.0
    backoff_max: float = 0.0

    def delay_after(self, count: int) -> float:
        return min(self.backoff_base * 2 ** max(0, count - self.limit), self.backoff_max)


def _hide(value: str, context: str) -> str:
    return get_runtime().cipher.blind_index(value, context)


def address_key(ip: str | None) -> str:
    """The client's address as a key; an IPv6 client is its /64 (one subscriber gets a whole /64)."""
    raw = ip or "unknown"
    try:
        parsed = ipaddress.ip_address(raw)
        if parsed.version == 6 and parsed.ipv4_mapped is None:
            raw = str(ipaddress.ip_network(f"{parsed}/64", strict=False))
        elif parsed.version == 6 and parsed.ipv4_mapped is not None:
            raw = str(parsed.ipv4_mapped)
    except ValueError:
        pass
    return "addr:" + _hide(raw, "throttle.address")


def account_key_for_user(user_id: object) -> str:
    return f"acct:{user_id}"


def account_key_for_identifier(canonical: str) -> str:
    """An identifier no account has: keyed by its canonical form, so every spelling is one key."""
    return "acct:?" + _hide(canonical, "throttle.identifier")


def login_rules(settings: Settings, account: str, address: str, known_address: bool) -> list[Rule]:
    window = settings.login_failure_window_seconds
    rules = [
        Rule(f"pair:{account}|{address}", settings.login_max_failures, window, sliding=True, backoff=True,
             backoff_base=settings.login_backoff_base_seconds, backoff_max=settings.login_backoff_max_seconds),
        Rule(address, settings.login_address_max_failures, window),
    ]
    if not known_address:
        rules.append(Rule(account, settings.login_account_max_failures, settings.login_account_window_seconds))
    return rules


class Gate:
    """This process's front door to the counters, so a flood does not become a queue of
    pooled connections waiting on one hot row.

    Requests for the same key wait on an in-process lock *before* taking a connection, and a
    key the database has just refused stays refused here until its retry time, without a query.
    The database stays the authority (several processes share it); this only sheds load.
    """

    MAX_REMEMBERED = 100_000

    def __init__(self) -> None:
        self.blocked: dict[str, datetime] = {}
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def refusal(self, keys: list[str], now: datetime) -> TooManyRequests | None:
        for key in keys:
            until = self.blocked.get(key)
            if until is None:
                continue
            if until <= now:
                self.blocked.pop(key, None)
                continue
            return _too_many((until - now).total_seconds())
        return None

    def remember(self, key: str, until: datetime) -> None:
        if len(self.blocked) >= self.MAX_REMEMBERED:
            self.blocked.clear()  # a cache: forgetting only costs a query
        self.blocked[key] = until


def gate(rt: Runtime) -> Gate:
    found = rt.extras.get("throttle_gate")
    if found is None:
        found = rt.extras["throttle_gate"] = Gate()
    assert isinstance(found, Gate)
    return found


@dataclass(frozen=True)
class Backoff:
    """A back-off the reservation started: it runs again from the moment the attempt failed."""

    key: str
    seconds: float


async def reserve(rt: Runtime, rules: list[Rule], now: datetime) -> list[Backoff]:
    """Reserve one attempt under every rule in one short transaction of its own, or raise 429.

    The reservation is committed before the caller checks anything expensive, so it counts even
    when the request then fails; a refused rule rolls the whole reservation back. Returns the
    back-offs this attempt started, for ``failed`` to restart once the answer is known.
    """
    ordered = sorted(rules, key=lambda r: r.key)  # one lock order: no deadlocks between requests
    door = gate(rt)
    if (refused := door.refusal([r.key for r in ordered], now)) is not None:
        raise refused
    started: list[Backoff] = []
    async with AsyncExitStack() as stack:
        for rule in ordered:
            await stack.enter_async_context(door.lock(rule.key))
        if (refused := door.refusal([r.key for r in ordered], utcnow())) is not None:
            raise refused  # refused while this request waited for the lock
        async with unit_of_work(rt.sessionmaker) as session:
            await repo.ensure(session, [r.key for r in ordered], now)
            for rule in ordered:
                cutoff = now - timedelta(seconds=rule.window_seconds)
                count = await repo.reserve(session, rule.key, rule.limit, cutoff, now, sliding=rule.sliding,
                                           backoff=rule.backoff)
                if count is None:
                    until = await _allowed_again(session, rule, now)
                    door.remember(rule.key, until)
                    raise _too_many((until - now).total_seconds())
                if rule.backoff and count >= rule.limit:
                    # blocked from now on, so concurrent guesses wait too; ``failed`` restarts it
                    delay = rule.delay_after(count)
                    await repo.set_blocked_until(session, rule.key, now + timedelta(seconds=delay))
                    started.append(Backoff(rule.key, delay))
    return started


async def failed(rt: Runtime, started: list[Backoff]) -> None:
    """The attempt was wrong: its back-offs count from now, not from before the (slow) check."""
    if not started:
        return
    now = utcnow()
    async with unit_of_work(rt.sessionmaker) as session:
        for b in started:
            await repo.set_blocked_until(session, b.key, now + timedelta(seconds=b.seconds))


async def _allowed_again(session: AsyncSession, rule: Rule, now: datetime) -> datetime:
    row = await repo.get(session, rule.key)
    if row is None:
        return now
    if rule.backoff and row.blocked_until is not None and row.blocked_until > now:
        return row.blocked_until
    start = row.last_at if rule.sliding else row.window_start
    return start + timedelta(seconds=rule.window_seconds)


def _too_many(retry_seconds: float) -> TooManyRequests:
    seconds = max(1, int(retry_seconds + 0.999))
    err = TooManyRequests(f"too many attempts; try again in {seconds} seconds")
    err.headers = {"Retry-After": str(seconds)}
    return err


async def succeeded(session: AsyncSession, rules: list[Rule]) -> None:
    """The reserved attempt was right: the pair starts afresh, the shared ceilings get theirs back."""
    for rule in sorted(rules, key=lambda r: r.key):
        if rule.backoff:
            await repo.clear(session, rule.key)
        else:
            await repo.refund(session, rule.key)
