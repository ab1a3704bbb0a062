"""``classguard users create``: lets an operator create the first admin and staff accounts."""

from __future__ import annotations

from datetime import date

import typer

from accounts import service
from accounts.models import Role
from classguard.cli import app
from classguard.cli.common import run_with_runtime
from storage.db import unit_of_work
from storage.errors import AppError
from storage.fields import clean_display_text
from storage.runtime import Runtime

users = typer.Typer(help="manage accounts", no_args_is_help=True)
app.add_typer(users, name="users")


@users.command("create")
def create(
    email: str = typer.Option(..., help="login e-mail address"),
    password: str = typer.Option(..., prompt=True, hide_input=True, help="at least 10 characters"),
    role: Role = typer.Option(Role.student, help="student, teacher, moderator or admin"),
    name: str = typer.Option("", help="display name (default: the e-mail's local part)"),
    date_of_birth: str = typer.Option("1990-01-01", help="YYYY-MM-DD"),
) -> None:
    """Create an account with the given role."""
    try:  # the same rules as the API's display names
        display_name = clean_display_text(name or email.split("@")[0])
    except ValueError as exc:
        typer.echo(f"error: display name {exc}", err=True)
        raise typer.Exit(1) from exc

    async def _go(rt: Runtime) -> str:
        async with unit_of_work(rt.sessionmaker) as session:
            user = await service.register(session, rt.settings, service.NewUser(
                email=email, password=password, role=role, display_name=display_name,
                date_of_birth=date.fromisoformat(date_of_birth),
            ))
            return str(user.id)

    try:
        user_id = run_with_runtime(_go)
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"created {role.value} {email} (id {user_id})")
