"""The ``earmark`` command line. Every command is thin: it parses, then calls ``app.pipeline``.

Commands live in one module per area and register themselves on ``app`` when imported below.
Heavy imports (torch, umap, uvicorn) happen inside the commands, so ``earmark --help`` is instant.
"""

from __future__ import annotations

import logging

import typer

app = typer.Typer(
    name="earmark",
    help="Error analysis for audio classifiers: ingest, train, infer, analyze, flag, retrain, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


# Register the command modules (each adds its commands to `app`).
from app.cli import analysis, data, flags, model, open_cmd, runs_io, serve, synth  # noqa: E402, F401 - imported to register


def main() -> None:
    """Console-script entry point."""
    app()
