"""Which layout a folder holds, and its clip records with speaker-disjoint splits (no store).

``plan_layout(path, ...)`` decides, without decoding anything, how a data set is read:

* a manifest file given as the path, or with ``manifest=``: ``manifest``;
* Speech Commands markers (split lists, ``_background_noise_/``): the Speech Commands layouts, as before;
* ``train`` / ``val(idation)`` / ``test`` manifests at the top: ``split_manifests`` (the Arabic set);
* exactly one other manifest at the top (a table with a path column): ``manifest``;
* ``name_pattern=``: ``name_pattern`` (every audio file under the folder);
* two or more class folders with audio: the Speech Commands folder layouts, as before;
* otherwise ``ManifestError`` naming the options, with the command to try.

A table at the top with a speaker column and no path column (FSDD's ``speakers.csv``) is a
speaker table, joined onto the clips when they have speakers. ``background_noise/`` and
``_background_noise_/`` hold noise, not clips.

Speakers for the Arabic set: when the clips come with no speaker and EVERY file name matches a
known speaker pattern (``KNOWN_SPEAKER_PATTERNS``), ``load_plan`` applies it and says so in the
notes; a single non-matching name and nothing is applied. Without speakers, splits and the
leakage report could only hash whole file names, which is the false assurance issue 12 is about.

``assign_splits`` gives records without a split one: speaker-disjoint (Speech Commands' rule, the
SHA-1 of the speaker id into 80/10/10) when speakers are known, else by file name, and says
which in ``SplitPlan.speaker_leakage`` ("checked", "partial" or "not_checked").
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from ml import speech_commands as sc
from ml.manifests import (
    ROLE_NAMES,
    ClipRecord,
    Manifest,
    find_split_manifests,
    join_speakers,
    read_manifest,
    read_split_manifests,
)
from ml.name_patterns import NOISE_DIRS, apply_name_pattern, compile_pattern, scan_name_pattern, walk_audio
from ml.tables import MANIFEST_EXTENSIONS, ManifestError, peek_columns

SC_FOLDER_KINDS = ("speech_commands", "test_archive", "split_folders", "folders")
# Speaker patterns applied with no option when every file name matches (see the module docstring).
KNOWN_SPEAKER_PATTERNS = {"Arabic Speech Commands": r"(?P<speaker>\d{8})_NO_(?P<round>\d+)"}


@dataclass
class LayoutPlan:
    """How a data set will be read."""

    kind: str  # split_manifests | manifest | name_pattern | speech_commands | test_archive | split_folders | folders
    root: Path  # the folder clip paths are relative to
    manifests: dict[str, Path] = field(default_factory=dict)  # split -> file; {"all": file} for one manifest
    name_pattern: str | None = None
    speaker_table: Path | None = None
    noise_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    given: Path | None = None  # the path the user gave (a folder or a manifest file)
    audio_dir: str | None = None  # the manifests' paths are relative to this folder inside the given one

    def command(self) -> str:
        """The explicit ``earmark ingest`` command that reads the data set this way."""
        parts = ["earmark", "ingest", str(self.given or self.root)]
        if self.kind == "manifest" and self.given != self.manifests.get("all"):
            parts += ["--manifest", str(self.manifests["all"])]
        if self.audio_dir:
            parts += ["--audio-dir", self.audio_dir]
        if self.name_pattern:
            parts += ["--name-pattern", self.name_pattern]
        return shlex.join(parts)


@dataclass(frozen=True)
class SplitPlan:
    """Where the splits came from and whether speaker leakage can be checked."""

    source: str  # lists | archive | folders | column | files | pattern | speaker_hash | file_hash | mixed_hash
    # checked | partial | not_checked: what the leakage report may claim (app/web/leakage.py words it);
    # never "no speaker leakage" unless checked
    speaker_leakage: str
    speakers_known: int  # clips with a speaker
    n_clips: int


def _top_tables(root: Path) -> tuple[list[Path], list[Path]]:
    """(manifests: tables with a path column, speaker tables: a speaker column and no path) at the top of ``root``."""
    manifests, speakers = [], []
    for p in sorted(root.iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in MANIFEST_EXTENSIONS:
            continue
        names = {c.lower() for c in peek_columns(p)}
        if names & set(ROLE_NAMES["path"]):
            manifests.append(p)
        elif names & set(ROLE_NAMES["speaker"]):
            speakers.append(p)
    return manifests, speakers


def _noise(root: Path) -> list[str]:
    out = []
    for d in NOISE_DIRS:
        if (root / d).is_dir():
            out += [f"{d}/{rel}" for rel in walk_audio(root / d)[0]]
    return out


def _pattern_hint(root: Path, names: list[str]) -> str:
    """A --name-pattern guessed from the first file's name: one group per '_'-separated part."""
    stem, dot, ext = names[0].rsplit("/", 1)[-1].rpartition(".")
    groups = ["label", "speaker"] + [f"part{i}" for i in range(3, 9)]
    parts = stem.split("_")[:8]
    regex = "_".join(f"(?P<{g}>[^_]+)" for g, _ in zip(groups, parts, strict=False)) + (r"\." + ext if dot else "")
    return (f"e.g. earmark ingest {shlex.quote(str(root))} --name-pattern {shlex.quote(regex)} "
            f"(rename the groups to what the parts of {names[0].rsplit('/', 1)[-1]!r} mean), "
            f"or earmark ingest {shlex.quote(str(root))} --manifest FILE")


def _audio_root(folder: Path, audio_dir: str | Path | None) -> Path:
    if audio_dir is None:
        return folder
    root = folder / audio_dir
    if not root.is_dir() or not (os.path.realpath(root) + os.sep).startswith(os.path.realpath(folder) + os.sep):
        raise ManifestError(f"--audio-dir {audio_dir} is not a folder inside {folder}")
    return root


def plan_layout(path: str | Path, manifest: str | Path | None = None, name_pattern: str | None = None,
                speaker_table: str | Path | None = None, audio_dir: str | Path | None = None) -> LayoutPlan:
    """Decide how to read ``path`` (a folder, or a manifest file); raises ``ManifestError`` when it cannot tell.

    A manifest's paths are relative to its folder, or to the folder given with ``manifest=``, or
    to ``audio_dir`` inside that folder (Common Voice's ``clips/``, ESC-50's ``audio/``).
    """
    given = Path(path)
    adir = None if audio_dir is None else str(audio_dir)
    if name_pattern is not None:
        compile_pattern(name_pattern)  # a bad pattern fails before anything is listed
    if given.is_file():
        if manifest is not None:
            raise ManifestError("give either a manifest file or --manifest, not both", f"{given} and {manifest}")
        manifest, given_root = given, given.parent
    elif given.is_dir():
        given_root = given
    else:
        raise ManifestError(f"{given} does not exist", hint="give a data set folder or a manifest file")
    spk = Path(speaker_table) if speaker_table is not None else None
    if manifest is not None:
        m = Path(manifest)
        if not m.is_absolute() and not m.exists() and (given_root / m).exists():
            m = given_root / m
        auto_spk = _top_tables(given_root)[1]
        root = _audio_root(given_root, adir)
        return LayoutPlan("manifest", root, {"all": m}, name_pattern, spk or (auto_spk[0] if len(auto_spk) == 1
                          else None), _noise(root), given=given, audio_dir=adir)
    root = given_root
    kind = sc.detect_layout(root)
    no_manifest = ManifestError("--audio-dir is for manifests", f"{root} has no manifest earmark would read",
                                "point earmark at the audio folder itself")
    if kind in ("speech_commands", "test_archive"):
        if adir is not None:
            raise no_manifest
        return LayoutPlan(kind, root, name_pattern=name_pattern, speaker_table=spk, given=given)
    tables, speakers = _top_tables(root)
    spk = spk or (speakers[0] if len(speakers) == 1 else None)
    split_files = find_split_manifests(root, tables) if tables else {}
    if split_files:
        notes = ["splits from the manifests' names: " + ", ".join(f"{p.name} -> {s}" for s, p in split_files.items())]
        others = [t.name for t in tables if t not in split_files.values()]
        if others:
            notes.append(f"not read (not a split's manifest): {', '.join(others)}; name one with --manifest instead")
        data = _audio_root(root, adir)
        return LayoutPlan("split_manifests", data, split_files, name_pattern, spk, _noise(data), notes, given, adir)
    if len(tables) == 1:
        data = _audio_root(root, adir)
        return LayoutPlan("manifest", data, {"all": tables[0]}, name_pattern, spk, _noise(data), given=given,
                          audio_dir=adir)
    noise = _noise(root)
    if len(tables) > 1:
        cmds = "; ".join(f"earmark ingest {shlex.quote(str(root))} --manifest {t.name}" for t in tables)
        raise ManifestError(f"{root} holds several manifests", ", ".join(t.name for t in tables),
                            f"say which one: {cmds}")
    if adir is not None:
        raise no_manifest
    if name_pattern is not None:
        return LayoutPlan("name_pattern", root, {}, name_pattern, spk, noise, given=given)
    clips = walk_audio(root)[0]
    if not clips:
        raise ManifestError(f"no audio files under {root}",
                            "earmark reads Speech Commands-style folders, manifests (CSV, TSV, Parquet, JSON Lines) "
                            "or files named by a pattern", "point it at the folder that holds the audio")
    class_dirs = {c.split("/")[-2] for c in clips if c.count("/") >= 1}
    # one class folder is a data set only under Speech Commands naming (``<speaker>_nohash_<n>``): a
    # lone folder of other files (FSDD's recordings/) holds labels earmark cannot see
    sc_named = len(class_dirs) == 1 and all("_nohash_" in c.rsplit("/", 1)[-1] for c in clips)
    if kind == "split_folders" or ((len(class_dirs) >= 2 or sc_named) and all(c.count("/") == 1 for c in clips)):
        return LayoutPlan(kind, root, name_pattern=None, speaker_table=spk, noise_files=noise, given=given)
    tops = {c.split("/", 1)[0] for c in clips}
    if len(tops) == 1 and all(c.count("/") == 2 for c in clips):
        inner = root / tops.pop()
        raise ManifestError(f"earmark cannot tell the labels of the audio under {root}",
                            f"the class folders are one level down, in {inner.name}/",
                            f"try: earmark ingest {shlex.quote(str(inner))}")
    raise ManifestError(f"earmark cannot tell the labels of the audio under {root}",
                        f"{len(clips)} audio file(s) but no class folders (one folder per label), "
                        "no manifest (a table with path and label columns) and no --name-pattern",
                        _pattern_hint(root, clips))


def _from_speech_commands(plan: LayoutPlan) -> tuple[Manifest, str]:
    layout = sc.scan(plan.root)
    plan.noise_files = sorted(set(plan.noise_files) | set(layout.noise_files))
    records = [ClipRecord(e.path, e.label, e.split, e.speaker, {}, e.path, e.word, e.utterance)
               for e in layout.entries]
    # the folder walk's refusals (links out of the root, pipes, bad names) and the list counts go along
    return Manifest(plan.root, records, {}, [], {}, layout.split_source, rejects=list(layout.rejects),
                    list_stats=dict(layout.list_stats)), layout.split_source


def _auto_speakers(m: Manifest) -> Manifest:
    """Apply a known speaker pattern when the clips have no speaker and every name matches it."""
    if any(r.speaker for r in m.records):
        return m
    for name, regex in KNOWN_SPEAKER_PATTERNS.items():
        pat = compile_pattern(regex)
        if all(pat.fields(r.path) is not None for r in m.records):
            out = apply_name_pattern(m, pat)
            out.notes.append(f"speakers read from the file names ({name} naming, every file matched): "
                             f"--name-pattern {shlex.quote(regex)}; give --name-pattern to read them otherwise")
            return out
    return m


def load_plan(plan: LayoutPlan, columns: dict[str, str | None] | None = None, verify_files: bool = True,
              auto_speakers: bool = True, validation_percentage: float = 10.0,
              testing_percentage: float = 10.0) -> tuple[Manifest, SplitPlan]:
    """Read the clip records a plan names, with speakers, speaker metadata and a split for every clip.

    All or nothing: raises ``ManifestError`` (or ``speech_commands.LayoutError``) before
    returning anything when the data set is not readable as planned.
    """
    pattern = compile_pattern(plan.name_pattern) if plan.name_pattern else None
    needs_label = pattern is None or "label" not in pattern.groups
    if plan.kind == "split_manifests":
        m = read_split_manifests(plan.manifests, columns, plan.root, verify_files, needs_label)
    elif plan.kind == "manifest":
        m = read_manifest(plan.manifests["all"], columns, plan.root, verify_files, needs_label)
    elif plan.kind == "name_pattern":
        m, noise = scan_name_pattern(plan.root, pattern)
        plan.noise_files = sorted(set(plan.noise_files) | set(noise))
        pattern = None
    else:
        m, _ = _from_speech_commands(plan)
    if pattern is not None:
        m = apply_name_pattern(m, pattern)
    elif auto_speakers and plan.name_pattern is None:
        m = _auto_speakers(m)
    if plan.speaker_table is not None:
        if any(r.speaker for r in m.records):
            m = join_speakers(m, plan.speaker_table)
        else:
            m.notes.append(f"{plan.speaker_table.name} not joined: the clips have no speakers")
    # Speech Commands hashing by file name is re-done by speaker once a pattern gave speakers.
    if m.split_source == "hash":
        m = replace(m, records=[r.with_split(None) for r in m.records], split_source=None)
    # Speech Commands folders keep the published rule exactly; other layouts make sure that a few
    # speakers still give every split one (see _speaker_splits)
    return assign_splits(m, validation_percentage, testing_percentage,
                         fill_splits=plan.kind not in SC_FOLDER_KINDS)


def speaker_split(speaker: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The split of every clip of ``speaker``: Speech Commands' rule on the speaker id (SHA-1 into 80/10/10)."""
    return sc.which_set(f"{speaker}_nohash_0", validation_percentage, testing_percentage)


def assign_splits(m: Manifest, validation_percentage: float = 10.0, testing_percentage: float = 10.0,
                  fill_splits: bool = True) -> tuple[Manifest, SplitPlan]:
    """Give every record a split and say whether speaker leakage can be checked.

    Records that all have a split keep it. With none, clips with a speaker are split by speaker
    (``speaker_split``: no speaker in two splits; with ``fill_splits``, a split the rule leaves
    empty gets speakers, see ``_speaker_splits``) and clips without one by file name. Some
    records with a split and others without is an error.
    """
    n = len(m.records)
    with_split = sum(r.split is not None for r in m.records)
    known = sum(r.speaker is not None for r in m.records)
    leakage = "checked" if known == n else "partial" if known else "not_checked"
    if with_split == n:
        return m, SplitPlan(m.split_source or "column", leakage, known, n)
    if with_split:
        missing = [r.where or r.path for r in m.records if r.split is None][:5]
        raise ManifestError(f"{n - with_split} of {n} clips have no split", "; ".join(missing),
                            "give every clip a split, or none (earmark then splits by speaker)")
    pct = (validation_percentage, testing_percentage)
    speakers = sorted({r.speaker for r in m.records if r.speaker is not None})
    by_speaker = (_speaker_splits(speakers, *pct) if fill_splits
                  else {s: speaker_split(s, *pct) for s in speakers})
    records = [r.with_split(by_speaker[r.speaker] if r.speaker is not None else sc.which_set(r.path, *pct))
               for r in m.records]
    source = "speaker_hash" if known == n else "mixed_hash" if known else "file_hash"
    return replace(m, records=records, split_source=source), SplitPlan(source, leakage, known, n)



def _speaker_splits(speakers: list[str], validation_percentage: float,
                    testing_percentage: float) -> dict[str, str]:
    """Speaker -> split by ``speaker_split``; when that leaves a wanted split with no speaker (few
    speakers: FSDD's 6 hash to none in test), speakers in SHA-1 order fill test, then validation, then
    train, at least one each (so the split stays speaker-disjoint and deterministic)."""
    by_speaker = {s: speaker_split(s, validation_percentage, testing_percentage) for s in speakers}
    wanted = [s for s, pct in (("test", testing_percentage), ("validation", validation_percentage)) if pct > 0]
    if len(speakers) < len(wanted) + 1 or all(w in by_speaker.values() for w in wanted):
        return by_speaker
    import hashlib

    ordered = sorted(speakers, key=lambda s: hashlib.sha1(s.encode("utf-8")).hexdigest())
    out, i = {}, 0
    for split, pct in (("test", testing_percentage), ("validation", validation_percentage)):
        if pct <= 0:
            continue
        n = max(1, round(len(speakers) * pct / 100))
        for s in ordered[i:i + n]:
            out[s] = split
        i += n
    out.update({s: "train" for s in ordered[i:]})
    return out
