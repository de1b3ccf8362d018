"""The layering rules, read from the source with ``ast``: ml/ knows nothing of the store or the web,
and the web server never imports torch (so it starts fast and never waits for a model)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Top-level package names imported anywhere in ``path`` (functions included); relative imports as '.'."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." if node.level else (node.module or "").split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                "__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value).split(".")[0])
    return found


def _py_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_imported_modules_sees_every_kind_of_import(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os.path\nfrom app.store import db\ndef f():\n    import torch\n"
                   "    __import__('sqlalchemy.orm')\nfrom . import x\n")
    assert imported_modules(src) == {"os", "app", "torch", "sqlalchemy", "."}


@pytest.mark.parametrize("path", _py_files("ml"), ids=lambda p: str(p.relative_to(REPO)))
def test_ml_never_imports_app_sqlalchemy_or_fastapi(path):
    bad = imported_modules(path) & {"app", "sqlalchemy", "fastapi", "alembic", "starlette", "uvicorn", "."}
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}: ml/ must stay free of the store and the web"


def test_ml_has_modules_to_check():
    assert {"audio.py", "speech_commands.py"} <= {p.name for p in _py_files("ml")}


@pytest.mark.parametrize("path", _py_files("app/web"), ids=lambda p: str(p.relative_to(REPO)))
def test_web_never_imports_torch(path):
    bad = imported_modules(path) & {"torch", "torchaudio"}
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}: the web server must never load torch"


_IMPORT_ALL_WEB = """
import importlib, pkgutil, sys
import app.web
for mod in pkgutil.walk_packages(app.web.__path__, "app.web."):
    importlib.import_module(mod.name)
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH" if loaded else "CLEAN")
"""


def test_web_modules_do_not_load_torch_even_indirectly():
    # Catches torch pulled in through ml/ or another package, which the per-file check cannot see.
    out = subprocess.run([sys.executable, "-c", _IMPORT_ALL_WEB], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("CLEAN"), "importing app.web loads torch"
