"""The model-side finders on real speech: plant defects, ingest, train with folds, project, analyze, score.

For each data set and seed: ``ml.plant.plant`` writes a planted copy of the real set (Arabic Speech
Commands with its authors' CSV split, or the Speech Commands v0.01 sample with its lists) and the
truth (``defects.csv``); the planted copy is ingested into a fresh store (its own
``EARMARK_DATA_DIR`` under ``--work``), a model is trained with out-of-fold probabilities
(``--folds``), projected and analyzed, each step by the ``earmark`` command line (printed, so every
figure has its command). Then every finder is scored against the truth:

* cut-off (score >= ``CUTOFF_THRESHOLD``): precision against the planted clips only, recall per
  shape (short file / late start) and cut level (loud / soft), start cut-offs apart;
* mislabeled (label issues): precision, recall, and how often the suggested word is the true one;
* error clusters: the rank of the cluster made of cut-off clips, and what the top cluster holds;
* accuracy of the run on the clean (unplanted) clips per split.

The unplanted clips each finder flags are listed in ``<work>/<set>-s<seed>/<run>-<finder>-unplanted.txt``
for the precision audit (``--audit N`` also draws spectrogram PNGs of a random N of them to /tmp).

    nice -n 10 .venv/bin/python bench/real_finders.py prepare --sets arabic --seeds 0 1 --epochs 20 --folds 3
    .venv/bin/python bench/real_finders.py score --sets arabic --seeds 0 1 --reanalyze --audit 20

``--unplanted`` runs the same steps on the real set as it is (every rate 0, its own folder), where
every flag is a natural one: it prints the held-out accuracy of the clips the cut-off finder flags
against the rest, and what each error cluster is made of. ``score --reingest`` ingests a set again
first (new signal stats from today's ``ml.analysis.signal``, the same clip ids, so no retraining),
then analyzes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = {"sc": DATA / "speech-commands-v0.01-sample", "arabic": DATA / "arabic-speech-commands"}
EARMARK = str(ROOT / ".venv" / "bin" / "earmark")


def _run(cmd: list[str], data_dir: Path) -> str:
    """Run an earmark command against the store in ``data_dir``; print it and its wall time."""
    env = {**os.environ, "EARMARK_DATA_DIR": str(data_dir)}
    env.pop("EARMARK_DATABASE_URL", None)
    shown = f"EARMARK_DATA_DIR={data_dir} " + " ".join(cmd)
    print(f"$ {shown}", flush=True)
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    print(f"  ({time.perf_counter() - t:.0f} s)", flush=True)
    if out.returncode:
        print(out.stdout[-3000:], out.stderr[-3000:], flush=True)
        raise SystemExit(f"failed: {shown}")
    return out.stdout


def set_dir(work: Path, name: str, seed: int, unplanted: bool = False) -> Path:
    """The folder of one planted (or, with ``unplanted``, copied as is) set: dataset/, defects.csv, store/."""
    return work / (f"{name}-unplanted-s{seed}" if unplanted else f"{name}-s{seed}")


def prepare(work: Path, name: str, seed: int, model: str, epochs: int, folds: int, width: int,
            unplanted: bool = False) -> None:
    """Plant (once per set and seed), ingest (once), then train + infer, project and analyze one run.

    ``unplanted``: every rate 0, so the copy is the real set as it is (an empty truth) and every flag
    is a natural one."""
    from ml.plant import KINDS, plant

    d = set_dir(work, name, seed, unplanted)
    store = d / "store"
    if not (d / "defects.csv").is_file():
        t = time.perf_counter()
        rep = plant(SETS[name], d, seed=seed, rates=dict.fromkeys(KINDS, 0.0) if unplanted else None)
        print(f"planted {name} seed {seed}: {rep.counts} ({time.perf_counter() - t:.0f} s)", flush=True)
    if not (store / "earmark.db").is_file():
        _run([EARMARK, "ingest", str(d / "dataset"), "--name", _dataset_name(name, seed, unplanted)], store)
    run = f"{model}-e{epochs}" + (f"-f{folds}" if folds else "")
    _run([EARMARK, "train", "--model", model, "--epochs", str(epochs), "--folds", str(folds),
          "--width", str(width), "--seed", str(seed), "--name", run], store)
    _run([EARMARK, "project", "--run", run], store)
    _run([EARMARK, "analyze", "--run", run], store)


def _dataset_name(name: str, seed: int, unplanted: bool) -> str:
    return f"{name}-unplanted-s{seed}" if unplanted else f"{name}-planted-s{seed}"


def reingest(d: Path, name: str, seed: int, unplanted: bool) -> None:
    """Ingest the set again so its clips' signal stats come from today's ``ml.analysis.signal``.

    Ingest keeps an unchanged folder as it is (its fingerprint is the files' sizes and times), so the
    split file's time is moved first; a changed folder is merged by path, keeping the clip ids, so the
    stored runs stay valid and only `analyze` needs running again."""
    split_file = next(p for p in (d / "dataset" / "train.csv", d / "dataset" / "testing_list.txt") if p.is_file())
    os.utime(split_file)
    _run([EARMARK, "ingest", str(d / "dataset"), "--name", _dataset_name(name, seed, unplanted)], d / "store")


def _truth(d: Path) -> dict[str, dict]:
    """Planted path -> {defect, true_label, filed_label, detail (dict)}."""
    with open(d / "defects.csv", newline="", encoding="utf-8") as f:
        return {r["path"]: {**r, "detail": json.loads(r["detail"] or "{}")} for r in csv.DictReader(f)}


def _load(store: Path, run_name: str) -> dict:
    """Per clip of the run: path, split, label, pred, agree, cut-off score, label issue, suggestion, cluster;
    and the run's cluster findings (rank order) as lists of member paths."""
    from sqlalchemy import select

    from app.config import Settings
    from app.store.db import open_store
    from app.store.models import Clip, ClipScore, Finding, FindingClip, Prediction
    from app.store.runs import resolve_run

    st = open_store(Settings(data_dir=store))
    with st.session() as s:
        run = resolve_run(s, run_name)
        rows = s.execute(select(Clip.id, Clip.path, Clip.split, Clip.label, Prediction.pred, Prediction.agree,
                                ClipScore.cutoff_score, ClipScore.label_issue, ClipScore.suggested_label,
                                ClipScore.cluster)
                         .join(Prediction, (Prediction.clip_id == Clip.id) & (Prediction.run_id == run.id))
                         .join(ClipScore, (ClipScore.clip_id == Clip.id) & (ClipScore.run_id == run.id))
                         .order_by(Clip.id)).all()
        path_of = {r[0]: r[1] for r in rows}
        clusters, findings = [], []
        for f in s.scalars(select(Finding).where(Finding.run_id == run.id).order_by(Finding.rank)):
            ids = s.scalars(select(FindingClip.clip_id).where(FindingClip.finding_id == f.id)).all()
            findings.append((f.kind, f.reason or "", [path_of[i] for i in ids]))
            if f.kind == "cluster":
                clusters.append((f.title, f.stats.get("disagree_rate"), [path_of[i] for i in ids]))
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 10
    out = {k: np.array(v) for k, v in zip(("id", "path", "split", "label", "pred", "agree", "cutoff", "issue",
                                            "suggested", "cluster"), cols, strict=True)}
    out["clusters"], out["findings"] = clusters, findings
    return out


def other_kinds(kind: np.ndarray, paths: np.ndarray, findings: list[tuple[str, str, list[str]]]) -> None:
    """For the planted kinds no finder is named after (two words, noise only) and the audio-quality ones:
    how many of their clips some finding holds, and which; and how right the 'noise only' findings are."""
    member = {}  # path -> finding kinds holding it
    for fkind, _, members in findings:
        for p in members:
            member.setdefault(p, set()).add(fkind)
    for k in ("multiple_words", "noise_only", "clipped", "too_quiet", "dc_offset", "silent", "upsampled"):
        m = kind == k
        if not m.any():
            continue
        held = [member.get(p, set()) for p in paths[m].tolist()]
        by = {f: sum(f in h for h in held) for f in sorted(set().union(*held))}
        print(f"  planted {k}: {sum(bool(h) for h in held)}/{int(m.sum())} in some finding; by finding kind {by}")
    said = set().union(*([set(ms) for _, reason, ms in findings if reason == "noise_only"] or [set()]))
    if said:
        no_word = {p for p, k in zip(paths.tolist(), kind.tolist(), strict=True) if k in ("noise_only", "silent")}
        n_true = sum(k in ("noise_only", "silent") for k in kind.tolist())
        print(f"  findings suggesting 'noise only': {len(said)} clips, {len(said & no_word)} of them planted noise "
              f"only or silent (P {len(said & no_word) / len(said):.3f}; R {len(said & no_word) / max(1, n_true):.3f} "
              f"of {n_true})")


def _pr(flag: np.ndarray, pos: np.ndarray, scope: np.ndarray) -> str:
    hit = int((flag & pos).sum())
    n_flag = int((flag & scope).sum())
    return f"P {hit / max(1, n_flag):.3f} ({hit}/{n_flag}) R {hit / max(1, int(pos.sum())):.3f} ({hit}/{int(pos.sum())})"


def score_run(d: Path, name: str, seed: int, run_name: str, audit: int) -> None:
    """Print every finder's figures for one run of a planted set; list (and draw) the unplanted flagged clips."""
    from ml.analysis.cutoff import CUTOFF_THRESHOLD

    truth = _truth(d)
    r = _load(d / "store", run_name)
    kind = np.array([truth.get(p, {}).get("defect", "") for p in r["path"]])
    clean = kind == ""
    det = [truth.get(p, {}).get("detail", {}) for p in r["path"]]
    print(f"\n### {name} seed {seed}, run {run_name} ({len(kind)} clips)")
    for split in ("train", "validation", "test"):
        m = clean & (r["split"] == split)
        print(f"accuracy on clean {split} clips: {r['agree'][m].mean():.3f} ({int(m.sum())})")
    cut = r["cutoff"] >= CUTOFF_THRESHOLD
    held = clean & np.isin(r["split"], ("validation", "test"))
    print(f"held-out clean clips the cut-off finder flags: accuracy {r['agree'][held & cut].mean():.3f} "
          f"({int((held & cut).sum())}); the rest {r['agree'][held & ~cut].mean():.3f} ({int((held & ~cut).sum())})")
    end = kind == "cutoff"
    # Negatives: the clean clips and the noise-only ones (as bench/plant_real.py counts them).
    print(f"cut-off (end), planted-only: {_pr(cut, end, end | clean | (kind == 'noise_only'))}"
          f"; start cut-offs flagged {int((cut & (kind == 'start_cutoff')).sum())}/{int((kind == 'start_cutoff').sum())}")
    print(f"  flagged by kind: { {k: int((cut & (kind == k)).sum()) for k in sorted(set(kind.tolist()))} }")
    for key, vals in (("shape", ("short_file", "late_start")), ("cut_at", ("loud", "mid", "soft"))):
        parts = []
        for v in vals:
            m = end & np.array([x.get(key) == v for x in det])
            parts.append(f"{v} {int((cut & m).sum())}/{int(m.sum())}")
        print(f"  recall by {key}: " + ", ".join(parts))
    # Mislabeled: truth is the planted refiling; the suggestion is right when it names the true word.
    mis = kind == "mislabeled"
    true_lab = np.array([truth.get(p, {}).get("true_label", "") for p in r["path"]])
    issue = r["issue"].astype(bool)
    right = int((issue & mis & (r["suggested"] == true_lab)).sum())
    print(f"mislabeled: {_pr(issue, mis, mis | clean)}; suggested word right {right}/{int((issue & mis).sum())}")
    print(f"  issues by kind: { {k: int((issue & (kind == k)).sum()) for k in sorted(set(kind.tolist()))} }")
    by_path = dict(zip(r["path"].tolist(), kind.tolist(), strict=True))
    cut_rank = None
    for rank, (title, rate, members) in enumerate(r["clusters"], 1):
        ks = [by_path.get(p, "") for p in members]
        share = sum(k in ("cutoff", "start_cutoff") for k in ks) / max(1, len(ks))
        top = {k or "clean": ks.count(k) for k in sorted(set(ks), key=ks.count, reverse=True)[:4]}
        if rank <= 5:
            print(f"  cluster #{rank}: {len(members)} clips, disagree {rate}, {top} -- {title[:110]}")
            m = np.isin(r["path"], members)
            spk = [Path(p).name.split("_")[0] for p in r["path"][m].tolist()]
            print(f"    cut-off flagged {int((cut & m).sum())}, labels {_common(r['label'][m])}, "
                  f"predictions {_common(r['pred'][m])}, speakers {_common(np.array(spk))}")
        if cut_rank is None and share >= 0.5:
            cut_rank = rank
    print(f"error clusters: {len(r['clusters'])}; first made mostly of cut-offs: rank {cut_rank}")
    other_kinds(kind, r["path"], r["findings"])
    for finder, flag in (("cutoff", cut), ("mislabeled", issue)):
        un = r["path"][flag & clean]
        lst = d / f"{run_name}-{finder}-unplanted.txt"
        lst.write_text("".join(p + "\n" for p in un.tolist()))
        print(f"  {len(un)} unplanted clips flagged {finder}: {lst}")
        if audit and len(un) and finder == "cutoff":
            pick = np.random.default_rng(seed).permutation(len(un))[:audit]
            png = Path(f"/tmp/audit-{name}-s{seed}-{run_name}-{finder}.png")
            montage([d / "dataset" / p for p in un[pick].tolist()], png)
            print(f"  audit sheet: {png}")


def _common(values: np.ndarray, k: int = 4) -> str:
    """The ``k`` most common values with their counts, e.g. "'two' 12, 'six' 3"."""
    v, c = np.unique(values.astype(str), return_counts=True)
    order = np.argsort(-c, kind="stable")[:k]
    return ", ".join(f"'{v[i]}' {c[i]}" for i in order)


def montage(paths: list[Path], out: Path, cols: int = 4) -> None:
    """Spectrograms (0-8 kHz, 70 dB range) with the level envelope in red, one tile per clip, on a 1 s axis."""
    from PIL import Image, ImageDraw

    from ml.audio import read_wav

    w, h = 320, 150
    img = Image.new("RGB", (w * cols, (h + 14) * -(-len(paths) // cols)), "white")
    draw = ImageDraw.Draw(img)
    for k, p in enumerate(paths):
        x, sr = read_wav(p)
        length = x.size / sr
        x = np.pad(x, (0, max(0, sr - x.size)))
        fr = np.lib.stride_tricks.sliding_window_view(x, 256)[::80] * np.hanning(256)
        spec = 10 * np.log10(np.abs(np.fft.rfft(fr, axis=1)) ** 2 + 1e-10).T[::-1]
        spec = np.clip((spec - (spec.max() - 70)) / 70, 0, 1)
        tile = Image.fromarray((255 * (1 - spec)).astype(np.uint8)).resize((w - 4, h - 40))
        r0, c0 = divmod(k, cols)
        x0, y0 = c0 * w, r0 * (h + 14)
        img.paste(tile.convert("RGB"), (x0, y0 + 14))
        env = 10 * np.log10(np.convolve(x**2, np.ones(160) / 160, "same")[::40] + 1e-10)
        env = np.clip((env + 80) / 80, 0, 1)
        draw.line([(x0 + i * (w - 4) / len(env), y0 + h - 2 - 24 * v) for i, v in enumerate(env)], fill="red")
        edge = x0 + (w - 4) * min(1.0, length)
        draw.line([(edge, y0 + 14), (edge, y0 + h)], fill="blue")
        draw.text((x0 + 2, y0 + 1), f"{k}: {str(p)[-40:]}", fill="black")
    img.save(out)


def score_store(d: Path, name: str, seed: int, runs: list[str] | None, reanalyze: bool, audit: int,
                again: bool = False, unplanted: bool = False) -> None:
    """Score every (or each named) run in the planted set's store, analyzing it again first if asked
    (``again``: ingest the set again first, for new signal stats, then analyze)."""
    if again:
        reingest(d, name, seed, unplanted)
        reanalyze = True
    from sqlalchemy import select

    from app.config import Settings
    from app.store.db import open_store
    from app.store.models import Run

    if runs is None:
        with open_store(Settings(data_dir=d / "store")).session() as s:
            runs = [n for n, st in s.execute(select(Run.name, Run.status).order_by(Run.id)) if st == "complete"]
    for run_name in runs:
        if reanalyze:
            _run([EARMARK, "analyze", "--run", run_name], d / "store")
        score_run(d, name, seed, run_name, audit)


def main() -> None:
    """Command line: ``prepare`` (plant, ingest, train, project, analyze) or ``score``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("prepare", "score"))
    ap.add_argument("--sets", nargs="+", default=["arabic"], choices=sorted(SETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--model", default="melcnn")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--work", type=Path, default=Path("/tmp/real_finders"))
    ap.add_argument("--runs", nargs="*", default=None, help="score: run names (default: every run in the store)")
    ap.add_argument("--reanalyze", action="store_true", help="score: run `earmark analyze` again first")
    ap.add_argument("--audit", type=int, default=0, help="score: spectrograms of this many unplanted flagged clips")
    ap.add_argument("--reingest", action="store_true",
                    help="score: ingest the set again (new signal stats, same clip ids), then analyze")
    ap.add_argument("--unplanted", action="store_true",
                    help="the real set as it is, nothing planted (its own folder: <work>/<set>-unplanted-s<seed>)")
    args = ap.parse_args()
    for name in args.sets:
        for seed in args.seeds:
            if args.stage == "prepare":
                prepare(args.work, name, seed, args.model, args.epochs, args.folds, args.width, args.unplanted)
            else:
                score_store(set_dir(args.work, name, seed, args.unplanted), name, seed, args.runs, args.reanalyze,
                            args.audit, args.reingest, args.unplanted)


if __name__ == "__main__":
    main()
