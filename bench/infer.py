"""Inference throughput through the real pipeline: decode/cache, predict + embed, write to the store.

Writes ``--clips`` synthetic one-second WAVs to a temporary folder, registers them as a data set
(rows inserted directly; ingest has its own bench), makes a checkpoint with one training batch,
then times ``app.pipeline.infer.infer_run`` stage by stage (from its progress callbacks): reading
the waveform cache, inference with embeddings, and writing Prediction + Embedding rows in one
transaction. SQLite by default; ``--database-url postgresql+psycopg://...`` for PostgreSQL.
Runs on CPU and CUDA (``--device``).

    python bench/infer.py --clips 5000                        # CPU
    python bench/infer.py --clips 105000 --batch-size 4096    # GPU
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings  # noqa: E402
from app.pipeline.infer import infer_run  # noqa: E402
from app.store.db import open_store  # noqa: E402
from app.store.models import Clip, Dataset, Run  # noqa: E402
from app.store.writes import bulk_insert  # noqa: E402
from bench.train import make_wavs  # noqa: E402
from ml.config import TrainConfig  # noqa: E402
from ml.data import load_waveforms  # noqa: E402
from ml.device import pick_device  # noqa: E402
from ml.train import TrainData, train  # noqa: E402

SPLITS = ("train", "validation", "test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=5000, help="synthetic clips (default 5000)")
    ap.add_argument("--classes", type=int, default=35, help="classes (default 35)")
    ap.add_argument("--model", default="melcnn", help="melcnn or m5 (default melcnn)")
    ap.add_argument("--batch-size", type=int, default=512, help="inference batch size (default 512)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    ap.add_argument("--database-url", default=None, help="store URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory(prefix="earmark-bench-infer-") as tmp:
        tmp = Path(tmp)
        root = tmp / "ds"
        paths, labels, _noise = make_wavs(root, args.clips, args.classes)
        settings = Settings(data_dir=tmp / "data", database_url=args.database_url, device=args.device)
        store = open_store(settings)
        sessions = store.sessions
        classes = [f"c{c:02d}" for c in range(args.classes)]
        name = f"bench-infer-{int(time.time())}"
        with sessions() as s:
            ds = Dataset(name=name, root=str(root), layout="speech_commands", status="ready", n_clips=len(paths),
                         labels=classes, noise_files=[])
            s.add(ds)
            s.flush()
            bulk_insert(s, Clip, [dict(
                dataset_id=ds.id, path=p, label=classes[labels[i]], word=classes[labels[i]], split=SPLITS[i % 3],
                speaker=f"{i:08x}", utterance=0, sample_rate=16000, n_samples=16000, duration_s=1.0, channels=1,
                content_hash=hashlib.sha1(p.encode()).hexdigest(), rms_dbfs=-20.0, peak=0.3, clipped_frac=0.0,
                lead_silence_ms=0.0, trail_silence_ms=0.0, end_energy_db=-60.0, cutoff_signal=False)
                for i, p in enumerate(paths)])
            s.commit()
            ds_id = ds.id
        # First decode fills the cache (the training run would have done this); infer then reads it.
        t0 = time.perf_counter()
        waves, _, _ = load_waveforms(root, paths, fallback_dir=settings.cache_dir)
        t_decode = time.perf_counter() - t0
        cfg = TrainConfig(model=args.model, dry_run=True, batch_size=64, eval_batch_size=args.batch_size)
        idx = np.arange(len(paths))
        result = train(cfg, TrainData(waves, labels.astype(np.int64), idx[:256], idx[:64], classes),
                       tmp / "run", device)
        with sessions() as s:
            run = Run(dataset_id=ds_id, name=name, model=args.model, status="trained", classes=classes,
                      config=cfg.to_dict(), checkpoint=str(result.best_path))
            s.add(run)
            s.commit()
            run_id = run.id

        marks: dict[str, list[float]] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            marks.setdefault(stage, []).append(time.perf_counter())

        t0 = time.perf_counter()
        infer_run(store, run_id, progress=on_progress, batch_size=args.batch_size)
        total = time.perf_counter() - t0
        if args.database_url:  # leave a shared database as we found it
            with sessions() as s:
                s.delete(s.get(Dataset, ds_id))
                s.commit()

    infer_s = marks["inferring"][-1] - marks["inferring"][0]
    write_s = marks["writing"][-1] - marks["writing"][0]
    n = args.clips
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    store = "PostgreSQL" if args.database_url and "postgres" in args.database_url else "SQLite"
    print(f"\n### Inference: {args.model}, {n:,} clips, batch {args.batch_size}, {dev_name}, {store}\n")
    print("| stage | seconds | clips/s |")
    print("|---|---:|---:|")
    print(f"| first decode into the waveform cache (training does this once) | {t_decode:.2f} | {n / t_decode:,.0f} |")
    print(f"| inference + embeddings (probabilities, penultimate layer) | {infer_s:.2f} | {n / infer_s:,.0f} |")
    print(f"| writing {n:,} predictions + {n:,} embeddings, one transaction | {write_s:.2f} | {n / write_s:,.0f} |")
    print(f"| whole `earmark infer` (store, cache, model, metrics, write) | {total:.2f} | {n / total:,.0f} |")
    print(f"\nprojected inference over 105k clips: {105_000 / (n / infer_s):.1f} s")


if __name__ == "__main__":
    main()
