"""Speech Commands layouts: finding the clips, their labels, speakers and splits.

Three layouts are read (``detect_layout``):

* ``speech_commands``: the v0.01/v0.02 training archives: a folder per word,
  ``validation_list.txt`` / ``testing_list.txt`` and ``_background_noise_/``.
* ``test_archive``: the official test-set archives: a folder per keyword plus ``_unknown_``
  (whose file names start with the original word, ``bed_0c540988_nohash_0.wav``) and
  ``_silence_``. Every clip is a test clip.
* ``split_folders``: a folder per split (``train/``, ``validation/`` or ``val/``, ``test/``), each
  with a folder per class. The split comes from the folder.
* ``folders``: any folder-per-class audio set. Splits come from the published hashing rule.

Nothing here decodes audio: ``scan`` only lists files, so it is fast on 100k clips.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ml.audio import AUDIO_EXTENSIONS
from ml.files import Listing, inside_root, list_folder

SPLITS = ("train", "validation", "test")
NOISE_DIR = "_background_noise_"
UNKNOWN, SILENCE = "_unknown_", "_silence_"
VALIDATION_LIST, TESTING_LIST = "validation_list.txt", "testing_list.txt"
# From the data set's input_data.py: 2^27 - 1, the most files a class could ever hold.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
_NOHASH = re.compile(r"_nohash_.*$")
# Top-level folder names that mean a split (``train/<class>/x.wav``), in the split_folders layout.
SPLIT_DIRS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
              "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
# The 10 keywords of the standard 12-class task (v1/v2 papers: + _unknown_ and _silence_).
KEYWORDS_V1_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


@dataclass(frozen=True)
class Task:
    """What a model is trained to tell apart: its classes, and which class a filed label counts as.

    ``keywords`` is ``None`` for the open task ("all": every filed label is its own class); otherwise
    the classes are the keywords plus ``_unknown_`` (every other word) and ``_silence_``.
    """

    name: str
    keywords: tuple[str, ...] | None = None

    def classes(self, labels: list[str] | tuple[str, ...]) -> list[str]:
        """The output classes for a data set with ``labels`` (the noise folder is never a class)."""
        if self.keywords is not None:
            return [*self.keywords, UNKNOWN, SILENCE]
        return sorted(set(labels) - {NOISE_DIR})

    def map(self, label: str) -> str:
        """The class a clip filed under ``label`` counts as in this task."""
        if self.keywords is not None and label not in self.keywords and label != SILENCE:
            return UNKNOWN
        return label


TASKS = {t.name: t for t in (Task("all"), Task("v1-12", KEYWORDS_V1_12))}


def task_named(name: str) -> Task:
    """The task called ``name`` (``all`` or ``v1-12``); ValueError names the choices otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; use one of {', '.join(TASKS)}") from None


class LayoutError(Exception):
    """The folder is not a data set earmark can read (missing, empty, no class folders)."""


@dataclass(frozen=True)
class ClipEntry:
    """One audio file found in a data set, before decoding."""

    path: str  # relative to the data set root, '/' separated
    label: str  # the task label as filed (the folder)
    word: str  # the spoken word; the original word under _unknown_ in a test archive
    split: str  # train | validation | test
    speaker: str | None
    utterance: int | None


@dataclass
class Layout:
    """What ``scan`` found in a data set folder."""

    kind: str  # speech_commands | test_archive | split_folders | folders
    root: Path
    entries: list[ClipEntry]
    noise_files: list[str]  # relative paths of _background_noise_ audio
    split_source: str  # lists | hash | archive | folders
    # {"listed": {"validation": n, "test": n}, "listed_missing": {...}, "in_both_lists": [...], "ignored_files": n}
    list_stats: dict = field(default_factory=dict)
    # entries that could not be listed as clips: (path, reason, detail); see ml.files for the reasons
    rejects: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """Sorted class names as filed."""
        return sorted({e.label for e in self.entries})


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The split the data set's published rule gives a file: 'train', 'validation' or 'test'.

    SHA-1 of the base name with ``_nohash_...`` removed, taken mod 2^27 and scaled to a
    percentage of 2^27 - 1, so every clip of one speaker lands in the same split.
    """
    hash_name = _NOHASH.sub("", os.path.basename(filename))
    hashed = int(hashlib.sha1(hash_name.encode("utf-8")).hexdigest(), 16)
    percentage = (hashed % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "test"
    return "train"


def parse_name(filename: str, word_prefix: bool = False) -> tuple[str | None, str | None, int | None]:
    """``(word, speaker, utterance)`` from ``<speaker>_nohash_<n>.wav``.

    With ``word_prefix`` (the test archive's ``_unknown_``), the name is
    ``<word>_<speaker>_nohash_<n>.wav`` and the word is returned; otherwise word is None.
    Names that do not follow the pattern give ``(word or None, None, None)``.
    """
    stem = os.path.splitext(os.path.basename(filename))[0]
    word = None
    if word_prefix and "_" in stem:
        word, stem = stem.split("_", 1)
    if "_nohash_" not in stem:
        return word, None, None
    speaker, _, rest = stem.partition("_nohash_")
    utterance = int(rest) if rest.isdigit() else None
    return word, (speaker or None), utterance


def read_list(path: Path, root: Path | None = None) -> set[str]:
    """The relative paths in a split list ('/' separated; blank lines and whitespace ignored).

    With ``root``, a list that is a link out of ``root`` is not read (ml.files' symlink policy).
    """
    if not path.is_file() or (root is not None and not inside_root(path, root)):
        return set()
    text = path.read_text(encoding="utf-8", errors="replace")
    return {line.strip().replace("\\", "/").lstrip("./") for line in text.splitlines() if line.strip()}


def _listing(root: Path, prefix: str) -> Listing:
    """``root/prefix`` listed by ``ml.files.list_folder``; a folder that cannot be listed is one reject."""
    try:
        return list_folder(root / prefix, root, prefix, AUDIO_EXTENSIONS)
    except OSError as exc:
        return Listing(rejects=[(prefix, "unreadable", f"cannot list the folder: {exc.strerror or type(exc).__name__}")])


def _class_dirs(root: Path, prefix: str = "") -> list[str]:
    """Sub-folders of ``root/prefix`` that may hold a class (not hidden, not the noise folder)."""
    return [d for d in _listing(root, prefix).folders if d != NOISE_DIR]


def detect_layout(root: Path) -> str:
    """Which layout ``root`` holds: speech_commands, test_archive, split_folders or folders."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder")
    if (root / VALIDATION_LIST).is_file() or (root / TESTING_LIST).is_file() or (root / NOISE_DIR).is_dir():
        return "speech_commands"
    if (root / UNKNOWN).is_dir() or (root / SILENCE).is_dir():
        return "test_archive"
    top = _class_dirs(root)
    if top and all(d.lower() in SPLIT_DIRS for d in top) and any(_class_dirs(root, d) for d in top):
        return "split_folders"
    return "folders"


def scan(root: str | Path, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> Layout:
    """List every clip of the data set at ``root`` with its label, word, speaker and split.

    Splits come from the split lists when the folder has them, from the folder for a test
    archive (all 'test') or a folder per split, and otherwise from ``which_set``. Raises ``LayoutError`` when there
    is no class folder with audio in it.
    """
    root = Path(root)
    kind = detect_layout(root)
    stats: dict = {"ignored_files": 0}
    val_list: set[str] = set()
    test_list: set[str] = set()
    split_source = "hash"
    if kind == "speech_commands":
        val_list, test_list = read_list(root / VALIDATION_LIST, root), read_list(root / TESTING_LIST, root)
        if (root / VALIDATION_LIST).is_file() or (root / TESTING_LIST).is_file():
            split_source = "lists"
    elif kind == "test_archive":
        split_source = "archive"
    elif kind == "split_folders":
        split_source = "folders"

    # (folder prefix relative to root, label, split fixed by the folder or None)
    class_dirs: list[tuple[str, str, str | None]] = []
    try:
        top_listing = list_folder(root, root, "", AUDIO_EXTENSIONS)
    except OSError as exc:
        raise LayoutError(f"cannot list {root}: {exc.strerror or exc}") from None
    rejects = list(top_listing.rejects)  # one bad entry is a reject with a reason; the rest goes on
    tops = [d for d in top_listing.folders if d != NOISE_DIR]
    if kind == "split_folders":
        for top in tops:
            listing = _listing(root, top)
            rejects += listing.rejects
            stats["ignored_files"] += listing.ignored + len(listing.files)
            class_dirs += [(f"{top}/{label}", label, SPLIT_DIRS[top.lower()])
                           for label in listing.folders if label != NOISE_DIR]
    else:
        fixed = "test" if kind == "test_archive" else None
        class_dirs = [(label, label, fixed) for label in tops]

    entries: list[ClipEntry] = []
    for prefix, label, fixed_split in class_dirs:
        listing = _listing(root, prefix)
        rejects += listing.rejects
        stats["ignored_files"] += listing.ignored
        names = listing.files
        word_prefix = kind == "test_archive" and label == UNKNOWN
        for name in names:
            rel = f"{prefix}/{name}"
            word, speaker, utterance = parse_name(name, word_prefix=word_prefix)
            if fixed_split is not None:
                split = fixed_split
            elif split_source == "lists":
                # A file in both lists is reported as leakage; the test list wins so it is never trained on.
                split = "test" if rel in test_list else "validation" if rel in val_list else "train"
            else:
                split = which_set(name, validation_percentage, testing_percentage)
            entries.append(ClipEntry(rel, label, word or label, split, speaker, utterance))

    if not entries:
        raise LayoutError(f"no audio files in class folders under {root}")

    noise_files: list[str] = []
    if NOISE_DIR in top_listing.folders:
        noise = _listing(root, NOISE_DIR)
        rejects += noise.rejects
        noise_files = [f"{NOISE_DIR}/{n}" for n in noise.files]

    if split_source == "lists":
        present = {e.path for e in entries}
        stats["listed"] = {"validation": len(val_list), "test": len(test_list)}
        stats["listed_missing"] = {"validation": len(val_list - present), "test": len(test_list - present)}
        stats["in_both_lists"] = sorted(val_list & test_list & present)
    return Layout(kind, root, entries, noise_files, split_source, stats, rejects)
