"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the services, their
variables, dependency conditions and commands, and that those commands exist in this code base.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
URL = "postgresql+psycopg://earmark:earmark@db:5432/earmark"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _command(svc: dict) -> list[str]:
    cmd = svc["command"]
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def _named_volume_targets(svc: dict, compose: dict) -> dict[str, str]:
    """target path -> named volume, checking every named volume is declared at the top level."""
    out = {}
    for spec in svc.get("volumes", []):
        source, target = spec.split(":")[:2]
        assert source in (compose.get("volumes") or {}), f"volume {source!r} is not declared"
        out[target] = source
    return out


def test_compose_has_the_three_services(services):
    assert set(services) == {"db", "migrate", "app"}


def test_compose_db_is_postgres16_with_healthcheck_and_volume(services, compose):
    db = services["db"]
    assert db["image"] == "postgres:16"
    env = db["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == ("earmark", "earmark", "earmark")
    test = db["healthcheck"]["test"]
    assert "pg_isready" in " ".join(test if isinstance(test, list) else [test])
    assert _named_volume_targets(db, compose).get("/var/lib/postgresql/data")


def test_compose_url_matches_the_db_service(services):
    url = make_url(URL)
    env = services["db"]["environment"]
    assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "db", 5432)
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])


def test_compose_migrate_runs_alembic_once_after_db_is_healthy(services):
    mig = services["migrate"]
    assert _command(mig) == ["alembic", "upgrade", "head"]
    assert mig["environment"]["EARMARK_DATABASE_URL"] == URL
    assert mig["depends_on"]["db"]["condition"] == "service_healthy"
    assert str(mig.get("restart", "no")) == "no", "a one-shot step must not restart"
    build = mig["build"]
    context = build if isinstance(build, str) else build["context"]
    assert (ROOT / context / "Dockerfile").is_file()


def test_compose_app_serves_with_url_token_and_data_volume(services, compose):
    app = services["app"]
    assert _command(app) == ["earmark", "serve", "--host", "0.0.0.0", "--port", "8000"]
    env = app["environment"]
    assert env["EARMARK_DATABASE_URL"] == URL
    # ${VAR:?message}: compose refuses to start when EARMARK_TOKEN is unset or empty
    assert re.fullmatch(r"\$\{EARMARK_TOKEN:\?[^}]+\}", env["EARMARK_TOKEN"]), env["EARMARK_TOKEN"]
    data_dir = env["EARMARK_DATA_DIR"]
    assert data_dir in _named_volume_targets(app, compose), "EARMARK_DATA_DIR must be on a volume"
    assert "8000:8000" in [str(p) for p in app["ports"]]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert app["build"] == services["migrate"]["build"] and app["image"] == services["migrate"]["image"]


def test_compose_no_secret_literals_in_app(services):
    for name in ("app", "migrate"):
        for key, value in services[name]["environment"].items():
            if "TOKEN" in key:
                assert str(value).startswith("${"), f"{name}.{key} must come from the environment"


def test_dockerfile_installs_pinned_cpu_torch_and_the_package():
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    torch_line = next(ln for ln in lines if "torch==" in ln)
    assert "torch==2.13.0" in torch_line and "download.pytorch.org/whl/cpu" in torch_line
    pins = re.findall(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pins == ["2.13.0"], "the Dockerfile's torch must match pyproject's pin"
    install = [ln for ln in lines if re.match(r"RUN pip install (-e )?\.$", ln)]
    assert install, "the image must pip install the project"
    assert lines.index(torch_line) < lines.index(install[0]), "torch from the CPU index must come first"
    assert "torchaudio" not in text
    copied = {part for ln in lines if ln.startswith("COPY") for part in ln.split()[1:-1]}
    for needed in ("pyproject.toml", "alembic.ini", "app", "ml", "migrations", "templates", "static"):
        assert needed in copied, f"the image lacks {needed}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_compose_commands_exist_in_this_code_base():
    from app.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--host" in result.output and "--port" in result.output
    ini = configparser.ConfigParser()
    ini.read(ROOT / "alembic.ini")
    assert (ROOT / ini["alembic"]["script_location"] / "env.py").is_file()
    # alembic takes EARMARK_DATABASE_URL through earmark's settings, not from alembic.ini
    assert not ini["alembic"].get("sqlalchemy.url")
    assert "Settings().url" in (ROOT / "migrations" / "env.py").read_text()
