"""Settings, defined once (pydantic-settings, ``EARMARK_`` prefix) and passed down.

Nothing reads the environment anywhere else: the CLI builds one ``Settings`` and hands it to
the pipeline and to ``create_app``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Settings(BaseSettings):
    """Everything earmark can be configured with. Each field maps to ``EARMARK_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="EARMARK_", extra="ignore")

    data_dir: Path = Field(Path("earmark-data"), description="Where the SQLite store, caches and runs live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/earmark.db. "
        "Use postgresql+psycopg://user@host/db for a team store."
    )
    host: str = Field("127.0.0.1", description="Address `earmark serve` binds to.")
    port: int = Field(8000, description="Port `earmark serve` listens on.")
    token: str | None = Field(None, description="Shared secret required on every request when set "
                              "(at least 16 characters).")
    allowed_hosts: str = Field("", description="Comma-separated extra host names the server answers to "
                               "(beside loopback names and `host`); `*` accepts any.")
    session_hours: float = Field(12.0, gt=0, description="Hours a login session lasts before the token is asked again.")
    device: str = Field("auto", description="Torch device for training and inference: auto, cpu, cuda, mps.")
    user: str = Field("anonymous", description="Default name recorded on flags set from the CLI.")

    @property
    def url(self) -> str:
        """The database URL actually used."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'earmark.db').resolve()}"

    @property
    def runs_dir(self) -> Path:
        """Checkpoints and TensorBoard logs, one folder per run."""
        return self.data_dir / "runs"

    @property
    def cache_dir(self) -> Path:
        """Decoded-waveform caches and rendered images."""
        return self.data_dir / "cache"
