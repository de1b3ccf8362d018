"""The app-side settings of a training run: what the app does around ``ml.train``, not the model's
hyperparameters (those are ``ml.config.TrainConfig``).

- ``apply_flags``: train on flag-corrected labels (``app.flags.plan_labels``);
- ``cutoff_policy``: with flags, cut-off-like clips train as a class or are left out;
- ``folds``: also train k speaker-grouped fold models for out-of-fold probabilities.

``Run.config`` records both, merged into one dict as it always has (``record``), so a run's
page, ``earmark compare`` and old runs read the same keys; checkpoints keep only the
``TrainConfig`` part, and ``TrainConfig.from_dict`` ignores these keys in older checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from app.flags import POLICIES, CutoffPolicy
from ml.config import TrainConfig


@dataclass
class RunSpec:
    """What the app does around training (defaults: no flags, no folds)."""

    apply_flags: bool = False  # train on flag-corrected labels
    cutoff_policy: str = CutoffPolicy.CLASS.value  # class: cut-off-like clips -> _cutoff_ | exclude: leave them out
    folds: int = 0  # k of extra k-fold models for out-of-fold probabilities (0 = none)

    def validate(self) -> RunSpec:
        """Raise ValueError naming the first bad field; returns self."""
        if self.cutoff_policy not in POLICIES:
            raise ValueError(f"cutoff_policy must be one of {', '.join(POLICIES)}, not {self.cutoff_policy!r}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError("folds must be 0 (off) or at least 2")
        return self

    def to_dict(self) -> dict:
        """JSON-safe dict of every field."""
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict | None) -> RunSpec:
        """The spec recorded in a ``Run.config`` (missing keys: the defaults)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (config or {}).items() if k in names})


def record(cfg: TrainConfig, spec: RunSpec) -> dict:
    """What ``Run.config`` holds: the training config and the run spec, in one dict."""
    return {**cfg.to_dict(), **spec.to_dict()}
