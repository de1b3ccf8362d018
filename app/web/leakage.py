"""The overview's leakage report in words: one sentence per check, with its count and examples.

``Dataset.leakage`` is what ingest (``app.pipeline.ingest_report.leakage_report``) and analyze
(near duplicates) stored: lists of examples, a ``counts`` dict and plain counts. Pages must not show
its raw key names, nor count the keys of a dict: ``leakage_checks`` reads it into sentences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXAMPLES = 10


@dataclass
class LeakCheck:
    """One check: its key, how many it found (``None``: not checked), a sentence, and examples."""

    key: str
    n: int | None
    sentence: str
    examples: list[str] = field(default_factory=list)

    @property
    def bad(self) -> bool:
        """True when the check found leakage."""
        return bool(self.n)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _count(leakage: dict, key: str) -> int | None:
    counts = leakage.get("counts") if isinstance(leakage.get("counts"), dict) else {}
    if key in counts:
        return int(counts[key] or 0)
    if f"{key}_count" in leakage:
        return int(leakage[f"{key}_count"] or 0)
    items = leakage.get(key)
    return len(items) if isinstance(items, list) else None


def _example(key: str, item) -> str:
    if not isinstance(item, dict):
        return str(item)
    if key == "speakers_in_several_splits":
        return f"speaker {item.get('speaker')}: {', '.join(item.get('splits', []))}"
    if key == "identical_audio_across_splits":
        paths = item.get("paths", [])
        return f"{', '.join(paths[:3])}{' …' if len(paths) > 3 else ''} ({', '.join(item.get('splits', []))})"
    if key == "near_duplicates_across_splits":
        return (f"{item.get('a')} ({item.get('a_split')}) ≈ {item.get('b')} ({item.get('b_split')}), "
                f"cosine {item.get('cosine')}")
    return ", ".join(f"{k} {v}" for k, v in item.items())


def leakage_checks(leakage: dict | None) -> dict:
    """The leakage report of one data set as sentences.

    Returns ``{checks: [LeakCheck], clean: sentence or None, notes: [sentence]}``: ``clean`` is the
    one-line all-clear when every check that ran found nothing; ``notes`` say what was not checked
    and how many extra copies of identical audio there are (inside a split too: not leakage).
    """
    leakage = leakage or {}
    # reports from before ingest recorded n_speakers: speakers exist if any leaked, else unknown (say so)
    n_speakers = leakage.get("n_speakers")
    has_speakers = bool(n_speakers) or n_speakers is None
    checks: list[LeakCheck] = []
    notes: list[str] = []

    def add(key: str, found: str, none: str) -> None:
        n = _count(leakage, key)
        if n is None:
            return
        items = leakage.get(key) if isinstance(leakage.get(key), list) else []
        checks.append(LeakCheck(key, n, found if n else none, [_example(key, i) for i in items[:EXAMPLES]]))

    n_files = _count(leakage, "files_in_several_splits")
    add("files_in_several_splits", _plural(n_files or 0, "file is", "files are") + " listed in more than one split.",
        "No file is listed in more than one split.")
    if has_speakers:
        n_sp = _count(leakage, "speakers_in_several_splits") or 0
        add("speakers_in_several_splits",
            _plural(n_sp, "speaker has", "speakers have") + " clips in more than one split: the model may be "
            "scored on voices it trained on.", "No speaker has clips in more than one split."
            if n_speakers is not None else "No speaker found in more than one split (if the clips name speakers).")
    else:
        notes.append("Speaker leakage not checked: this data set names no speakers.")
    if has_speakers and leakage.get("speaker_leakage") == "partial":  # ingest's SplitPlan.speaker_leakage
        notes.append("Speaker leakage only partly checked: some clips name no speaker.")
    n_id = _count(leakage, "identical_audio_across_splits") or 0
    add("identical_audio_across_splits", _plural(n_id, "recording appears", "recordings appear")
        + " identically in more than one split.", "No identical audio appears in more than one split.")
    n_near = _count(leakage, "near_duplicates_across_splits")
    if n_near is None:
        notes.append("Near duplicates across splits are checked when you run earmark analyze.")
    else:
        add("near_duplicates_across_splits", _plural(n_near, "pair", "pairs") + " of near-duplicate clips "
            "(embeddings almost the same) cross splits.", "No near-duplicate clips cross splits.")
    dup = int(leakage.get("duplicate_audio") or 0)
    if dup:
        notes.append(_plural(dup, "extra copy", "extra copies") + " of identical audio in all (within a split too).")
    clean = None
    if checks and not any(c.bad for c in checks):
        what = "No file, speaker or identical audio" if has_speakers else "No file or identical audio"
        clean = f"{what} appears in more than one split."
    return dict(checks=checks, clean=clean, notes=notes)
