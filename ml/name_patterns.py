"""Fields from file names: ``--name-pattern REGEX`` with named groups (no store).

Groups ``label``, ``speaker`` and ``split`` fill those fields; every other named group becomes
metadata (its type inferred as for manifest columns). The pattern is matched at the start of the
file's name (``re.match``: anchored at the start, not at the end, so ``\\.wav`` may be left off);
a pattern with a ``/`` in it is matched against the path relative to the data set root instead.

It works alone (every audio file under the folder, ``scan_name_pattern``) or on top of a manifest
(``apply_name_pattern``). A file the pattern does not match is a reject with the reason; a
pattern that matches no file at all is an error. A label (or speaker, or split) from the pattern
that differs from the manifest's is an error naming the rows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ml.audio import AUDIO_EXTENSIONS
from ml.manifests import ClipRecord, Manifest, meta_name, normalise_split
from ml.tables import ManifestError, fail_rows, infer_meta_type

# Folders of noise recordings, not clips: Speech Commands' and the Arabic set's.
NOISE_DIRS = ("_background_noise_", "background_noise")
FIELD_GROUPS = ("label", "speaker", "split")
REJECT_REASON = "name_pattern"  # Reject.reason for a file the pattern does not match
PATTERN_HELP = ("a regular expression with named groups, e.g. (?P<label>\\d)_(?P<speaker>[a-z]+)_(?P<take>\\d+)\\.wav; "
                "groups label, speaker and split fill those fields, any other group is metadata")


@dataclass(frozen=True)
class NamePattern:
    """A compiled ``--name-pattern``."""

    text: str
    regex: re.Pattern[str]
    on_path: bool  # match the relative path (the pattern has a '/'), else the file name

    @property
    def groups(self) -> tuple[str, ...]:
        """The named groups, in pattern order."""
        return tuple(self.regex.groupindex)

    def fields(self, rel: str) -> dict[str, str] | None:
        """The named groups' values for a '/'-separated relative path, or None when it does not match."""
        m = self.regex.match(rel if self.on_path else rel.rsplit("/", 1)[-1])
        return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}


def compile_pattern(text: str | NamePattern) -> NamePattern:
    """Compile a ``--name-pattern``; raises ``ManifestError`` for bad syntax or no named group."""
    if isinstance(text, NamePattern):
        return text
    try:
        regex = re.compile(text)
    except re.error as exc:
        raise ManifestError("--name-pattern is not a valid regular expression",
                            f"{exc.msg} at position {exc.pos} of {text!r}", PATTERN_HELP) from None
    if not regex.groupindex:
        raise ManifestError("--name-pattern has no named group", f"{text!r}", PATTERN_HELP)
    return NamePattern(text, regex, "/" in text)


def walk_audio(root: Path) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """(clip paths, noise-file paths, rejects) of every audio file under ``root``, '/'-separated, sorted.

    Hidden entries are skipped; links are followed only when they stay inside ``root``; names
    that are not valid text are rejects; anything that is not a regular file (FIFOs, sockets) is ignored.
    """
    root = Path(root)
    inside = os.path.realpath(root).rstrip(os.sep) + os.sep
    clips, noise, rejects = [], [], []
    stack = [("", False)]
    while stack:
        prefix, is_noise = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, prefix) if prefix else root))
        except OSError:
            continue
        for de in entries:
            if de.name.startswith("."):
                continue
            rel = f"{prefix}/{de.name}" if prefix else de.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                rejects.append((rel.encode("utf-8", "replace").decode(), "bad_name", "the file name is not valid UTF-8"))
                continue
            if de.is_symlink() and not (os.path.realpath(de.path) + os.sep).startswith(inside):
                continue
            try:
                if de.is_dir():
                    if not de.is_symlink():  # no loops through linked folders
                        stack.append((rel, is_noise or de.name in NOISE_DIRS))
                    continue
                if not de.is_file() or not de.name.lower().endswith(AUDIO_EXTENSIONS):
                    continue
            except OSError:
                continue
            (noise if is_noise else clips).append(rel)
    return sorted(clips), sorted(noise), rejects


def apply_name_pattern(manifest: Manifest, pattern: str | NamePattern, label_from_folder: bool = False) -> Manifest:
    """Fill labels, speakers, splits and metadata from the file names; non-matching files become rejects.

    ``label_from_folder``: when the pattern has no ``label`` group and a record has no label, take
    the name of the folder holding the file. Raises ``ManifestError`` when no file matches, when
    the pattern disagrees with the manifest, or when a clip is left with no label.
    """
    pat = compile_pattern(pattern)
    notes = list(manifest.notes)
    meta_groups = [g for g in pat.groups if g not in FIELD_GROUPS]
    taken = set(manifest.meta_types) | set(pat.groups)
    names = {g: meta_name(g, taken, notes, "--name-pattern") for g in meta_groups}
    both = sorted(set(names.values()) & set(manifest.meta_types))
    if both:
        raise ManifestError(f"the manifest and --name-pattern both give {', '.join(both)}",
                            hint="rename the group in the pattern")
    matched: list[tuple[ClipRecord, dict[str, str]]] = []
    rejects = list(manifest.rejects)
    for r in manifest.records:
        f = pat.fields(r.path)
        if f is None:
            rejects.append((r.path, REJECT_REASON, f"the name does not match the pattern {pat.text}"))
        else:
            matched.append((r, f))
    if not matched:
        sample = ", ".join(r.path.rsplit("/", 1)[-1] for r in manifest.records[:3])
        raise ManifestError("--name-pattern matches no file", f"pattern {pat.text!r}; names look like: {sample}",
                            "the pattern is matched from the start of each file name; " + PATTERN_HELP)
    conflicts: dict[str, list[str]] = {}
    bad_split: list[str] = []
    no_label: list[str] = []
    out: list[ClipRecord] = []
    for r, f in matched:
        new = {}
        for g in ("label", "speaker"):
            if g in f:
                old = getattr(r, g)
                if old is not None and old != f[g]:
                    conflicts.setdefault(g, []).append(f"{r.where or r.path}: {old!r} vs {f[g]!r} from the name")
                new[g] = f[g]
        if "split" in f:
            s = normalise_split(f["split"])
            if s is None:
                bad_split.append(f"{r.path}: {f['split']!r}")
            elif r.split is not None and r.split != s:
                conflicts.setdefault("split", []).append(f"{r.where or r.path}: {r.split!r} vs {s!r} from the name")
            new["split"] = s
        label = new.get("label", r.label)
        if label is None and label_from_folder and "/" in r.path:
            new["label"] = label = r.path.rsplit("/", 2)[-2]
        if label is None:
            no_label.append(r.where or r.path)
        meta = {**r.meta, **{names[g]: f.get(g) for g in meta_groups}}
        out.append(ClipRecord(r.path, new.get("label", r.label), new.get("split", r.split),
                              new.get("speaker", r.speaker), meta, r.where, r.word, r.utterance))
    for g, rows in conflicts.items():
        raise fail_rows(f"--name-pattern gives {len(rows)} clip(s) another {g} than the manifest", rows,
                        f"fix the manifest or the pattern; or drop the pattern's {g} group")
    if bad_split:
        raise fail_rows("--name-pattern reads unknown split values", bad_split,
                        "use train/training, val/valid/validation/dev or test/testing")
    if no_label:
        raise fail_rows(f"{len(no_label)} clip(s) have no label", no_label,
                        "add a (?P<label>...) group to --name-pattern, or a label column to the manifest")
    types = dict(manifest.meta_types)
    for g in meta_groups:
        types[names[g]], values = infer_meta_type([r.meta[names[g]] for r in out])
        for r, v in zip(out, values, strict=True):
            r.meta[names[g]] = v  # the meta dicts were made above for these records
    n_rej = len(rejects) - len(manifest.rejects)
    notes.append(f"--name-pattern {pat.text} matched {len(out)} file(s)" + (f", {n_rej} did not match" if n_rej else ""))
    return replace(manifest, records=out, meta_types=types, notes=notes, rejects=rejects)


def scan_name_pattern(root: str | Path, pattern: str | NamePattern) -> tuple[Manifest, list[str]]:
    """(clip records, noise files) for every audio file under ``root``, with fields from ``pattern``.

    Files in noise folders (``NOISE_DIRS``) are noise, not clips. Without a ``label`` group the
    label is the file's folder name (an error for files at the top).
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root} is not a folder")
    clips, noise, rejects = walk_audio(root)
    if not clips:
        raise ManifestError(f"no audio files under {root}", f"audio means {', '.join(AUDIO_EXTENSIONS)}")
    records = [ClipRecord(rel, None, None, None, {}, rel) for rel in clips]
    base = Manifest(root, records, {}, [], {}, None, [], rejects)
    return apply_name_pattern(base, pattern, label_from_folder=True), noise
