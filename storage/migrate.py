"""Apply the database migrations of every domain (one Alembic branch per domain package).

Each domain keeps its revisions in ``<domain>/migrations/`` with a branch label of its own
name, so domains evolve their schema independently; cross-domain foreign keys use
``depends_on``. ``upgrade`` brings all branches to their heads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alembic import command
from alembic.config import Config

log = logging.getLogger("classguard.migrate")

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("storage", "accounts", "classroom", "moderation", "kyc", "payouts")


def version_dir(domain: str) -> Path:
    """Where a domain keeps its revisions (storage's own sit beside the Alembic environment)."""
    if domain == "storage":
        return ROOT / "storage" / "migrations" / "versions"
    return ROOT / domain / "migrations"


def alembic_config(sync_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "storage" / "migrations"))
    locations = [str(version_dir(d)) for d in DOMAINS if version_dir(d).is_dir()]
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    cfg.set_main_option("sqlalchemy.url", sync_url)
    return cfg


def upgrade(sync_url: str) -> None:
    """Bring the database at ``sync_url`` to the newest schema of every domain."""
    if sync_url.startswith("sqlite:///"):
        Path(sync_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    log.info("applying migrations")
    command.upgrade(alembic_config(sync_url), "heads")
