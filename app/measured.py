"""What each score means, and how good each finder is on real speech: the one home of the figures the
app quotes (the guide page's entries and every score's tooltip read them from here).

``ROWS`` holds one ``Measured`` row per finder, measurement and model: the data set, the seeds, the
model, precision (planted-only, and audited where there is one), recall, what else was counted,
where it is weak, the date, the ``docs/benchmarks.md`` section the figures are in and the commands
that make them. Only figures measured on real speech belong here (the eSpeak demo's prove nothing).
``tests/test_measured.py`` checks that every figure, count and number quoted in a row appears in its
section of ``docs/benchmarks.md``, so the two cannot drift apart.

To add or change a figure: change ``docs/benchmarks.md`` and the row together. A new finder's rows
need only ``finder`` set to a key some ``Term`` lists in its ``finders`` (the audio-quality findings:
``clipped``, ``too_quiet``, ``dc_offset``, ``silent``, ``upsampled``); the guide and the tooltips then
show them. ``current=True`` rows (the default model) come first; ``current=False`` ones are context.

``TERMS`` says in one line what each score means; ``tooltip(anchor)`` adds the current real-speech
figures, and the templates show it (``templates/_help.html``: ``term``, ``figures``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ml.analysis import cutoff, describe, neighbors, noise, quality

CURRENT_SECTION = "### Sound at the first frame, clicks after the word, cluster titles, and the set with nothing planted"
BEFORE_SECTION = "### With the default model and out-of-fold probabilities (quiet machine)"
WEAK_SECTION = "## Finders on real speech (`bench/real_finders.py`)"
ARABIC = "Arabic Speech Commands"  # with defects planted by ml.plant, as every row
SC_SAMPLE = "Speech Commands v0.01 sample"
DEFAULT_MODEL = "melcnn width 32, 25 epochs, --folds 3 (the defaults; 95.7% and 95.1% on clean test clips)"
BEFORE_MODEL = ("melcnn width 32, 25 epochs, --folds 3 (95.7% and 95.3% on clean test clips), before the "
                "start-background and end-click rules")
UNPLANTED_MODEL = "melcnn width 32, 25 epochs, --folds 3 (the defaults; 96.8% on clean test clips)"
WEAK_MODEL = "melcnn width 16, 8 epochs, no --folds (67.6% and 68.7% on clean test clips)"
RF = ".venv/bin/python bench/real_finders.py"
CURRENT_COMMANDS = (f"nice -n 10 {RF} prepare --sets arabic --seeds 0 --epochs 25 --folds 3 --width 32 --work /tmp/rf2",
                    f"nice -n 10 {RF} prepare --sets arabic --seeds 1 --epochs 25 --folds 3 --width 32 --work /tmp/rf2",
                    f"{RF} score --sets arabic --seeds 0 1 --work /tmp/rf2 --reingest")
UNPLANTED_COMMANDS = (f"nice -n 10 {RF} prepare --sets arabic --seeds 0 --epochs 25 --folds 3 --width 32 --work /tmp/rf2 "
                      "--unplanted",
                      f"{RF} score --sets arabic --seeds 0 --work /tmp/rf2 --unplanted --reingest --audit 20")
BEFORE_COMMANDS = (f"{RF} prepare --sets arabic --seeds 0 --epochs 25 --folds 3 --width 32 --work /tmp/rf2",
                   f"{RF} prepare --sets arabic --seeds 1 --epochs 25 --folds 3 --width 32 --work /tmp/rf2",
                   f"{RF} score --sets arabic --seeds 0 1 --work /tmp/rf2")
WEAK_COMMANDS = (f"nice -n 10 {RF} prepare --sets arabic --seeds 0 1 --epochs 8 --width 16 --folds 0",
                 f"nice -n 10 {RF} score --sets arabic --seeds 0 1 --reanalyze --audit 20")
SC_COMMANDS = (f"nice -n 10 {RF} prepare --sets sc --seeds 0 --epochs 8 --width 16 --folds 3",)
DATE = "2026-12-01"
QUALITY_SECTION = "### Audio-quality findings on real speech (`bench/plant_real.py`)"
QUALITY_COMMANDS = ("nice -n 10 .venv/bin/python bench/plant_real.py --seeds 0 1",)
NO_MODEL = "no model: the stats ingest measures on every clip"
NOISE_SECTION = "### Noise only (`bench/real_finders.py`)"
NOISE_COMMANDS = (f"{RF} score --sets arabic --seeds 0 1 --work /tmp/rf2 --reanalyze",)
NOISE_UNPLANTED_COMMANDS = (f"{RF} score --sets arabic --seeds 0 --work /tmp/rf2 --unplanted --reanalyze",)
NOISE_SC_COMMANDS = ("nice -n 10 .venv/bin/python bench/plant_real.py --sets sc --seeds 0 1 --show noise_only",)
NOISE_MODEL = "no model (the rule reads ingest's stats); the default model's runs scored it"


@dataclass(frozen=True)
class Figure:
    """One figure as ``docs/benchmarks.md`` prints it (``value``, e.g. "0.949"; None where only the count
    is given) and the count behind it (``count``, "374/394"), which must agree with it."""

    value: str | None
    count: str | None = None

    def __str__(self) -> str:
        if self.value is None:
            return self.count or "–"
        return f"{self.value} ({self.count})" if self.count else self.value


def fig(value: str | None, count: str | None = None) -> Figure:
    return Figure(value, count)


@dataclass(frozen=True)
class Measured:
    """One measurement of one finder on real speech (per-seed figures in the order of ``seeds``)."""

    finder: str  # a key in some Term's ``finders``: "cutoff", "mislabeled", "error_cluster", "clipped", ...
    what: str  # what was counted, in words (no figures: they go below)
    data: str
    seeds: tuple[int, ...]
    model: str
    current: bool  # True: the default model's figures, shown first; False: context (an older, weaker model)
    source: str  # the heading of the docs/benchmarks.md section that holds every figure below
    commands: tuple[str, ...]  # as the section prints them
    date: str = DATE
    precision: tuple[Figure, ...] = ()  # planted-only: every unplanted flag counts as wrong
    audited: tuple[Figure, ...] = ()  # unplanted flags that really are defective count as right
    recall: tuple[Figure, ...] = ()
    summary: str = ""  # one line for a row without precision and recall
    extra: str = ""  # what else was counted (suggested word right, by kind of cut, ...)
    weak: str = ""  # where the finder is weak, as this measurement shows
    short: str = ""  # a name for the row in a tooltip when a term has several ("end cuts")

    @property
    def seeds_text(self) -> str:
        words = [str(s) for s in self.seeds]
        return ("seed " if len(words) == 1 else "seeds ") + (" and ".join(words) if len(words) < 3
                                                             else ", ".join(words[:-1]) + " and " + words[-1])

    @property
    def scripts(self) -> tuple[str, ...]:
        """The bench scripts its commands run (``bench/real_finders.py``, ...), in order, once each."""
        found = [w for c in self.commands for w in c.split() if w.startswith("bench/") and w.endswith(".py")]
        return tuple(dict.fromkeys(found))

    def headline(self) -> str:
        """The row in one line: precision and recall per seed, or its summary."""
        parts = []
        if self.recall and not self.precision and all(f.value is None for f in self.recall):
            return "found " + " and ".join(_short(f) for f in self.recall)
        if self.precision:
            parts.append("precision " + " / ".join(_short(f) for f in self.precision))
        if self.recall:
            parts.append("recall " + " / ".join(_short(f) for f in self.recall))
        return ", ".join(parts) or self.summary


def _short(f: Figure) -> str:
    return f.value if f.value is not None else (f.count or "–")


ROWS: tuple[Measured, ...] = (
    # ---- the default model, out-of-fold probabilities (current)
    Measured("cutoff", "words cut at the clip's end (the file stops mid-word, or a late word runs into the end)",
             ARABIC, (0, 1), DEFAULT_MODEL, True, CURRENT_SECTION, CURRENT_COMMANDS,
             precision=(fig("0.979", "374/382"), fig("0.969", "373/385")),
             recall=(fig("0.974", "374/384"), fig("0.971", "373/384")),
             extra="8 and 10 unplanted clean clips flagged (19 and 20 before the start-background and end-click rules)",
             weak="cuts where the word is already soft are missed most; see the model's earlier rows for the "
                  "loud, mid and soft counts",
             short="end cuts"),
    Measured("cutoff", "words already under way at the first sample (start cut-offs), same finding",
             ARABIC, (0, 1), DEFAULT_MODEL, True, CURRENT_SECTION, CURRENT_COMMANDS,
             recall=(fig(None, "63/96"), fig(None, "70/96")),
             weak="only about two in three start cut-offs are found: sound from the first frame counts only when "
                  "the model is unsure of the clip too, and this model is rarely unsure",
             short="start cuts"),
    Measured("cutoff", "the real set as it is, nothing planted", ARABIC + ", all 4,800 clips, nothing planted", (0,),
             UNPLANTED_MODEL, True, CURRENT_SECTION, UNPLANTED_COMMANDS,
             summary="10 clips flagged, 4 of 10 really cut",
             extra="5 with one unclear; 22 flags before the start-background and end-click rules",
             weak="on a clean set most flags are noisy speakers' background at the start, a click after the word "
                  "or a noisy tail: listen before flagging",
             short="nothing planted"),
    Measured("mislabeled", "clips filed under the wrong word (label issues)",
             ARABIC, (0, 1), DEFAULT_MODEL, True, CURRENT_SECTION, CURRENT_COMMANDS,
             precision=(fig("0.977", "127/130"), fig("0.936", "131/140")),
             recall=(fig("0.882", "127/144"), fig("0.910", "131/144")),
             extra="suggested word right 126/127 and 130/131",
             weak="these figures follow the model: see the weak model's below",
             short="mislabeled finder"),
    Measured("error_cluster", "what the top-ranked error cluster holds", ARABIC, (0, 1), DEFAULT_MODEL, True,
             CURRENT_SECTION, CURRENT_COMMANDS,
             summary="the cut-off clips, on both seeds",
             extra="207 clips, 87%: 205 cut-offs (seed 0, where HDBSCAN splits the cut-offs by kind: the next "
                   "two clusters are 153 more end cut-offs and 60 start cut-offs); 456 clips, 77%: 373 cut-offs, "
                   "70 start cut-offs (seed 1)",
             weak="the cut-offs may split into several clusters by kind; on the set with nothing planted no "
                  "cluster is reported (its few errors are spread over words: a slice, not a cluster)",
             short="top error cluster"),
    # ---- audio quality (no model: ingest's stats; bench/plant_real.py)
    Measured("clipped", "clips pushed into a ceiling (0.5-5% of their samples)", ARABIC, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("1.00", "96/96"), fig("1.00", "96/96"),), recall=(fig("1.00", "96/96"), fig("1.00", "96/96"),)),
    Measured("clipped", "clipped clips", SC_SAMPLE, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("1.00", "6/6"), fig("1.00", "6/6"),), recall=(fig("1.00", "6/6"), fig("1.00", "6/6"),)),
    Measured("too_quiet", "clips scaled to peak at -50 to -38 dBFS", ARABIC, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("1.00", "96/96"), fig("1.00", "96/96"),), recall=(fig("1.00", "96/96"), fig("1.00", "96/96"),)),
    Measured("too_quiet", "too quiet clips", SC_SAMPLE, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("0.75", "6/8"), fig("0.75", "6/8"),), recall=(fig("1.00", "6/6"), fig("1.00", "6/6"),), audited=(fig("1.00", "8/8"), fig("1.00", "8/8"),),
             extra="both unplanted flags are real level defects, peaking at -53 and -37 dBFS"),
    Measured("dc_offset", "clips with a DC offset of 0.03-0.2 of full scale added", ARABIC, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("1.00", "96/96"), fig("1.00", "96/96"),), recall=(fig("1.00", "96/96"), fig("1.00", "96/96"),)),
    Measured("dc_offset", "clips with a DC offset", SC_SAMPLE, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("0.60", "6/10"), fig("0.60", "6/10"),), recall=(fig("1.00", "6/6"), fig("1.00", "6/6"),), audited=(fig("1.00", "10/10"), fig("1.00", "10/10"),),
             extra="the unplanted flags are real offsets, +0.043 to -0.053 of full scale, from three speakers' devices"),
    Measured("silent", "digital zero, or scaled to -80 to -68 dBFS", ARABIC, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("1.00", "96/96"), fig("1.00", "96/96"),), recall=(fig("1.00", "96/96"), fig("1.00", "96/96"),)),
    Measured("silent", "silent clips", SC_SAMPLE, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("1.00", "6/6"), fig("1.00", "6/6"),), recall=(fig("1.00", "6/6"), fig("1.00", "6/6"),)),
    Measured("upsampled", "clips resampled to 8 kHz and back", ARABIC, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("0.94", "95/101"), fig("0.91", "94/103"),), recall=(fig("0.99", "95/96"), fig("0.98", "94/96"),), audited=(fig("0.98", "99/101"), fig("0.96", "99/103"),),
             weak="some of the set's own devices cut the voice near 4 kHz: about half of the unplanted flags are such recordings (counted real in the audit), the rest voices that fade gradually above 4 kHz"),
    Measured("upsampled", "upsampled clips", SC_SAMPLE, (0, 1), NO_MODEL, True, QUALITY_SECTION, QUALITY_COMMANDS,
             precision=(fig("0.60", "6/10"), fig("0.60", "6/10"),), recall=(fig("1.00", "6/6"), fig("1.00", "6/6"),), audited=(fig("1.00", "10/10"), fig("1.00", "10/10"),),
             extra="the unplanted flags are one speaker's recordings with nothing above about 4.4 kHz"),
    # ---- noise only (ingest's stats; bench/real_finders.py --reanalyze, bench/plant_real.py)
    Measured("noise_only", "clips of background noise only (from the set's noise files) filed under a word", ARABIC, (0, 1),
             NOISE_MODEL, True, NOISE_SECTION, NOISE_COMMANDS,
             precision=(fig("0.895", "68/76"), fig("0.878", "65/74")), recall=(fig("0.708", "68/96"), fig("0.677", "65/96")),
             extra="planted noise-only clips some finding holds: 11/96 before and 74/96 after (seed 0), 72/96 and 78/96 (seed 1)",
             weak="quiet noise whose dips read as silence at an edge is missed (27 and 31 of the misses)",
             short="planted noise"),
    Measured("noise_only", "the real set as it is, nothing planted", ARABIC + ", all 4,800 clips, nothing planted", (0,),
             NOISE_MODEL, True, NOISE_SECTION, NOISE_UNPLANTED_COMMANDS,
             summary="8 clips flagged, all 8 hold a word",
             weak="long, loud, compressed words that fill the whole second (7 of the 8 from one speaker) read as noise",
             short="nothing planted"),
    Measured("noise_only", "noise-only clips made from each clip's own quiet parts", SC_SAMPLE, (0, 1), NO_MODEL, True,
             NOISE_SECTION, NOISE_SC_COMMANDS,
             recall=(fig(None, "1/6"), fig(None, "0/6")),
             weak="noise that rises and falls shows silence at an edge: the rule finds steady background noise only",
             short="SC sample"),
    # ---- the same default model's first runs, before the start-background and end-click rules
    Measured("cutoff", "words cut at the clip's end (the file stops mid-word, or a late word runs into the end)",
             ARABIC, (0, 1), BEFORE_MODEL, False, BEFORE_SECTION, BEFORE_COMMANDS,
             precision=(fig("0.949", "374/394"), fig("0.947", "373/394")),
             recall=(fig("0.974", "374/384"), fig("0.971", "373/384")),
             extra="loud cuts 210/210 and 200/200, mid 67/68 and 60/60, soft 97/106 and 113/124",
             weak="cuts where the word is already soft are missed most (97/106 and 113/124 found)",
             short="end cuts"),
    Measured("cutoff", "words already under way at the first sample (start cut-offs), same finding",
             ARABIC, (0, 1), BEFORE_MODEL, False, BEFORE_SECTION, BEFORE_COMMANDS,
             recall=(fig(None, "60/96"), fig(None, "65/96")),
             weak="only about two in three start cut-offs are found: sound from the first frame counts only when "
                  "the model is unsure of the clip too, and this model is rarely unsure",
             short="start cuts"),
    Measured("mislabeled", "clips filed under the wrong word (label issues)",
             ARABIC, (0, 1), BEFORE_MODEL, False, BEFORE_SECTION, BEFORE_COMMANDS,
             precision=(fig("0.984", "127/129"), fig("0.950", "132/139")),
             recall=(fig("0.882", "127/144"), fig("0.917", "132/144")),
             extra="suggested word right 127/127 and 131/132",
             weak="these figures follow the model: see the weak model's below",
             short="mislabeled finder"),
    Measured("error_cluster", "what the top-ranked error cluster holds", ARABIC, (0, 1), BEFORE_MODEL, False,
             BEFORE_SECTION, BEFORE_COMMANDS,
             summary="the cut-off clips, on both seeds",
             extra="458 clips, 79% disagree: 374 planted cut-offs + 60 start cut-offs (seed 0); 461 clips: "
                   "373 cut-offs + 65 start cut-offs (seed 1); the next clusters are the silent and "
                   "noise-only clips",
             short="top error cluster"),
    # ---- context: a weak model (width 16, 8 epochs, no folds), and a set too small to train on
    Measured("cutoff", "words cut at the clip's end", ARABIC, (0, 1), WEAK_MODEL, False, WEAK_SECTION, WEAK_COMMANDS,
             precision=(fig("0.91", "375/413"), fig("0.91", "373/410")),
             audited=(fig("0.94"), fig("0.93")),
             recall=(fig("0.98", "375/384"), fig("0.97", "373/384")),
             extra="audited: 6 and 4 of 20 sampled unplanted flags were really cut"),
    Measured("cutoff", "start cut-offs", ARABIC, (0, 1), WEAK_MODEL, False, WEAK_SECTION, WEAK_COMMANDS,
             recall=(fig("0.75", "72/96"), fig("0.79", "76/96")),
             weak="a weak model is often unsure, so more start cut-offs (and more clean clips) reach the threshold"),
    Measured("cutoff", "words cut at the clip's end", SC_SAMPLE, (0,),
             "melcnn width 16, 8 epochs, --folds 3: at chance on 205 training clips", False, WEAK_SECTION,
             SC_COMMANDS,
             precision=(fig("0.50", "21/42"),), audited=(fig("0.83"),), recall=(fig("0.88", "21/24"),),
             extra="14 of 18 unplanted flags really cut",
             weak="the model is at chance, so this is the signal alone"),
    Measured("mislabeled", "clips filed under the wrong word", ARABIC, (0, 1), WEAK_MODEL, False, WEAK_SECTION,
             WEAK_COMMANDS,
             precision=(fig("0.65", "116/178"), fig("0.65", "110/169")),
             recall=(fig("0.81", "116/144"), fig("0.76", "110/144")),
             extra="suggested word right 93/116 (80%) and 100/110 (91%)",
             weak="a weak model names wrong words for clean clips and their neighbours sometimes agree: "
                  "one false alarm for every two true finds"),
    Measured("mislabeled", "clips filed under the wrong word", SC_SAMPLE, (0,),
             "melcnn width 16, 8 epochs, --folds 3: at chance on 205 training clips", False, WEAK_SECTION,
             SC_COMMANDS, recall=(fig("0", "0/9"),),
             weak="205 training clips over 30 words train to chance: no model, no label issues"),
    Measured("error_cluster", "what the top-ranked error cluster holds", ARABIC, (0, 1), WEAK_MODEL, False,
             WEAK_SECTION, WEAK_COMMANDS,
             precision=(fig("0.91"), fig("0.92")), recall=(fig("0.93", "447/480"), fig("0.94", "449/480")),
             summary="the cut-off clips, on both seeds",
             extra="447 of its 489 clips and 449 of its 488 are planted cut-offs; the second is the silent clips",
             weak="a model at chance (the Speech Commands sample) shows no error clusters: it is wrong everywhere"),
)


@dataclass(frozen=True)
class Term:
    """A score or finder a page shows: its guide entry (``anchor``), its name, what it means in one line,
    and the finders (``Measured.finder``) whose real-speech figures go with it."""

    anchor: str
    name: str
    meaning: str
    finders: tuple[str, ...] = ()
    rated: bool = True  # False: a model output (confidence, loss), not a finder: no figures to quote


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def _khz(band: tuple[float, float]) -> str:
    return f"{band[0] / 1000:g}-{band[1] / 1000:g} kHz"


QUALITY_TERMS = (
    Term("quality-clipped", "clipped",
         f"The clip peaks at {20 * math.log10(quality.CLIPPED_MIN_PEAK):.0f} dBFS or louder and at least "
         f"{_pct(quality.CLIPPED_MIN_SHARE)} of its samples sit in flat runs at that peak: the recording clipped.",
         ("clipped",)),
    Term("quality-too-quiet", "too quiet",
         f"The clip peaks below {quality.QUIET_PEAK_DBFS:g} dBFS (but not below {quality.SILENT_PEAK_DBFS:g}): "
         f"the model hears mostly its noise floor.", ("too_quiet",)),
    Term("quality-dc-offset", "DC offset",
         f"The clip's mean sample is at least {quality.DC_MAX:g} of full scale away from zero: a device fault, "
         f"not speech.", ("dc_offset",)),
    Term("quality-silent", "near-silent",
         f"The clip peaks below {quality.SILENT_PEAK_DBFS:g} dBFS, under a typical recording's own noise: an empty "
         f"recording, nothing a model could hear.", ("silent",)),
    Term("quality-upsampled", "upsampled",
         f"The spectrum falls by {-quality.UPSAMPLED_STEP_DB:g} dB or more from {_khz(quality.BAND_BELOW_HZ)} to "
         f"{_khz(quality.BAND_ABOVE_HZ)}, in the word and in the pauses: audio recorded at 8 kHz (or through a "
         f"4 kHz-band device) and resampled, with nothing above the old band.", ("upsampled",)),
)

NOISE_TERM = Term(
    "noise-only", "noise only",
    f"Sound from the clip's first to its last {noise.EDGE_SILENCE_MS:g} ms with a crest factor (peak over RMS level) "
    f"under {noise.CREST_MAX_DB:g} dB: steady noise with no word in it, not a word's pauses and peaks.", ("noise_only",))

TERMS: tuple[Term, ...] = (
    Term("confidence", "confidence",
         "The probability the model gives its own prediction, 0 to 1: its belief, not a measured accuracy.",
         rated=False),
    Term("loss", "loss",
         "Minus the log of the probability the model gives the label: high where model and label disagree.",
         rated=False),
    Term("cutoff-score", "cut-off score",
         f"How likely the word is cut by the clip's edge, 0 to 1; at {cutoff.CUTOFF_THRESHOLD:g} or above the clip "
         f"counts as cut off.", ("cutoff",)),
    Term("label-quality", "label quality",
         "How much the evidence supports the clip's label, 0 (likely wrong) to 1: the probability a model that "
         "did not train on the clip gives its label.", ("mislabeled",)),
    Term("label-issues", "mislabeled (label issues)",
         "Clips the analysis marks mislabeled (the slices' doubted labels are their share): the model's "
         "out-of-sample evidence doubts the label and none of the clip's nearest clips share it.", ("mislabeled",)),
    Term("outlier-score", "outlier score",
         f"How unlike every other clip a clip is, 0 to 1 (its distance to its nearest clips); from "
         f"{1 - math.exp(-describe.OUTLIER_Z_MIN / neighbors.OUTLIER_Z):.2f} it joins the outlier issue.", ("outlier",)),
    Term("finding-score", "finding score",
         "Ranks the issues: roughly the number of problem clips an issue holds; within an issue, orders its "
         "clips, worst first.", ("error_cluster",)),
    Term("error-clusters", "error clusters",
         "Groups of clips the model embeds alike and gets wrong far more often than the rest of the run.",
         ("error_cluster",)),
    Term("duplicates", "duplicates",
         f"Clips with identical audio, or embeddings at cosine similarity {neighbors.DUPLICATE_SIM:g} or more "
         f"that cross splits or carry different labels.", ("duplicate",)),
    *QUALITY_TERMS,
    NOISE_TERM,
)

# The finding kinds `earmark analyze` stores, and the entry that explains each.
FINDING_TERMS = {"cutoff": "cutoff-score", "label": "label-issues", "cluster": "error-clusters",
                 "duplicate": "duplicates", "outlier": "outlier-score",
                 **{t.finders[0]: t.anchor for t in QUALITY_TERMS}, "noise_only": NOISE_TERM.anchor}

NOT_MEASURED = "Not yet measured on real speech."
NOT_EVIDENCE = "Figures on the synthetic eSpeak demo prove nothing about real recordings and are not quoted here."


@dataclass(frozen=True)
class ScoreHelp:
    """The terms and the rows, looked up by a guide anchor (a Jinja global: ``score_help``)."""

    terms: tuple[Term, ...] = TERMS
    rows: tuple[Measured, ...] = ROWS
    not_measured: str = NOT_MEASURED
    not_evidence: str = NOT_EVIDENCE
    _by_anchor: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_by_anchor", {t.anchor: t for t in self.terms})

    def term(self, anchor: str) -> Term:
        """The term of a guide anchor (KeyError for an anchor no term has: a template's typo)."""
        return self._by_anchor[anchor]

    def rows_for(self, anchor: str) -> list[Measured]:
        """The rows of a term's finders, the current model's first (stable otherwise)."""
        finders = self.term(anchor).finders
        return sorted((r for r in self.rows if r.finder in finders), key=lambda r: not r.current)

    def figures_line(self, anchor: str) -> str:
        """The current real-speech figures of a term in one sentence ('' for confidence and loss)."""
        t = self.term(anchor)
        if not t.rated:
            return ""
        rows = [r for r in self.rows_for(anchor) if r.current] or self.rows_for(anchor)[:1]
        if not rows:
            return NOT_MEASURED
        first = rows[0]
        rows = [r for r in rows if r.data == first.data]  # one data set per sentence (the audio-quality rows have two)
        said = "; ".join(f"{r.short or r.what}: {r.headline()}" for r in rows)
        data = first.data.split(",")[0]
        model = ", default model" if first.current and first.model == DEFAULT_MODEL else ""  # quality rows: no model
        return f"On real speech ({data}, {first.seeds_text}{model}): {said}."

    def tooltip(self, anchor: str) -> str:
        """What a score means and how good it is on real speech, for a title attribute."""
        return " ".join(p for p in (self.term(anchor).meaning, self.figures_line(anchor),
                                    "Click for the user guide.") if p)

    def kind_tooltip(self, kind: str) -> str:
        """The tooltip of a finding kind's entry ('' for a kind without one)."""
        anchor = FINDING_TERMS.get(kind)
        return self.tooltip(anchor) if anchor in self._by_anchor else ""


score_help = ScoreHelp()
