"""Small helpers shared by the command modules: settings, the store, clean error exits."""

from __future__ import annotations

from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from app.config import Settings
from app.errors import EarmarkError

console = Console(stderr=False)
err_console = Console(stderr=True)


def progress_bar(out: Console | None = None) -> Progress:
    """The one progress bar every long command shows: what, bar, done/total, elapsed, remaining."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=out or console, transient=True)


def settings() -> Settings:
    """The settings for this invocation (environment variables, ``EARMARK_`` prefix)."""
    return Settings()


def store():
    """The store for this invocation (``app.store.db.Store``), schema at head: what every pipeline step takes."""
    from app.store.db import open_store

    return open_store(settings())


@contextmanager
def user_errors():
    """Turn ``EarmarkError`` into a short message and exit code 1."""
    try:
        yield
    except EarmarkError as exc:
        err_console.print(f"[bold red]error:[/] {escape(exc.title)}")
        if exc.detail:
            err_console.print(escape(exc.detail))
        if exc.hint:
            err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}")
        raise typer.Exit(1) from None
