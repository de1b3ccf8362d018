"""The Python API example of docs/guide.md, run as written on the real Speech Commands sample: an
outside scikit-learn model imported next to a melcnn run, projected, analysed and compared."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sqlalchemy import func, select

from app.pipeline.infer import infer_run
from app.pipeline.ingest import ingest
from app.pipeline.train import train_run
from app.store.models import Finding, Projection, Run
from ml.config import TrainConfig

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"


def guide_example(name: str) -> str:
    """The python block between ``<!-- example: NAME -->`` and ``<!-- /example -->`` in the guide."""
    m = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```\s*<!-- /example -->", GUIDE.read_text(), re.S)
    assert m, f"docs/guide.md has no example {name!r}"
    return m.group(1)


def test_guide_api_example_runs_on_real_clips(sqlite_store, shared_sample, tmp_path, monkeypatch, capsys):
    store = sqlite_store
    root = tmp_path / "demo"
    shutil.copytree(shared_sample, root)
    ingest(store, root, name="demo", workers=1)
    run_id = train_run(store, "demo", TrainConfig(epochs=1, batch_size=32, width=8), name="demo-melcnn")
    infer_run(store, run_id)
    monkeypatch.setenv("EARMARK_DATABASE_URL", store.settings.url)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(store.settings.data_dir))

    exec(compile(guide_example("import-own-model"), str(GUIDE), "exec"), {"__name__": "guide_example"})

    out = capsys.readouterr().out
    assert "300 of 300 clips (100.0%)" in out
    assert re.search(r"validation: melcnn 0\.\d+, yours 0\.\d+; fixed \d+, broke \d+", out), out
    with store.session() as s:
        run = s.scalars(select(Run).where(Run.name == "logreg-logmel")).one()
        assert run.status == "complete" and run.embedding_dim == 80 and len(run.classes) == 30
        assert run.config["import"]["model"] == "logistic regression on log-mel stats"
        assert run.metrics["train"]["accuracy"] > 0.5  # the outside model learned something
        assert s.scalar(select(func.count()).select_from(Projection).where(Projection.run_id == run.id)) == 300
        assert s.scalar(select(func.count()).select_from(Finding).where(Finding.run_id == run.id)) > 0
