"""``classguard moderate``: run the moderation pipeline on files, without a server or database.

Exit status: 0 when every file was analysed (flags or not), 1 when at least one file failed
(the others are still analysed and reported), 2 when the policy or speech model is unusable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from classguard.cli import app
from classguard.settings import get_settings


def _flag_json(hit: Any) -> dict[str, Any]:
    evidence = {
        "quote": hit.quote,
        "confidence": hit.confidence,
        "source": hit.source,
        "auto_action": hit.auto_action,
        "fingerprint": hit.fingerprint,
        **hit.evidence,
    }
    return {
        "category": hit.category,
        "rule": hit.rule_id,
        "rule_version": hit.rule_version,
        "severity": hit.severity,
        "start": hit.start,
        "end": hit.end,
        "evidence": evidence,
    }


def result_json(result: Any) -> dict[str, Any]:
    """The one-line JSON object printed for a file with ``--json``."""
    return {
        "path": result.path,
        "status": result.status,
        "error": result.error,
        "kind": result.kind,
        "duration": result.duration,
        "language": result.transcript.language if result.transcript and result.transcript.segments else None,
        "transcript": result.transcript_text,
        "ocr_text": result.ocr_text,
        "faces": result.face_count,
        "policy_version": result.policy_version,
        "flags": [_flag_json(h) for h in result.hits],
    }


def _summary(result: Any) -> str:
    if result.status != "ok":
        return f"{result.path}: FAILED - {result.error}"
    parts = [f"{result.kind}"]
    if result.duration is not None:
        parts.append(f"{result.duration:.1f} s")
    if result.frames:
        parts.append(f"{len(result.frames)} frame(s)")
    if result.faces:
        parts.append(f"{result.face_count} face(s)")
    lines = [f"{result.path}: ok ({', '.join(parts)}) - {len(result.hits)} flag(s)"]
    if result.transcript_text and result.transcript is not None:
        lines.append(f"  transcript ({result.transcript.language}): {result.transcript_text}")
    if result.ocr_text:
        lines.append("  screen text: " + result.ocr_text.replace("\n", " | "))
    for h in result.hits:
        action = f" -> {h.auto_action}" if h.auto_action else ""
        lines.append(
            f"  [{h.severity}] {h.category} ({h.rule_id} v{h.rule_version}, {h.confidence:.2f})"
            f" {h.start:.1f}-{h.end:.1f} s: {h.quote}{action}"
        )
    return "\n".join(lines)


@app.command()
def moderate(
    paths: list[Path] = typer.Argument(..., help="media files: wav, webm, mp3, mp4, png, jpg ..."),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per file per line on stdout"),
    policy_file: Path | None = typer.Option(
        None, "--policy", help="policy JSON/YAML (default: settings, then built-in)"
    ),
    model: str | None = typer.Option(
        None, "--model", help="speech model: base, tiny.en or a directory (default: settings)"),
    threads: int | None = typer.Option(None, "--threads", min=0, help="CPU threads for speech recognition"),
    kind: str | None = typer.Option(None, "--kind", help="audio | screen | snapshot (default: from the file)"),
    consecutive: bool = typer.Option(
        False, "--consecutive", help="the files are consecutive slices of one speaker: carry speech context"
    ),
) -> None:
    """Check media files against the moderation policy and print what was flagged."""
    from tqdm import tqdm

    from moderation.analyze import KINDS, AnalysisOptions, analyze_file
    from moderation.asr import AsrModelError, get_model
    from moderation.rules import Policy, PolicyError

    settings = get_settings()
    if kind is not None and kind not in KINDS:
        typer.echo(f"--kind must be one of: {', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    try:
        chosen = policy_file or settings.policy_file
        policy = Policy.load(chosen) if chosen else Policy.default()
        options = AnalysisOptions(
            model=model or settings.asr_model or None,
            cpu_threads=threads if threads is not None else settings.asr_cpu_threads,
            models_dir=settings.speech_models_dir,
        )
        # Fail once, up front, rather than once per file.
        get_model(options.model, options.cpu_threads, options.models_dir)
    except (PolicyError, AsrModelError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    failed = 0
    carry = None
    bar = tqdm(paths, desc="moderate", unit="file", file=sys.stderr, disable=None)
    for path in bar:
        bar.set_postfix_str(path.name[:40])
        result = analyze_file(path, kind=kind, policy=policy, options=options, carry=carry if consecutive else None)
        carry = result.carry
        failed += result.status != "ok"
        if as_json:
            tqdm.write(json.dumps(result_json(result), ensure_ascii=False), file=sys.stdout)
        else:
            tqdm.write(_summary(result), file=sys.stdout)
        sys.stdout.flush()
    bar.close()
    if not as_json:
        flagged = "" if failed == 0 else f", {failed} failed"
        typer.echo(f"{len(paths)} file(s) analysed{flagged}", err=True)
    raise typer.Exit(1 if failed else 0)
