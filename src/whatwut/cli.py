"""The ``whatwut`` command line: serve, worker, migrate, create-admin."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from whatwut.settings import get_settings

cli = typer.Typer(help="WhatWut: the team inbox for WhatsApp customer support.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    from whatwut.db.embedded import resolve_database_url
    from whatwut.db.migrate import upgrade_to_head

    settings = get_settings()
    try:
        url = resolve_database_url(settings.database_url, settings.data_dir)
    except ValueError as exc:
        _fail(str(exc))
        return
    revision = upgrade_to_head(url)
    console.print(f"database schema at revision [bold]{revision}[/]")


@cli.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The administrator's email")],
    password: Annotated[str, typer.Option(help="At least 8 characters")],
    account: Annotated[str, typer.Option(help="Account to create or join")] = "Default",
) -> None:
    """Create an administrator (and the account, if it does not exist yet)."""
    from email_validator import EmailNotValidError, validate_email

    from whatwut import bootstrap
    from whatwut.kit.errors import WhatWutError

    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        _fail(f"--email: {exc}")
    try:
        account_id = asyncio.run(bootstrap.create_admin(get_settings(), email, password, account))
    except WhatWutError as exc:
        _fail(f"--{exc.field or 'input'}: {exc.detail}")
        return
    console.print(f"administrator [bold]{email}[/] ready in account [bold]{account}[/] (id {account_id})")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 3000,
    demo: Annotated[bool, typer.Option(help="Seed the Demo account and print its sign-in")] = False,
    wacanda: Annotated[bool, typer.Option(help="Also start Wacanda (the knowledge base) on port+1")] = True,
) -> None:
    """Migrate, then serve the web app and API with a job worker in-process."""
    import uvicorn

    from whatwut import bootstrap
    from whatwut.app import create_app

    settings = get_settings()
    bootstrap.prepare(settings)
    if wacanda:
        from whatwut.knowledge_proxy.launcher import start_wacanda

        start_wacanda(settings, port=port + 1)
    if demo:
        credentials = asyncio.run(bootstrap.seed_demo(settings))
        console.print(
            f"\n[bold green]WhatWut demo is ready[/]  http://{host}:{port}/\n"
            f"  sign in as [bold]{credentials.email}[/] / [bold]{credentials.password}[/]\n"
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", proxy_headers=True)


@cli.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs run at once (default: WHATWUT_WORKER_CONCURRENCY, else 4)"),
    ] = None,
) -> None:
    """Run a job worker (as many as you like, on any machine that reaches the database).

    Stops on SIGINT/SIGTERM after its running jobs finish. Extra job modules (plugins) are named in
    WHATWUT_EXTRA_TASK_MODULES.
    """
    from whatwut import bootstrap
    from whatwut.jobs.worker import run_worker_forever

    settings = get_settings()
    bootstrap.prepare(settings)
    asyncio.run(run_worker_forever(settings, concurrency=concurrency or settings.worker_concurrency))


def main() -> None:
    cli()
