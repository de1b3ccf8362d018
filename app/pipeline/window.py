"""The trainer's input window: how many seconds every clip is padded or cropped to.

Speech Commands-style folders keep the 1 s window their models were built for. Other layouts
(manifests, name patterns) hold clips of any length at any rate: the window is the 95th
percentile of the clip durations, rounded up to 0.1 s, between ``MIN_WINDOW_S`` and
``MAX_WINDOW_S`` (longer clips are cropped at the end, shorter ones zero-padded). The trainer
resamples every clip to its model rate (``TrainConfig.sample_rate``) first, so a mixed-rate set
works. The window is recorded in the run's config: ``clip_samples`` (what training and inference
use) and ``window`` (the seconds, the rule and the percentile it came from).

A ``TrainConfig`` whose ``clip_samples`` is not the default was set on purpose and is kept.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from app.pipeline.ingest_plan import SPEECH_COMMANDS_KINDS
from ml.config import TrainConfig

PERCENTILE = 95.0
MIN_WINDOW_S = 0.5
MAX_WINDOW_S = 10.0


def window_seconds(durations: np.ndarray) -> tuple[float, float]:
    """(window, p95): the 95th percentile of ``durations`` rounded up to 0.1 s, clamped to [0.5, 10] s."""
    if len(durations) == 0:
        return 1.0, 0.0
    p95 = float(np.percentile(durations, PERCENTILE))
    window = math.ceil(round(p95 * 10, 6)) / 10
    return min(MAX_WINDOW_S, max(MIN_WINDOW_S, window)), p95


def fit_window(cfg: TrainConfig, layout: str, durations: np.ndarray) -> tuple[TrainConfig, dict]:
    """``cfg`` with ``clip_samples`` fitted to the data set, and the record of how (for ``Run.config``)."""
    default = TrainConfig().clip_samples
    if cfg.clip_samples != default:
        return cfg, {"seconds": cfg.clip_samples / cfg.sample_rate, "rule": "given"}
    if layout in SPEECH_COMMANDS_KINDS:
        return cfg, {"seconds": cfg.clip_samples / cfg.sample_rate, "rule": "speech_commands_1s"}
    seconds, p95 = window_seconds(durations)
    fitted = replace(cfg, clip_samples=int(round(seconds * cfg.sample_rate)))
    return fitted, {"seconds": seconds, "rule": f"p{PERCENTILE:g} of clip durations, up to {MAX_WINDOW_S:g} s",
                    "p95_s": round(p95, 4), "clips_longer": int((durations > seconds + 1e-9).sum())}
