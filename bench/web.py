"""Latency of every page and API call at Speech Commands scale, and the size of the cloud payload.

Builds (or reuses) a synthetic SQLite store of 105,829 clips with one complete run (predictions,
embeddings, projection, clip scores; tests.factories.make_run without audio, plus real WAVs for the
clips whose media are requested), serves it with uvicorn on loopback, and times each URL with a
keep-alive HTTP client. Prints a markdown table: p50 / p95 / max in ms, plus the first (cold) call.

    .venv/bin/python bench/web.py [--clips 105829] [--repeat 30] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings  # noqa: E402
from app.store.clips import load_clips  # noqa: E402
from app.store.db import open_store  # noqa: E402
from app.store.models import Clip, Dataset  # noqa: E402
from app.store.runs import newest_complete_run  # noqa: E402

LABELS = ["backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
          "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
          "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero"]


def build_store(data_dir: Path, n_clips: int, n_media: int) -> tuple[Settings, int, list[int]]:
    """A store with one run over ``n_clips`` clips (reused when already there); returns media clip ids."""
    from tests.conftest import write_wav
    from tests.factories import make_run

    settings = Settings(data_dir=data_dir)
    store = open_store(settings)
    with store.session() as s:
        run = newest_complete_run(s)
        if run is None or run.status != "complete":
            t = time.perf_counter()
            make_run(s, data_dir / "audio", n_clips=n_clips, labels=LABELS, dim=64, write_audio=False, seed=1)
            print(f"built {n_clips:,} clips in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            run = newest_complete_run(s)
        root = Path(s.get(Dataset, run.dataset_id).root)
        ids = load_clips(s, run.dataset_id).ids
        rng = np.random.default_rng(0)
        media = sorted(int(i) for i in rng.choice(ids, size=min(n_media, len(ids)), replace=False))
        for cid in media:  # real audio only where the bench asks for media
            clip = s.get(Clip, cid)
            if not (root / clip.path).exists():
                t = np.arange(16000) / 16000
                write_wav(root / clip.path, (0.3 * np.sin(2 * np.pi * 440 * t) * (t > 0.2) * (t < 0.8)).astype("f4"))
        run_id = run.id
    store.engine.dispose()
    return settings, run_id, media


def serve(settings: Settings):
    """Start uvicorn in a thread on a free port after the app's warm-up; returns (URL, server, seconds)."""
    import uvicorn

    from app.web.main import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t = time.perf_counter()
    app = create_app(settings, warm=True)  # as `earmark serve` does
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not (server.started and app.state.warm):
        time.sleep(0.05)
    warm_s = time.perf_counter() - t
    return f"http://127.0.0.1:{port}", server, warm_s


def time_calls(client, name: str, calls, repeat: int) -> dict:
    """Run ``calls`` (a function of i returning a response) ``repeat`` times after one cold call."""
    t = time.perf_counter()
    first = calls(0)
    cold = (time.perf_counter() - t) * 1000
    if first.status_code >= 400:
        raise SystemExit(f"{name}: HTTP {first.status_code}: {first.text[:200]}")
    times = []
    for i in range(1, repeat + 1):
        t = time.perf_counter()
        r = calls(i)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code < 400, (name, r.status_code, r.text[:200])
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return dict(name=name, cold=cold, p50=statistics.median(times), p95=p95, max=times[-1], bytes=len(first.content))


def parse_args(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The options every web benchmark takes: store size, calls per row, where the store lives."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--clips", type=int, default=105_829, help="clips in the synthetic store [default: 105829]")
    ap.add_argument("--repeat", type=int, default=30, help="timed calls per row after the cold one [default: 30]")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="keep the store here and reuse it next time [default: a temporary folder, removed]")
    return ap.parse_args(argv)


@contextlib.contextmanager
def data_dir_for(path: Path | None):
    """``path``, or a temporary folder removed afterwards."""
    if path is not None:
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="earmark-bench-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(results: list[dict]) -> None:
    """The timed rows as a Markdown table."""
    print("| request | first call (ms) | p50 (ms) | p95 (ms) | max (ms) | bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for x in results:
        print(f"| {x['name']} | {x['cold']:.0f} | {x['p50']:.1f} | {x['p95']:.1f} | {x['max']:.1f} | {x['bytes']:,} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)

    import httpx

    with data_dir_for(args.data_dir) as data_dir:
        settings, run_id, media = build_store(data_dir, args.clips, n_media=args.repeat * 3 + 10)
        shutil.rmtree(settings.cache_dir / "img", ignore_errors=True)  # spectrograms start uncached
        base, server, warm_s = serve(settings)
        h = {"X-Earmark-CSRF": "1"}
        with httpx.Client(base_url=base, timeout=60) as c:
            some = c.get(f"/api/clips?run={run_id}&per_page=200").json()["items"]
            ids = [x["id"] for x in some]
            r = run_id
            rows = [
                ("page /", lambda i: c.get(f"/?run={r}")),
                ("page /confusion (validation, counts)", lambda i: c.get(f"/confusion?run={r}")),
                ("page /confusion (train, by row)", lambda i: c.get(f"/confusion?run={r}&split=train&norm=row")),
                ("page /clips (high loss first)", lambda i: c.get(f"/clips?run={r}")),
                ("page /clips (5 filters, sort confidence)", lambda i: c.get(
                    f"/clips?run={r}&split=test&agreement=disagree&conf_max=0.7&loss_min=0.5&sort=confidence")),
                ("page /clips (page 1000)", lambda i: c.get(f"/clips?run={r}&page={1000 + i}")),
                ("page /clips/{id} (clip page)", lambda i: c.get(f"/clips/{ids[i % len(ids)]}?run={r}")),
                ("page /cloud", lambda i: c.get(f"/cloud?run={r}")),
                ("GET /api/cloud (legend)", lambda i: c.get(f"/api/cloud?run={r}")),
                ("GET /api/cloud.bin (points)", lambda i: c.get(f"/api/cloud.bin?run={r}")),
                ("GET /api/clips", lambda i: c.get(f"/api/clips?run={r}&sort=cutoff&page={i + 1}")),
                ("GET /api/clips/{id}", lambda i: c.get(f"/api/clips/{ids[-1 - i % len(ids)]}?run={r}")),
                ("GET /api/confusion", lambda i: c.get(f"/api/confusion?run={r}&split=test")),
                ("GET /api/runs", lambda i: c.get("/api/runs")),
                ("GET /api/datasets", lambda i: c.get("/api/datasets")),
                ("GET /media audio.wav (Range)", lambda i: c.get(f"/media/clips/{media[i]}/audio.wav",
                                                                 headers={"Range": "bytes=0-8191"})),
                ("GET /media spectrogram (small, uncached)", lambda i: c.get(
                    f"/media/clips/{media[args.repeat + 1 + i]}/spectrogram.png?size=small")),
                ("GET /media spectrogram (large, uncached)", lambda i: c.get(
                    f"/media/clips/{media[2 * args.repeat + 2 + i]}/spectrogram.png?size=large")),
                ("GET /media spectrogram (cached)", lambda i: c.get(f"/media/clips/{media[0]}/spectrogram.png?size=small")),
                ("POST /api/clips/{id}/flag", lambda i: c.post(f"/api/clips/{ids[i % len(ids)]}/flag",
                                                               json={"reason": "cutoff"}, headers=h)),
                ("page /clips?flag=any (after flags)", lambda i: c.get(f"/clips?run={r}&flag=any")),
            ]
            results = [time_calls(c, name, fn, args.repeat) for name, fn in rows]
            payload = len(c.get(f"/api/cloud.bin?run={r}").content)
            n_points = c.get(f"/api/cloud?run={r}").json()["n"]
        server.should_exit = True

    print(f"\n### Web latency, {args.clips:,} clips, one run (SQLite), {args.repeat} calls per row\n")
    print(f"Start-up with warm-up (store opened, run columns, cloud payload and embeddings loaded): "
          f"{warm_s:.1f} s\n")
    print_table(results)
    worst = max(results, key=lambda x: x["p95"])
    print(f"\nEmbedding payload: {n_points:,} points in {payload:,} bytes ({payload / 2**20:.2f} MiB, "
          f"{payload / max(1, n_points):.1f} B/point); goal <= 2 MB: {'met' if payload <= 2_000_000 else 'MISSED'}.")
    print(f"Worst p95: {worst['p95']:.1f} ms ({worst['name']}); goal <= 200 ms: "
          f"{'met' if worst['p95'] <= 200 else 'MISSED'}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
