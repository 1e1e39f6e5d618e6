"""The ``whatwut`` command line: serve, worker, migrate, create-admin, sandbox send."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from rich.console import Console

from whatwut.settings import Settings, get_settings

cli = typer.Typer(help="WhatWut: the team inbox for WhatsApp customer support.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@cli.callback()
def _check_configuration() -> None:
    # Every command reads the settings: a bad environment variable is named here, not in a
    # traceback from whichever command met it first.
    try:
        get_settings()
    except ValidationError as exc:
        _fail("invalid configuration: " + "; ".join(_problem(error) for error in exc.errors()))


def _problem(error: ErrorDetails) -> str:
    name = ".".join(str(part) for part in error["loc"])
    return f"{name}={error['input']!r}: {error['msg']}"


def _exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit, so ``atexit`` stops the embedded PostgreSQL and Wacanda.

    uvicorn re-raises the signal that stopped it once it has shut down; with the default SIGTERM
    disposition the process would die there and leave the embedded server running.
    """

    def _exit(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


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
        created = asyncio.run(bootstrap.create_admin(get_settings(), email, password, account))
    except WhatWutError as exc:
        _fail(f"--{exc.field or 'input'}: {exc.detail}")
        return
    console.print(
        f"administrator [bold]{email}[/] ready in account [bold]{account}[/] (id {created.account_id})"
    )
    if created.ai_agent:
        console.print(
            "AI agent [bold]Wacanda[/] ready in that account (answered by the Wacanda that `whatwut serve`"
            " starts on this data directory)"
        )


def _register_wacanda(settings: Settings, host: str, port: int, demo_account_id: int | None) -> None:
    """Every account's "Wacanda" AI agent points at the Wacanda just started (credentials in the data
    dir); with ``--demo``, it answers the sandbox inbox and the demo documents are ingested."""
    import os
    import threading

    from whatwut.bots.wacanda import register_wacanda
    from whatwut.channels.whatsapp.sandbox.service import SANDBOX_INBOX_NAME, local_base_url

    asyncio.run(
        register_wacanda(
            settings,
            wacanda_url=os.environ["WACANDA_URL"],
            api_url=local_base_url(host, port),
            attach_inbox=SANDBOX_INBOX_NAME if demo_account_id is not None else None,
        )
    )
    if demo_account_id is not None:
        from whatwut.demo.knowledge import ingest_demo_knowledge

        account_id = demo_account_id
        threading.Thread(
            target=lambda: asyncio.run(ingest_demo_knowledge(settings, account_id)),
            name="demo-knowledge",
            daemon=True,
        ).start()


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
    _exit_cleanly_on_sigterm()
    bootstrap.prepare(settings)
    wacanda_started = False
    if wacanda:
        from whatwut.knowledge_proxy.launcher import WacandaPortInUse, start_wacanda

        try:
            wacanda_started = start_wacanda(settings, port=port + 1) is not None
        except WacandaPortInUse as exc:
            _fail(str(exc))
    sandbox_target = None
    demo_account_id: int | None = None
    if demo:
        from whatwut.channels.whatsapp.sandbox import prepare_sandbox
        from whatwut.channels.whatsapp.sandbox.service import local_base_url

        credentials = asyncio.run(bootstrap.seed_demo(settings))
        demo_account_id = credentials.account_id
        sandbox_target = asyncio.run(
            prepare_sandbox(settings, credentials.account_id, base_url=local_base_url(host, port))
        )
        console.print(
            f"\n[bold green]WhatWut demo is ready[/]  http://{host}:{port}/\n"
            f"  sign in as [bold]{credentials.email}[/] / [bold]{credentials.password}[/]\n"
            f"  chat as a WhatsApp customer: http://{host}:{port}/sandbox"
            f'  (or [bold]whatwut sandbox send --from +15550001 "hi"[/])\n'
        )
    if wacanda_started:
        _register_wacanda(settings, host, port, demo_account_id)
    app = create_app(settings)
    if sandbox_target is not None:
        from whatwut.channels.whatsapp.sandbox import install_sandbox
        from whatwut.channels.whatsapp.sandbox.service import local_base_url

        install_sandbox(app, sandbox_target, base_url=local_base_url(host, port))
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True)


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


sandbox_cli = typer.Typer(help="Chat with a running `whatwut serve --demo` as a WhatsApp customer.")
cli.add_typer(sandbox_cli, name="sandbox")


@sandbox_cli.command("send")
def sandbox_send(
    sender: Annotated[str, typer.Option("--from", help="The customer's phone number, e.g. +15550001")],
    text: Annotated[str, typer.Argument(help="What the customer writes")],
    url: Annotated[str, typer.Option(help="The running server")] = "http://127.0.0.1:3000",
    name: Annotated[str | None, typer.Option(help="The customer's WhatsApp profile name")] = None,
) -> None:
    """Send TEXT to the demo's WhatsApp sandbox inbox, as a signed Cloud API webhook.

    Needs a server started with `whatwut serve --demo`; agents' answers show at URL/sandbox.
    """
    import httpx

    body: dict[str, str] = {"from": sender, "text": text}
    if name:
        body["name"] = name
    endpoint = url.rstrip("/") + "/sandbox/api/messages"
    try:
        response = httpx.post(endpoint, json=body, timeout=30)
    except httpx.HTTPError as exc:
        reason = exc.__class__.__name__
        _fail(f"no WhatWut server answers at {url} ({reason}); start one with `whatwut serve --demo`")
        return
    if response.status_code == 404:
        _fail(f"the server at {url} has no WhatsApp sandbox; start it with `whatwut serve --demo`")
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        flag = {"from": "--from", "phone": "--from", "text": "TEXT", "name": "--name"}.get(
            str(problem.get("field")), "input"
        )
        _fail(f"{flag}: {problem.get('detail') or response.text[:200]} (HTTP {response.status_code})")
    sent = response.json()
    message = sent["message"]
    out = Console()
    if sent["webhook_status"] != 200:
        console.print(
            f"[bold red]error:[/] the webhook endpoint answered {sent['webhook_status']}: "
            f"{message.get('error')}"
        )
        raise typer.Exit(code=1)
    out.print(
        f"{sent['name']} ({sent['phone']}) sent {message['wamid']}: webhook answered 200, "
        f"delivered to the sandbox inbox (id {sent['inbox_id']}). "
        f"Replies show at {url.rstrip('/')}{sent['chat_url']}",
        soft_wrap=True,
        highlight=False,
    )


def main() -> None:
    cli()
