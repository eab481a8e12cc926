"""A meta-training run SIGKILLed mid-way and resumed ends with exactly the weights of an
uninterrupted run with the same seed (CPU, tiny config)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cropmeta.errors import InputError
from cropmeta.train.config import resolve_config
from cropmeta.train.maml import meta_train
from cropmeta.testing import toy_samples

REPO = Path(__file__).resolve().parent.parent
ITERATIONS = 12

SCRIPT = """
import sys, time, torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from cropmeta.train.config import resolve_config
from cropmeta.train.maml import meta_train
from cropmeta.testing import toy_samples

workdir, resume, delay = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3])
samples = toy_samples(n_per_label=16, n_noncrop=20, t=4, seed=5, regions=REGIONS)
cfg = resolve_config("quick", overrides=CFG)
model = meta_train(samples, None, cfg, seed=11, workdir=workdir, resume=resume,
                   callback=(lambda i, rec: time.sleep(delay)) if delay else None)
state = {"classifier." + k: v for k, v in model.classifier.state_dict().items()}
state.update({"encoder." + k: v for k, v in model.encoder.state_dict().items()})
save_file({k: v.contiguous() for k, v in state.items()}, workdir + "/final.safetensors")
"""
REGIONS = [("Kenya", 0.2, 37.9, ["maize", "bean"]), ("Togo", 8.5, 0.9, ["maize"]),
           ("Uganda", 1.3, 32.4, ["maize", "bean"])]
CFG = {"hidden": 8, "encoder_dims": [8, 8, 8], "encoder_channels_per_group": 4, "iterations": ITERATIONS,
       "tasks_per_step": 3, "k_support": 4, "k_query": 2, "checkpoint_every": 3, "val_every": 4,
       "val_fraction": 0.3, "first_order": False, "remove_lookback": 2, "remove_auc": 0.9, "threads": 1}


def _launch(script: Path, workdir: Path, resume: bool, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), str(workdir), "1" if resume else "0", str(delay)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _state_iteration(workdir: Path) -> int:
    p = workdir / "checkpoint" / "state.json"
    try:
        return int(json.loads(p.read_text())["iteration"])
    except (OSError, ValueError, KeyError):
        return 0


def _run_here(workdir: Path, resume: bool) -> dict:
    """The same run in this process (one torch thread, like the script)."""
    torch.set_num_threads(1)
    samples = toy_samples(n_per_label=16, n_noncrop=20, t=4, seed=5, regions=REGIONS)
    model = meta_train(samples, None, resolve_config("quick", overrides=CFG), seed=11, workdir=workdir,
                       resume=resume)
    out = {"classifier." + k: v for k, v in model.classifier.state_dict().items()}
    out.update({"encoder." + k: v for k, v in model.encoder.state_dict().items()})
    return out


def test_sigkill_then_resume_gives_identical_weights(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(f"REGIONS = {REGIONS!r}\nCFG = {CFG!r}\n" + SCRIPT)
    a, b = tmp_path / "interrupted", tmp_path / "straight"
    a.mkdir(), b.mkdir()
    pa = _launch(script, a, False, 0.4)  # slowed down so that it is killed between checkpoints
    wb = _run_here(b, resume=False)  # meanwhile, the uninterrupted run
    deadline = time.time() + 90
    while _state_iteration(a) < 6:
        assert pa.poll() is None, pa.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the interrupted run never reached its checkpoint"
        time.sleep(0.02)
    os.kill(pa.pid, signal.SIGKILL)
    pa.wait()
    assert pa.returncode == -signal.SIGKILL
    assert not (a / "final.safetensors").exists()
    killed_at = _state_iteration(a)
    assert 6 <= killed_at < ITERATIONS
    n_logged = len((a / "log.jsonl").read_text().splitlines())
    assert n_logged >= killed_at  # lines past the checkpoint are dropped on resume
    at_kill = load_file(str(a / "checkpoint" / "state.safetensors"))

    wa = _run_here(a, resume=True)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs after resume"
    # the log of the resumed run is the uninterrupted one (no duplicated or missing iterations)
    la = [json.loads(x) for x in (a / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (b / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in la] == list(range(1, ITERATIONS + 1))
    strip = lambda r: {k: v for k, v in r.items() if k != "elapsed_s"}  # noqa: E731
    assert [strip(r) for r in la] == [strip(r) for r in lb]
    # the complete final state (last weights, best weights, Adam moments, RNG) is identical too
    sa = load_file(str(a / "checkpoint" / "state.safetensors"))
    sb = load_file(str(b / "checkpoint" / "state.safetensors"))
    assert sa.keys() == sb.keys() and any(k.startswith("opt.") for k in sa)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"final state {k} differs after resume"
    # the resumed part did train: the last weights moved after the checkpoint it started from
    assert not torch.equal(at_kill["classifier.lstm.weight_hh"], sa["classifier.lstm.weight_hh"])


def test_resume_refuses_another_configuration(tmp_path):
    samples = toy_samples(n_per_label=16, n_noncrop=20, t=4, seed=5, regions=REGIONS)
    cfg = resolve_config("quick", overrides={**CFG, "iterations": 3})
    meta_train(samples, None, cfg, seed=11, workdir=tmp_path)
    assert (tmp_path / "checkpoint" / "state.json").exists()
    with pytest.raises(InputError, match="inner_lr"):
        meta_train(samples, None, cfg.replace(inner_lr=0.5), seed=11, workdir=tmp_path, resume=True)
    with pytest.raises(InputError, match="seed"):
        meta_train(samples, None, cfg, seed=12, workdir=tmp_path, resume=True)
