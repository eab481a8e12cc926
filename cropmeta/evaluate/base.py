"""The contract every method of the comparison honours (:class:`Method`) and its target
(:class:`TargetTask`); the contract is described in :mod:`cropmeta.evaluate.methods`. The deep
learners are one adapter over it (:class:`cropmeta.evaluate.deep.LearnerMethod`), the random
forests and oracles are methods of their own (:mod:`cropmeta.evaluate.methods`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cropmeta.errors import InputError

__all__ = ["NO_ZERO_SHOT", "TargetTask", "Method", "check_xy"]

#: why a method has no zero-shot row (printed in the report when zero-shot rows are asked for)
NO_ZERO_SHOT = {
    "scratch": "a random initialisation has nothing to predict with before fine-tuning",
    "random-forest": "it is trained on the target's labels only (see the other-regions random forest)",
    "in-context": "it reads its predictions from a support set of target labels and was never meta-trained "
                  "with an empty one",
    "presto": "its classifier is fitted on the target's labels (the encoder alone predicts no class)",
    "presto-ft": "its classification head is trained on the target's labels",
    "random-forest-both": "without target labels it is the other-regions random forest (that row)",
}
@dataclass
class TargetTask:
    """The target of a comparison: where, what, and its task-information vector (13 numbers)."""

    region: str
    crop: str | None
    task_info: np.ndarray
    name: str = ""
    extra: dict = field(default_factory=dict)  # e.g. the train helper's Task object under "task"


class Method:
    """Base class: see the module docstring for the contract."""

    name = "method"
    #: whether :meth:`prepare` needs the non-target source data
    needs_source = False

    def prepare(self, source: Any, target: TargetTask, seed: int, workdir=None) -> "Method":
        """``workdir``: a scratch directory for resumable training state (may be ignored)."""
        return self

    def set_target(self, target: TargetTask, seed: int) -> None:
        """Called before :meth:`load_prepared_state`: what prepare would have recorded of the target."""

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> "Method":  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_zero_shot(self, seed: int = 0) -> "Method":
        """Get ready to predict the target without any of its labels (the zero-shot and fixed cells
        of :data:`SHOT_MODES`): the prepared model as it is."""
        raise InputError(f"{self.name}: no zero-shot prediction ({NO_ZERO_SHOT.get(self.name, 'needs target labels')})")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # a prepared state that can be cached between runs (dict of JSON-able values + named arrays)
    def prepared_state(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        return None

    def load_prepared_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> bool:
        return False


def check_xy(x: np.ndarray, y: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.int64).ravel()
    if x.ndim != 3:
        raise InputError(f"{who}: samples must be [N, T, n_bands], got {list(x.shape)}")
    if len(x) != len(y):
        raise InputError(f"{who}: {len(x)} samples for {len(y)} labels")
    if not np.isin(y, [0, 1]).all():
        raise InputError(f"{who}: labels must be 0/1")
    if not np.isfinite(x).all():
        raise InputError(f"{who}: training samples contain NaN or inf")
    return x, y
