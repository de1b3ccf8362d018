"""What every pipeline entry point shares: the ``Progress`` callback and its no-op.

Every entry point (``ingest``, ``train_run``, ``infer_run``, ``project_run``, ``analyze_run``,
``compare``...) takes a ``Store`` (``app.store.db``) first and an optional ``progress``; it opens
its own sessions from the store, so it decides where its transactions begin and end.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Progress(Protocol):
    """``progress(step, done, total)``: what a long step is doing and how far it got."""

    def __call__(self, step: str, done: int, total: int) -> None: ...


def no_progress(step: str, done: int, total: int) -> None:
    """The ``Progress`` used when the caller passes none: log at INFO and nothing more."""
    log.info("%s (%d/%d)", step, done, total)
