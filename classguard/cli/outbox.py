"""``classguard outbox list``: the messages to people that are waiting for an operator.

In the embedded mode (no SMTP host, the default SMS provider) e-mails and texts stay in the
outbox table; the operator reads them here and passes them on (or configures SMTP / a gateway).
"""

from __future__ import annotations

import json

import typer

from accounts.outbox import ReadMessage, read_messages
from classguard.cli import app
from classguard.cli.common import run_with_runtime
from storage.runtime import Runtime

outbox = typer.Typer(help="messages to people (verification codes, notices)", no_args_is_help=True)
app.add_typer(outbox, name="outbox")


@outbox.command("list")
def list_messages(
    channel: str = typer.Option("", help="email or sms (default: both)"),
    status: str = typer.Option("held", help="held (waiting for an operator), pending, sent, failed, or all"),
    to: str = typer.Option("", help="only messages to this address or number (E.164)"),
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Newest messages first, with their text."""

    async def _go(rt: Runtime) -> list[ReadMessage]:
        async with rt.sessionmaker() as session:
            return await read_messages(session, channel=channel or None, status=None if status == "all" else status,
                                       to=to or None, limit=limit)

    for m in run_with_runtime(_go):
        if as_json:
            typer.echo(json.dumps({"id": str(m.id), "created_at": m.created_at.isoformat(), "channel": m.channel,
                                   "to": m.to, "subject": m.subject, "body": m.body, "status": m.status},
                                  ensure_ascii=False))
        else:
            typer.echo(f"{m.created_at:%Y-%m-%d %H:%M:%S} {m.channel:5} {m.status:7} to {m.to}\n"
                       f"  {m.subject}\n  {m.body or '(delivered; text not kept)'}\n")
