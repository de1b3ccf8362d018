"""Would silero-vad make a better cut-off indicator? Its cost per clip, and its last-window speech
probability as a cut-off indicator on a planted real set (from ``bench/plant_real.py --keep``).

silero-vad is not a dependency of earmark; install it beside the venv to run this:

    .venv/bin/pip install --no-deps --target /tmp/svad silero-vad
    .venv/bin/python bench/plant_real.py --sets arabic --seeds 0 --keep /tmp/planted
    PYTHONPATH=/tmp/svad .venv/bin/python bench/vad_cost.py /tmp/planted/arabic-seed0
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.audio import read_wav  # noqa: E402
from ml.plant import read_clips  # noqa: E402

WIN = 512  # silero-vad's window at 16 kHz
N_WIN = 31  # 31 x 512 = 15,872 samples: the last second of each clip, right-aligned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("planted", type=Path, help="A folder written by bench/plant_real.py --keep.")
    parser.add_argument("--batch", type=int, default=256, help="Clips per batched call. Default 256.")
    args = parser.parse_args()
    try:
        import torch
        from silero_vad import get_speech_timestamps, load_silero_vad
    except ImportError as exc:
        sys.exit(f"silero-vad is not installed ({exc}); see this script's docstring")
    torch.set_num_threads(1)
    model = load_silero_vad()
    _, clips = read_clips(args.planted / "dataset")
    waves = [read_wav(args.planted / "dataset" / c.rel)[0] for c in clips]

    sample = [torch.from_numpy(x) for x in waves[:100]]
    get_speech_timestamps(sample[0], model, sampling_rate=16000)
    t0 = time.perf_counter()
    for x in sample:
        get_speech_timestamps(x, model, sampling_rate=16000)
    per_clip = (time.perf_counter() - t0) / len(sample)
    print(f"get_speech_timestamps, one clip at a time, 1 thread: {per_clip * 1000:.1f} ms/clip; "
          f"105k clips on 2 cores: {per_clip * 105_000 / 2 / 60:.1f} min")

    probs = []
    t0 = time.perf_counter()
    for b in range(0, len(waves), args.batch):
        x = torch.stack([torch.from_numpy(np.pad(w[-WIN * N_WIN:], (WIN * N_WIN - min(w.size, WIN * N_WIN), 0)))
                         for w in waves[b: b + args.batch]])  # (B, 15872)
        model.reset_states()
        with torch.no_grad():
            probs.append(torch.stack([model(x[:, i * WIN:(i + 1) * WIN], 16000).squeeze(-1)
                                      for i in range(N_WIN)], 1).numpy())  # (B, N_WIN)
    per_clip = (time.perf_counter() - t0) / len(waves)
    print(f"batched over clips (B={args.batch}), 1 thread: {per_clip * 1000:.2f} ms/clip; "
          f"105k clips on 2 cores: {per_clip * 105_000 / 2 / 60:.1f} min")
    last = np.concatenate(probs)[:, -1]
    with open(args.planted / "defects.csv", newline="") as f:
        kind = {r["path"]: r["defect"] for r in csv.DictReader(f)}
    k = np.array([kind.get(c.rel, "clean") for c in clips])
    pos, neg = k == "cutoff", (k == "clean") | (k == "noise_only")
    print("| last-window speech probability at least | recall | precision (planted) | false alarms |")
    print("|---:|---:|---:|---:|")
    for thr in (0.3, 0.5, 0.7):
        flag = last >= thr
        tp, fp = int((flag & pos).sum()), int((flag & neg).sum())
        print(f"| {thr} | {tp / max(1, pos.sum()):.2f} | {tp / max(1, tp + fp):.2f} | {fp} |")


if __name__ == "__main__":
    main()
