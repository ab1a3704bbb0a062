"""``classguard audit verify``: check the access log's hash chain end to end."""

from __future__ import annotations

import typer

from classguard.cli import app
from classguard.cli.common import run_with_runtime
from storage.access_log.schemas import VerifyResult
from storage.access_log.service import verify_chain
from storage.runtime import Runtime

audit = typer.Typer(help="the access log of reads of personal data", no_args_is_help=True)
app.add_typer(audit, name="audit")


@audit.command("verify")
def verify() -> None:
    """Recompute every entry's hash; exit 0 if the chain is intact, 1 naming the first bad entry."""

    async def _go(rt: Runtime) -> VerifyResult:
        async with rt.sessionmaker() as session:
            return await verify_chain(session)

    result = run_with_runtime(_go)
    if result.ok:
        typer.echo(f"ok: {result.checked} entries (head {result.head_hash})")
        return
    typer.echo(f"FAILED at entry {result.first_bad_seq}: {result.reason} ({result.checked} entries fine before it)")
    raise typer.Exit(1)
