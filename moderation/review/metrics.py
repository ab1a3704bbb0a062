"""Prometheus metrics of review, served at ``/metrics``.

Counts that the database knows exactly (queue depth, decisions, appeals, overturn rate) are
read from it at scrape time, so every process reports the same truth. Latencies (time to first
claim, time to decision) are observed in the process that made the change, after its
transaction commits, as Prometheus histograms (summed across processes by the server).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from moderation.review import repository as repo
from storage.db import utcnow
from storage.deps import DbSession
from storage.errors import NotFound, Unauthorized, error_responses
from storage.runtime import get_runtime

REGISTRY = CollectorRegistry(auto_describe=False)
_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 72 * 3600, float("inf"))
TIME_TO_FIRST_CLAIM = Histogram(
    "classguard_moderation_time_to_first_claim_seconds",
    "From an item entering the queue to its first claim by a moderator.",
    buckets=_BUCKETS, registry=REGISTRY,
)
TIME_TO_DECISION = Histogram(
    "classguard_moderation_time_to_decision_seconds",
    "From an item entering the queue to a final decision (dismiss or confirm).",
    ["automated"], buckets=_BUCKETS, registry=REGISTRY,
)
_KEY = "moderation_review_observations"


def observe_after_commit(session: AsyncSession, histogram: Any, seconds: float, **labels: str) -> None:
    """Record a latency once the change that produced it is committed (dropped on rollback)."""
    session.sync_session.info.setdefault(_KEY, []).append((histogram, max(0.0, seconds), labels))


def seconds_since(start: datetime) -> float:
    return (utcnow() - start).total_seconds()


@event.listens_for(Session, "after_commit")
def _observe(session: Session) -> None:
    for histogram, seconds, labels in session.info.pop(_KEY, []):
        (histogram.labels(**labels) if labels else histogram).observe(seconds)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_KEY, None)


class _DatabaseCounts(Collector):
    """Yields the counts read by the last scrape (``refresh``) as metric families."""

    def __init__(self) -> None:
        self.depth: list[tuple[str, str, int]] = []
        self.decisions: list[tuple[str, str, int]] = []
        self.appeals: list[tuple[str, int]] = []

    async def refresh(self, session: AsyncSession) -> None:
        self.depth = await repo.open_depth(session, utcnow())
        self.decisions = await repo.count_decisions(session)
        self.appeals = await repo.count_appeals(session)

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily("classguard_moderation_queue_depth",
                                  "Open review items by category of the most severe flag and status.",
                                  labels=["category", "status"])
        for category, status, n in self.depth:
            depth.add_metric([category, status], n)
        yield depth
        decisions = CounterMetricFamily(
            "classguard_moderation_decisions", "Decisions made, by outcome and by how automated they were "
            "(fully: the policy restricted at once; partially: automated detection, human decision; not).",
            labels=["outcome", "automated"])
        for outcome, automated, n in self.decisions:
            decisions.add_metric([outcome, automated], n)
        yield decisions
        by_status = dict(self.appeals)
        appeals = GaugeMetricFamily("classguard_moderation_appeals_by_status", "Appeals by status.", labels=["status"])
        for status in ("open", "upheld", "overturned"):
            appeals.add_metric([status], by_status.get(status, 0))
        yield appeals
        total = CounterMetricFamily("classguard_moderation_appeals", "Appeals filed.")
        total.add_metric([], sum(by_status.values()))
        yield total
        decided = by_status.get("upheld", 0) + by_status.get("overturned", 0)
        rate = GaugeMetricFamily("classguard_moderation_appeal_overturn_ratio",
                                 "Share of decided appeals that overturned the decision.")
        rate.add_metric([], by_status.get("overturned", 0) / decided if decided else 0.0)
        yield rate


DATABASE_COUNTS = _DatabaseCounts()
REGISTRY.register(DATABASE_COUNTS)

router = APIRouter(tags=["ops"])


def require_metrics_token(request: Request) -> None:
    """``/metrics`` is for the operator's scraper: ``Authorization: Bearer <metrics_token>``.
    No token configured: the endpoint does not exist (404), so nothing leaks by default."""
    expected = get_runtime().settings.metrics_token
    if not expected:
        raise NotFound("metrics are off (set METRICS_TOKEN)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), expected.encode()):
        raise _NoMetricsToken("metrics need the bearer token from METRICS_TOKEN")


class _NoMetricsToken(Unauthorized):
    headers = {"WWW-Authenticate": "Bearer"}


@router.get("/metrics", response_class=Response, dependencies=[Depends(require_metrics_token)],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **error_responses(Unauthorized, NotFound)})
async def metrics(session: DbSession) -> Response:
    """Prometheus text format: queue depth per category, time to first claim and to decision,
    automated vs manual decisions, appeals and the overturn rate."""
    await DATABASE_COUNTS.refresh(session)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
