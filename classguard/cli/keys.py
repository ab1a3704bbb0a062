"""``classguard keys``: generate encryption keys and rotate stored values to the active key.

The full rotation procedure is in ``storage.crypto``'s module docstring.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from classguard.cli import app
from classguard.cli.common import run_with_runtime
from storage.crypto import ENCRYPTED_COLUMNS, RotationReport, generate_key, rotate_all
from storage.runtime import Runtime

keys = typer.Typer(help="field-encryption keys", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("generate")
def generate() -> None:
    """Print a new random 256-bit key (base64) to add to CLASSGUARD_ENCRYPTION_KEYS."""
    typer.echo(generate_key())


@keys.command("rotate")
def rotate(
    batch_size: int = typer.Option(500, min=1, help="rows per transaction"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Re-wrap every stored value whose data key is not under the active key (online, in batches)."""
    from tqdm import tqdm

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = tqdm(total=total, unit="row", desc="re-wrapping", file=sys.stderr)
        bar.total = max(bar.total or 0, total)
        bar.update(done - bar.n)

    async def _go(rt: Runtime) -> tuple[str, RotationReport]:
        report = await rotate_all(rt.sessionmaker, rt.cipher, batch_size=batch_size, progress=progress)
        return rt.cipher.active_kid, report

    try:
        active, report = run_with_runtime(_go)
    finally:
        if bar is not None:
            bar.close()
    for name, n in sorted(report.per_column.items()):
        typer.echo(f"  {name}: {n} re-wrapped", err=True)
    typer.echo(
        f"re-wrapped {report.rewrapped} of {report.scanned} values to key {active!r} "
        f"across {len(ENCRYPTED_COLUMNS)} encrypted columns"
    )
    if report.skipped_changed:
        typer.echo(f"{report.skipped_changed} values changed meanwhile; run again to finish", err=True)
