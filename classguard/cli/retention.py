"""``classguard retention sweep``: delete raw media past its retention period now (cron-able)."""

from __future__ import annotations

import typer

from classguard.cli import app
from classguard.cli.common import run_with_runtime
from classguard.maintenance import sweep_once
from storage.runtime import Runtime

retention_app = typer.Typer(help="media retention (privacy promise 4)", no_args_is_help=True)
app.add_typer(retention_app, name="retention")


@retention_app.command("sweep")
def sweep() -> None:
    """Delete recordings older than CLASSGUARD_MEDIA_RETENTION_DAYS, except evidence on hold."""

    async def _go(rt: Runtime) -> str:
        report = await sweep_once(rt)
        return f"deleted {report.deleted} media objects; kept {report.held} on hold"

    typer.echo(run_with_runtime(_go))
