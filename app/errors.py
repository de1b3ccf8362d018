"""Typed problems: a title, a detail, a hint at what to do next, and an HTTP status.

The pipeline raises them; the CLI prints them without a traceback, and the web app renders them
on its one error page (or as JSON under /api).
"""

from __future__ import annotations


class EarmarkError(Exception):
    """A problem the user can understand and act on."""

    status: int = 400

    def __init__(self, title: str, detail: str = "", hint: str = "", status: int | None = None):
        super().__init__(title)
        self.title, self.detail, self.hint = title, detail, hint
        if status is not None:
            self.status = status

    def as_dict(self) -> dict:
        """JSON form, as the API returns it."""
        return {"title": self.title, "detail": self.detail, "hint": self.hint, "status": self.status}


class NotFound(EarmarkError):
    """An id or name that does not exist."""

    status = 404


class Conflict(EarmarkError):
    """The request clashes with the store's state (a run still training, a name taken)."""

    status = 409


class ClipNotFound(NotFound):
    """A clip id that does not exist: the one wording, wherever a clip is looked up."""

    def __init__(self, clip_id: int):
        super().__init__(f"no clip {clip_id}", hint="clip ids come from /api/clips or the Clips page")
        self.clip_id = clip_id


class FindingNotFound(NotFound):
    """A finding id that does not exist: the one wording, wherever a finding is looked up."""

    def __init__(self, finding_id: int):
        super().__init__(f"no finding {finding_id}",
                         hint="findings are listed on the Issues page and at /api/findings?run=R; "
                              "every `earmark analyze` replaces them")
        self.finding_id = finding_id
