"""The ``classguard`` command line. Sub-commands live in modules of this package, one per area."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import typer

from classguard.settings import get_settings

app = typer.Typer(help="classguard: live classes, consent-bound recording, moderation.", no_args_is_help=True)

# Modules that add commands to ``app`` (each owns its area; missing ones are simply not there yet).
_COMMAND_MODULES = ("users", "keys", "audit", "moderate", "simulate", "load_test", "retention", "outbox",
                    "models")


def setup_logging(level: int = logging.INFO) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
) -> None:
    """Run the whole platform: HTTP API and pages, relay and in-process workers (migrations first)."""
    import uvicorn

    from classguard import log_redaction
    from classguard.app import create_app
    from classguard.bootstrap import speech_model_error
    from storage.migrate import upgrade

    setup_logging()
    settings = get_settings()
    log = logging.getLogger("classguard")
    log.info("data directory: %s", settings.data_dir.resolve())
    # In-process workers transcribe here; in the scale-out mode the asr Celery workers check instead.
    problem = speech_model_error(settings) if settings.worker_mode == "inprocess" else None
    if problem:
        typer.echo(f"error: cannot start: {problem}", err=True)
        raise typer.Exit(1)
    upgrade(settings.sync_database_url)
    log.info("serving on http://%s:%d (API docs at /docs)", host, port)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="info")  # configures logging
    log_redaction.install()  # no secret query value (token, ticket, code …) reaches a log line
    uvicorn.Server(config).run()


@app.command()
def migrate() -> None:
    """Apply database migrations and exit."""
    from storage.migrate import upgrade

    setup_logging()
    upgrade(get_settings().sync_database_url)
    typer.echo("database is up to date")


for _name in _COMMAND_MODULES:
    _mod = f"classguard.cli.{_name}"
    if importlib.util.find_spec(_mod) is not None:
        importlib.import_module(_mod)


def main() -> None:
    app()
