"""The bookkeeping every meta-trainer shares (TIML/MAML in :mod:`cropmeta.train.maml`, the in-context
learner in :mod:`cropmeta.train.incontext`): the loop state, task removal, best-by-validation
bookkeeping, the resume check and the JSON-lines log that a resumed run truncates to match.

The state (:func:`new_state`) is what the resume checkpoint stores besides tensors: ``iteration``,
``removed`` task ids, per-task query-AUC ``history``, ``best_val`` / ``best_iteration`` and
``log_lines`` (lines of ``log.jsonl`` written so far).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cropmeta.errors import InputError
from cropmeta.io.atomic import atomic_write_text
from cropmeta.learners.base import RESUME_FORMAT

__all__ = ["LOG_NAME", "new_state", "restore_state", "update_removal", "record_validation", "check_resumable",
           "start_log", "truncate_log", "state_dict_clone"]

#: the per-step log of a meta-training work directory
LOG_NAME = "log.jsonl"
_STATE_KEYS = ("iteration", "removed", "history", "best_val", "best_iteration", "log_lines")
_UNCHECKED = object()


def new_state() -> dict:
    """The loop state of a fresh run."""
    return {"iteration": 0, "removed": [], "history": {}, "best_val": None, "best_iteration": None, "log_lines": 0}


def restore_state(state: dict, meta: dict) -> None:
    """Copy the loop state of a resume record into ``state``."""
    for key in _STATE_KEYS:
        state[key] = meta[key]


def update_removal(state: dict, ids: list[str], aucs: list[float], cfg) -> list[str]:
    """TIML's task removal: record each drawn task's query AUC (the last ``remove_lookback`` kept); a
    task whose mean over them is ≥ ``remove_auc`` leaves the meta-training pool (``remove_auc`` None:
    never). Returns the tasks removed now (also appended to ``state["removed"]``)."""
    hist = state["history"]
    for tid, auc in zip(ids, aucs):
        h = hist.setdefault(tid, [])
        h.append(round(float(auc), 6))
        del h[: max(0, len(h) - cfg.remove_lookback)]
    if cfg.remove_auc is None:
        return []
    out = [tid for tid in dict.fromkeys(ids) if tid not in state["removed"]
           and len(hist.get(tid, [])) >= cfg.remove_lookback and float(np.mean(hist[tid])) >= cfg.remove_auc]
    state["removed"] = list(state["removed"]) + out
    return out


def record_validation(state: dict, rec: dict, iteration: int, loss: float, auc: float) -> bool:
    """Put a meta-validation result into the step's log record; True when it is the best so far (the
    caller then keeps a copy of the weights)."""
    rec.update({"meta_val_loss": loss, "meta_val_auc": auc})
    if state["best_val"] is None or loss < state["best_val"]:
        state["best_val"], state["best_iteration"] = loss, iteration
        rec["best"] = True
        return True
    return False


def check_resumable(meta: dict, where, *, learner: str, seed: int, config_diff: list[str], train_ids, val_ids,
                    data_hash, init_sha=_UNCHECKED) -> None:
    """Refuse to resume from a state written by another learner, configuration (``config_diff``: the
    changed options), seed, data, task split or (when ``init_sha`` is given) initial weights."""
    if meta.get("format") != RESUME_FORMAT:
        raise InputError(f"{where}: not a cropmeta resume checkpoint")
    if config_diff:
        raise InputError(f"{where}: cannot resume with a different configuration (changed: {', '.join(config_diff)})")
    if meta.get("learner") != learner or int(meta.get("seed", -1)) != int(seed):
        raise InputError(f"{where}: cannot resume: it was started with learner {meta.get('learner')!r}, "
                         f"seed {meta.get('seed')}")
    if meta.get("data_hash") != data_hash or meta.get("train_tasks") != train_ids or meta.get("val_tasks") != val_ids:
        raise InputError(f"{where}: cannot resume: the training data or tasks differ from the interrupted run")
    if init_sha is not _UNCHECKED and meta.get("init_sha256") != init_sha:
        raise InputError(f"{where}: cannot resume: the initial weights differ from the interrupted run")


def start_log(path: Path | None, state: dict, resumed: bool) -> None:
    """A resumed run: cut ``log.jsonl`` back to the lines its state counted; a fresh one: empty it."""
    if path is None:
        return
    if resumed:
        truncate_log(path, int(state["log_lines"]))
    if state["iteration"] == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def truncate_log(path: Path, n_lines: int) -> None:
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) != n_lines:
        atomic_write_text(path, "".join(lines[:n_lines]))


def state_dict_clone(mod: torch.nn.Module | None) -> dict | None:
    """A detached copy of a module's weights (None for no module)."""
    return None if mod is None else {k: v.detach().clone() for k, v in mod.state_dict().items()}
