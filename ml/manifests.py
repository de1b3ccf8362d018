"""Manifests → clip records: CSV/TSV, Parquet and JSON Lines tables, one row per clip (no store).

A manifest names each clip's file (``path``, relative to the manifest's folder or to ``root``) and
its ``label``, optionally its ``split`` and ``speaker``. Every other column is metadata, stored
with an inferred type (``number``, ``text`` or ``boolean``). The usual column names are
recognised (``ROLE_NAMES``); ``columns={"label": "sentence"}`` maps any other name, and
``columns={"split": None}`` ignores a column that would be picked up.

A ``fold`` column (ESC-50, UrbanSound8K) is cross-validation, not a split: it stays metadata.

Reading is all or nothing: every problem raises ``ManifestError`` (title, detail, hint) before a
single record is returned, with the line (CSV, JSON Lines) or row (Parquet) it comes from.
Metadata columns named like one of earmark's own clip fields (``RESERVED_FIELDS``) are kept under
``meta_<name>`` and the rename is listed in ``Manifest.notes``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ml.speech_commands import SPLIT_DIRS
from ml.tables import (
    MANIFEST_EXTENSIONS,
    MAX_LISTED,
    ManifestError,
    Table,
    fail_rows,
    infer_meta_type,
    read_table,
)

# Column names recognised with no option, per role, in order of preference (compared case-insensitively).
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "path": ("path", "file", "filename", "file_name", "slice_file_name"),
    "label": ("label", "class", "category"),
    "split": ("split",),
    "speaker": ("speaker", "speaker_id", "client_id"),
}
# The CLI option that maps each role to another column (named in hints; app/cli defines them).
ROLE_OPTIONS = {role: f"--{role}-column" for role in ROLE_NAMES}
# Split values a manifest may use, lower-cased: the same words as split folders.
SPLIT_VALUES = SPLIT_DIRS
# earmark's own per-clip fields (store columns, prediction and score fields the pages filter on).
# A metadata column with one of these names is renamed with META_PREFIX. The one list of them.
RESERVED_FIELDS = frozenset({
    "id", "dataset_id", "path", "label", "word", "split", "speaker", "utterance", "sample_rate",
    "n_samples", "duration_s", "channels", "content_hash", "rms_dbfs", "peak", "clipped_frac",
    "lead_silence_ms", "trail_silence_ms", "end_energy_db", "cutoff_signal", "plateau_share", "dc_offset",
    "band_step_db",
    "run_id", "clip_id", "target", "pred", "confidence", "loss", "agree", "probs",
    "cutoff_score", "label_quality", "suggested_label", "label_issue", "outlier_score", "cluster",
    "duplicate_of", "flag", "reason",
})
META_PREFIX = "meta_"
META_TYPES = ("number", "text", "boolean")


@dataclass(frozen=True)
class ClipRecord:
    """One clip as a manifest (or a name pattern) describes it, before decoding."""

    path: str  # relative to the data set root, '/' separated, never escaping it
    label: str | None  # None only until a name pattern fills it
    split: str | None  # train | validation | test, None when the data set gives none
    speaker: str | None
    meta: dict[str, Any] = field(default_factory=dict)  # column -> bool | int | float | str | None
    where: str = ""  # "train.csv line 4", for messages
    word: str | None = None  # the spoken word when it differs from the label (Speech Commands' _unknown_)
    utterance: int | None = None  # Speech Commands' <speaker>_nohash_<n>

    def with_split(self, split: str | None) -> ClipRecord:
        """A copy in another split (the constructor: ``dataclasses.replace`` is 10x slower on 100k records)."""
        return ClipRecord(self.path, self.label, split, self.speaker, self.meta, self.where, self.word, self.utterance)


@dataclass
class Manifest:
    """Clip records read from one or more manifests, with their metadata types."""

    root: Path  # the folder every record's path is relative to
    records: list[ClipRecord]
    meta_types: dict[str, str]  # column -> number | text | boolean
    sources: list[Path]  # the manifest files read, in order
    roles: dict[str, str]  # role -> the column it was read from
    split_source: str | None  # "column" | "files" (per-split manifests) | None
    notes: list[str] = field(default_factory=list)  # renamed or ignored columns, joins, patterns
    rejects: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, detail)
    list_stats: dict = field(default_factory=dict)  # Speech Commands' split-list counts (ml.speech_commands.Layout)

    @property
    def labels(self) -> list[str]:
        """Sorted class names."""
        return sorted({r.label for r in self.records if r.label is not None})


def resolve_roles(names: list[str], columns: dict[str, str | None] | None = None, source: str = "") -> dict[str, str]:
    """Role -> column name: explicit ``columns`` first, else the one usual name present.

    Raises ``ManifestError`` when a mapped column is missing or two usual names compete.
    """
    columns = columns or {}
    unknown = set(columns) - set(ROLE_NAMES)
    if unknown:
        raise ManifestError(f"unknown column role {sorted(unknown)}", f"the roles are {', '.join(ROLE_NAMES)}")
    by_lower = {n.lower(): n for n in names}
    roles: dict[str, str] = {}
    for role, usual in ROLE_NAMES.items():
        if role in columns:
            if columns[role] is not None:
                if columns[role] not in names:
                    raise ManifestError(f"{source or 'the manifest'} has no column {columns[role]!r}",
                                        f"its columns: {', '.join(names)}", f"check {ROLE_OPTIONS[role]}")
                roles[role] = columns[role]
            continue
        found = [by_lower[u] for u in usual if u in by_lower]
        if len(found) > 1:
            raise ManifestError(f"{source or 'the manifest'} has several {role} columns: {', '.join(found)}",
                                "earmark cannot tell which one to use",
                                f"name it: {ROLE_OPTIONS[role]} {found[0]}")
        if found:
            roles[role] = found[0]
    return roles


def clean_path(raw: str) -> str | None:
    """A manifest path as a '/'-separated relative path, or None when it is absolute or climbs out (..)."""
    p = raw.strip()
    if p and "\\" not in p and "//" not in p and p[0] not in "/." and "/." not in p and ":" not in p[:2] \
            and p[-1] != "/":
        return p  # the usual case, already clean
    p = p.replace("\\", "/")
    if not p or p.startswith("/") or (len(p) > 1 and p[1] == ":"):
        return None
    parts = [x for x in p.split("/") if x not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def normalise_split(value: Any) -> str | None:
    """'train' | 'validation' | 'test' for a usual split word (any case), else None."""
    return SPLIT_VALUES.get(str(value).strip().lower()) if value is not None else None


def check_files(root: Path, records: list[ClipRecord], source: str = "the manifest") -> None:
    """Every record names a regular file inside ``root`` (symlinks followed and kept inside)."""
    real_root = os.path.realpath(root)
    inside = real_root.rstrip(os.sep) + os.sep
    dirs: dict[str, bool] = {}
    missing, outside, not_file = [], [], []
    prefix = os.path.join(root, "")
    for r in records:
        full = prefix + r.path  # paths are clean (clean_path): plain concatenation is enough
        try:
            st = os.lstat(full)
        except OSError:
            missing.append(f"{r.where}: {r.path}")
            continue
        d = r.path.rpartition("/")[0]
        ok = dirs.get(d)
        if ok is None:
            ok = dirs[d] = (os.path.realpath(os.path.join(root, d)) + os.sep).startswith(inside)
        if stat.S_ISLNK(st.st_mode):
            ok = ok and os.path.realpath(full).startswith(inside)
            try:
                st = os.stat(full)
            except OSError:
                missing.append(f"{r.where}: {r.path} (a broken link)")
                continue
        if not ok:
            outside.append(f"{r.where}: {r.path}")
        elif not stat.S_ISREG(st.st_mode):
            not_file.append(f"{r.where}: {r.path}")
    if missing:
        raise fail_rows(f"{source} names {len(missing)} file(s) that do not exist", missing,
                         f"paths are relative to {root}; fix them or remove those rows")
    if outside:
        raise fail_rows(f"{source} names {len(outside)} file(s) outside {root}", outside,
                         "earmark reads only files inside the data set folder (no links out of it)")
    if not_file:
        raise fail_rows(f"{source} names {len(not_file)} path(s) that are not regular files", not_file)


def meta_name(name: str, taken: set[str], notes: list[str], source: str) -> str:
    """``name``, or ``meta_<name>`` (with a note) when it is one of earmark's own field names."""
    if name.lower() not in RESERVED_FIELDS:
        return name
    new = META_PREFIX + name
    if new in taken:
        raise ManifestError(f"{source}: the column {name!r} clashes with earmark's own field {name!r}",
                            f"it would be renamed {new!r}, but that name is taken too",
                            "rename one of the two columns")
    notes.append(f"column {name!r} is earmark's own field name: kept as metadata {new!r}")
    return new


def table_records(table: Table, columns: dict[str, str | None] | None = None, fixed_split: str | None = None,
                  require_label: bool = True) -> tuple[list[ClipRecord], dict[str, str], dict[str, str], list[str]]:
    """(records, raw meta types, roles, notes) for one table; metadata values are still as read."""
    src = table.path.name
    names = list(table.columns)
    roles = resolve_roles(names, columns, src)
    if "path" not in roles:
        raise ManifestError(f"{src} has no path column", f"its columns: {', '.join(names)}",
                            f"name the column of file paths with {ROLE_OPTIONS['path']} "
                            f"(recognised: {', '.join(ROLE_NAMES['path'])})")
    if require_label and "label" not in roles:
        raise ManifestError(f"{src} has no label column", f"its columns: {', '.join(names)}",
                            f"name it with {ROLE_OPTIONS['label']} (recognised: {', '.join(ROLE_NAMES['label'])}), "
                            "or give --name-pattern with a (?P<label>...) group")
    notes = [f"{src}: column {c!r} holds nested values (lists, structs, bytes) and is ignored" for c in table.ignored]
    used = set(roles.values())
    meta_cols = [c for c in names if c not in used]
    taken = set(names)
    meta_names = {c: meta_name(c, taken, notes, src) for c in meta_cols}
    col = table.columns
    n = len(table)
    empty = [None] * n
    paths, labels = col[roles["path"]], col.get(roles.get("label", ""), empty)
    splits, speakers = col.get(roles.get("split", ""), empty), col.get(roles.get("speaker", ""), empty)
    bad_path, no_label, bad_split, records = [], [], {}, []
    for i in range(n):
        where = f"{src} {table.where(i)}"
        rel = clean_path(str(paths[i])) if paths[i] is not None else None
        if rel is None:
            bad_path.append(f"{where}: {paths[i]!r}")
            continue
        label = labels[i]
        label = None if label is None or str(label).strip() == "" else str(label).strip()
        if require_label and label is None:
            no_label.append(where)
        split = None
        if "split" in roles:
            split = normalise_split(splits[i])
            if split is None or (fixed_split is not None and split != fixed_split):
                bad_split.setdefault(str(splits[i]), []).append(table.where(i))
        split = fixed_split or split
        spk = speakers[i]
        spk = None if spk is None or str(spk).strip() == "" else str(spk).strip()
        meta = {meta_names[c]: col[c][i] for c in meta_cols}
        records.append(ClipRecord(rel, label, split, spk, meta, where))
    if bad_path:
        raise fail_rows(f"{src} has {len(bad_path)} path(s) that are empty, absolute or climb out of its folder",
                         bad_path, "paths are relative to the manifest's folder, with no '..'")
    if no_label:
        raise fail_rows(f"{src} has {len(no_label)} row(s) with no label", no_label)
    if bad_split:
        detail = [f"{v!r} on {', '.join(w[:MAX_LISTED])}{' ...' if len(w) > MAX_LISTED else ''}"
                  for v, w in bad_split.items()]
        what = f"a split other than {fixed_split!r} (from the file name)" if fixed_split else "unknown split values"
        raise ManifestError(f"{src} has {what}", "; ".join(detail),
                            "use train/training, val/valid/validation/dev or test/testing, "
                            f"or ignore the column with {ROLE_OPTIONS['split']} ''")
    raw_types = {meta_names[c]: table.typed[c] for c in meta_cols if c in table.typed}
    return records, raw_types, roles, notes


def finish(root: Path, records: list[ClipRecord], raw_types: dict[str, str], verify: bool,
           source: str) -> tuple[list[ClipRecord], dict[str, str]]:
    """Check duplicates (and files when ``verify``), and give every metadata column one type."""
    first: dict[str, str] = {}
    dups = []
    for r in records:
        if r.path in first:
            dups.append(f"{r.path} ({first[r.path]} and {r.where})")
        else:
            first[r.path] = r.where
    if dups:
        raise fail_rows(f"{source} lists {len(dups)} path(s) twice", dups, "list every clip once")
    if verify:
        check_files(root, records, source)
    names = list(dict.fromkeys(k for r in records for k in r.meta))
    types: dict[str, str] = {}
    for name in names:
        values = [r.meta.get(name) for r in records]
        if name in raw_types:
            types[name] = raw_types[name]
            if raw_types[name] == "text":  # '' is missing, as in CSV
                values = [None if v is None or v == "" else str(v) for v in values]
        else:
            types[name], values = infer_meta_type(values)
        if types[name] == "number":  # NaN (pandas' missing number, or the text "nan") is missing
            values = [None if v != v else v for v in values]
        for r, v in zip(records, values, strict=True):
            r.meta[name] = v  # each record owns its meta dict; no copy of 105k records
    return records, types


def read_manifest(path: str | Path, columns: dict[str, str | None] | None = None, root: str | Path | None = None,
                  verify_files: bool = True, require_label: bool = True) -> Manifest:
    """Read one manifest file into clip records (all or nothing).

    ``root`` is the folder the paths are relative to (default: the manifest's folder).
    ``verify_files`` checks that every path is a regular file inside ``root``.
    ``require_label=False`` lets a name pattern supply the labels afterwards.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    table = read_table(path)
    if len(table) == 0:
        raise ManifestError(f"{path.name} lists no clips", "it has a header but no rows")
    records, raw_types, roles, notes = table_records(table, columns, None, require_label)
    records, types = finish(root, records, raw_types, verify_files, path.name)
    return Manifest(root, records, types, [path], roles, "column" if "split" in roles else None, notes)


def find_split_manifests(folder: Path, candidates: list[Path] | None = None) -> dict[str, Path]:
    """split -> manifest file for ``train.csv`` / ``val.csv`` / ``test.csv`` style files in ``folder``.

    Any manifest extension; stems as split folders (train/training, val/valid/validation/dev,
    test/testing); only among ``candidates`` when given. Empty unless there is a train manifest
    and at least one other.
    """
    found: dict[str, list[Path]] = {}
    for p in sorted(candidates if candidates is not None else Path(folder).iterdir()):
        split = SPLIT_VALUES.get(p.stem.lower())
        if split and p.suffix.lower() in MANIFEST_EXTENSIONS and p.is_file():
            found.setdefault(split, []).append(p)
    if "train" not in found or len(found) < 2:
        return {}
    twice = {s: ps for s, ps in found.items() if len(ps) > 1}
    if twice:
        s, ps = next(iter(twice.items()))
        raise ManifestError(f"several {s} manifests in {folder}", ", ".join(p.name for p in ps),
                            "keep one manifest per split, or name one with --manifest")
    return {s: found[s][0] for s in ("train", "validation", "test") if s in found}


def read_split_manifests(files: dict[str, Path], columns: dict[str, str | None] | None = None,
                         root: str | Path | None = None, verify_files: bool = True,
                         require_label: bool = True) -> Manifest:
    """Read per-split manifests (``find_split_manifests``) as one set; each file's name gives the split.

    A path listed in two files is a duplicate (an error); a split column, if any, must agree.
    """
    first = next(iter(files.values()))
    root = Path(root) if root is not None else first.parent
    records: list[ClipRecord] = []
    raw_types: dict[str, str] = {}
    notes: list[str] = []
    roles: dict[str, str] = {}
    for split, path in files.items():
        table = read_table(path)
        recs, types, roles_i, notes_i = table_records(table, columns, split, require_label)
        records += recs
        notes += notes_i
        roles.update(roles_i)
        for k, t in types.items():
            raw_types[k] = t if raw_types.get(k, t) == t else "text"
    if not records:
        raise ManifestError("the split manifests list no clips", ", ".join(p.name for p in files.values()))
    records, types = finish(root, records, raw_types, verify_files, "the split manifests")
    return Manifest(root, records, types, list(files.values()), roles, "files", notes)


def join_speakers(manifest: Manifest, table_path: str | Path, key: str | None = None) -> Manifest:
    """Join a per-speaker table (FSDD's ``speakers.csv``) onto the clips by speaker.

    ``key`` is the table's speaker column (default: a usual speaker name). Every other column
    becomes clip metadata; clips of speakers missing from the table get None (counted in notes).
    """
    table = read_table(table_path)
    src = table.path.name
    key = key or resolve_roles(list(table.columns), None, src).get("speaker")
    if key is None or key not in table.columns:
        raise ManifestError(f"{src} has no speaker column", f"its columns: {', '.join(table.columns)}",
                            f"name one of: {', '.join(ROLE_NAMES['speaker'])}")
    if not any(r.speaker for r in manifest.records):
        raise ManifestError(f"cannot join {src}: the clips have no speakers",
                            hint="give speakers with a speaker column or a (?P<speaker>...) group in --name-pattern")
    notes = list(manifest.notes)
    taken = set(manifest.meta_types) | set(table.columns)
    cols = [c for c in table.columns if c != key]
    names = {c: meta_name(c, taken, notes, src) for c in cols}
    clash = sorted(set(names.values()) & set(manifest.meta_types))
    if clash:
        raise ManifestError(f"{src} and the manifest both have the column(s) {', '.join(clash)}",
                            hint="rename the column in one of them")
    keys = [None if v is None else str(v).strip() for v in table.columns[key]]
    seen: dict[str, str] = {}
    for i, k in enumerate(keys):
        w = table.where(i)
        if k in seen:
            raise ManifestError(f"{src} lists speaker {k!r} twice", f"{seen[k]} and {w}")
        seen[k] = w
    typed = {}
    for c in cols:
        if c in table.typed:
            typed[names[c]] = (table.typed[c], table.columns[c])
        else:
            typed[names[c]] = infer_meta_type(table.columns[c])
    row = {k: i for i, k in enumerate(keys)}
    unmatched = 0
    out = []
    for r in manifest.records:
        i = row.get(r.speaker) if r.speaker is not None else None
        unmatched += i is None
        extra = {n: (vals[i] if i is not None else None) for n, (_, vals) in typed.items()}
        out.append(replace(r, meta={**r.meta, **extra}))
    notes.append(f"joined {', '.join(names.values())} from {src} by speaker"
                 + (f"; {unmatched} clip(s) have a speaker not in it" if unmatched else ""))
    types = {**manifest.meta_types, **{n: t for n, (t, _) in typed.items()}}
    return replace(manifest, records=out, meta_types=types, notes=notes)
