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

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from accounts import throttle_repository as repo
from classguard.settings import Settings
from storage.errors import TooManyRequests
from storage.runtime import get_runtime


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


async def reserve(session: AsyncSession, rules: list[Rule], now: datetime) -> None:
    """Reserve one attempt under every rule, or raise 429 (then the caller's transaction rolls
    back, so no rule keeps a reservation for an attempt that did not happen)."""
    ordered = sorted(rules, key=lambda r: r.key)  # one lock order: no deadlocks between requests
    await repo.ensure(session, [r.key for r in ordered], now)
    for rule in ordered:
        cutoff = now - timedelta(seconds=rule.window_seconds)
        count = await repo.reserve(session, rule.key, rule.limit, cutoff, now, sliding=rule.sliding,
                                   backoff=rule.backoff)
        if count is None:
            raise await _refusal(session, rule, now)
        if rule.backoff and count >= rule.limit:
            await repo.set_blocked_until(session, rule.key, now + timedelta(seconds=rule.delay_after(count)))


async def _refusal(session: AsyncSession, rule: Rule, now: datetime) -> TooManyRequests:
    row = await repo.get(session, rule.key)
    retry = 1.0
    if row is not None:
        if rule.backoff and row.blocked_until is not None and row.blocked_until > now:
            retry = (row.blocked_until - now).total_seconds()
        else:
            start = row.last_at if rule.sliding else row.window_start
            retry = (start + timedelta(seconds=rule.window_seconds) - now).total_seconds()
    seconds = max(1, int(retry + 0.999))
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
