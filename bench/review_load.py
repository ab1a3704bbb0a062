"""Moderator load: review items per flagged class-hour, one item per flagged slice (before cases)
beside one case per participant, live session and category (now), on a synthetic class.

    .venv/bin/python bench/review_load.py

The class runs 60 minutes in 10 s slices: the teacher leaves a slide with an e-mail address on
screen from minute 10 to 30 (120 flagged screen slices) and later repeats a phone number in 4
slices; one student asks twice to pay outside the platform; another swears once. Slices and
flags are stored as the pipeline stores them and announced through review's real hook
(``flags_stored``), in an SQLite database in a temp directory. "Before" is the number of flagged
slices (the old intake made exactly one item per flagged slice); "after" is the number of
review items the hook made. The second run has a moderator decide the teacher's contact case at
minute 35, so the repeated phone number after it opens a new case.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from accounts import service as accounts  # noqa: E402
from accounts.models import Role, User  # noqa: E402
from classguard.bootstrap import start_runtime, stop_runtime  # noqa: E402
from classguard.settings import Settings  # noqa: E402
from classroom import service as classroom  # noqa: E402
from classroom.models import Slice  # noqa: E402
from classroom.schemas import ClassIn  # noqa: E402
from moderation.events import announce_flags_stored  # noqa: E402
from moderation.models import SEVERITY_RANK, Flag  # noqa: E402
from moderation.review import decisions, service  # noqa: E402
from moderation.review.models import ReviewItem  # noqa: E402
from moderation.review.schemas import DecisionIn  # noqa: E402
from storage.db import unit_of_work  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.runtime import Runtime  # noqa: E402

SLICE_S = 10
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Hit:
    minute_from: float
    minute_to: float
    who: int  # 0 teacher, 1.. students
    source: str
    category: str
    rule_id: str
    quote: str


SCRIPT = [
    Hit(10, 30, 0, "screen", "off_platform_contact", "contact.email", "[li.wei.tutor@gmail.com]"),
    Hit(40, 40 + 4 * SLICE_S / 60, 0, "mic", "off_platform_contact", "contact.phone", "my number is [5551234567]"),
    Hit(20, 20 + SLICE_S / 60, 1, "mic", "payment_bypass", "payment.bypass", "[pay me directly on Alipay]"),
    Hit(50, 50 + SLICE_S / 60, 1, "mic", "payment_bypass", "payment.bypass", "[transfer it to my card]"),
    Hit(25, 25 + SLICE_S / 60, 2, "mic", "abuse", "abuse.profanity", "[damn]"),
]


async def make_class(rt: Runtime) -> tuple[uuid.UUID, uuid.UUID, list[User], User]:
    async with unit_of_work(rt.sessionmaker) as session:
        people = []
        for i, role in enumerate([Role.teacher, Role.student, Role.student, Role.moderator]):
            people.append(await accounts.register(session, rt.settings, accounts.NewUser(
                email=f"load{uuid.uuid4().hex[:8]}@example.com", phone=None, password="bench password 123",
                display_name=f"Person {i}", date_of_birth=date(1990, 1, 1), role=role)))
        cls = await classroom.create_class(session, people[0], ClassIn(title="review load bench"))
        live, _ = await classroom.start_session(session, cls, people[0])
    return cls.id, live.id, people[:3], people[3]


async def flag_slice(rt: Runtime, class_id: uuid.UUID, session_id: uuid.UUID, user: User, hit: Hit, seq: int,
                     start: datetime) -> None:
    """One slice with one flag, stored and announced as the pipeline's rules stage does."""
    async with unit_of_work(rt.sessionmaker) as session:
        sl = Slice(session_id=session_id, class_id=class_id, user_id=user.id, source=hit.source,
                   media_key=f"bench/{uuid.uuid4()}.webm", content_type="video/webm", started_at=start,
                   ended_at=start + timedelta(seconds=SLICE_S), duration_s=SLICE_S, size_bytes=0, seq=seq,
                   close_reason="rotate", status="done")
        session.add(sl)
        await session.flush()
        flag = Flag(id=uuid.uuid4(), slice_id=sl.id, user_id=user.id, session_id=session_id, class_id=class_id,
                    source=hit.source, category=hit.category, rule_id=hit.rule_id, rule_version="1",
                    policy_version="bench", severity="high", severity_rank=SEVERITY_RANK["high"], confidence=0.95,
                    start_ms=2000, end_ms=4000, quote=hit.quote, evidence={}, automated_detection=True,
                    fingerprint=uuid.uuid4().hex[:16])
        session.add(flag)
        await session.flush()
        await announce_flags_stored(session, sl.id, [flag.id])


async def decide_case_of(rt: Runtime, staff: User, user: User, category: str) -> None:
    async with unit_of_work(rt.sessionmaker) as session:
        item = (await session.scalars(select(ReviewItem).where(
            ReviewItem.user_id == user.id, ReviewItem.category == category, ReviewItem.status == "new"))).one()
        await service.claim(session, staff, item.id)
        await decisions.decide(session, staff, item.id, DecisionIn(
            outcome="confirm", action="warn", reason="contact details on a slide",
            explanation="You showed a personal e-mail address in class. Contact must stay on the platform."), None)


async def run_class(rt: Runtime, decide_at_minute: float | None) -> tuple[int, int, float]:
    """Returns (flagged slices, review items, seconds spent in the review hook per slice)."""
    class_id, session_id, people, staff = await make_class(rt)
    events: list[tuple[datetime, Hit]] = []
    for hit in SCRIPT:
        t = T0 + timedelta(minutes=hit.minute_from)
        while t < T0 + timedelta(minutes=hit.minute_to):
            events.append((t, hit))
            t += timedelta(seconds=SLICE_S)
    events.sort(key=lambda e: e[0])
    seqs: dict[tuple[int, str], int] = {}
    decided = False
    began = time.perf_counter()
    for at, hit in events:
        if decide_at_minute is not None and not decided and at >= T0 + timedelta(minutes=decide_at_minute):
            await decide_case_of(rt, staff, people[0], "off_platform_contact")
            decided = True
        key = (hit.who, hit.source)
        seqs[key] = seqs.get(key, -1) + 1
        await flag_slice(rt, class_id, session_id, people[hit.who], hit, seqs[key], at)
    per_slice = (time.perf_counter() - began) / len(events)
    async with unit_of_work(rt.sessionmaker) as session:
        items = int((await session.execute(select(func.count()).select_from(ReviewItem)
                                           .where(ReviewItem.session_id == session_id))).scalar_one())
    return len(events), items, per_slice


async def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="cg-review-load-"))
    settings = Settings(data_dir=data_dir)
    upgrade(settings.sync_database_url)
    rt = await start_runtime(settings, start_workers=False, lifecycle=False)
    try:
        print("| synthetic 60-min class (10 s slices) | flagged slices | items before (one per flagged slice) "
              "| items now (cases) | per flagged class-hour: before → now | store+intake per slice |")
        print("|---|---|---|---|---|---|")
        for label, decide_at in (("no decision during the class", None),
                                 ("teacher's contact case decided at minute 35", 35.0)):
            slices, items, per_slice = await run_class(rt, decide_at)
            print(f"| {label} | {slices} | {slices} | {items} | {slices} → {items} | {per_slice * 1000:.1f} ms |")
    finally:
        await stop_runtime()


if __name__ == "__main__":
    asyncio.run(main())
