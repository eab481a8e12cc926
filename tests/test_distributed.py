"""2 gloo ranks on CPU (each a slice of every meta-batch, all-reduced meta-gradients) end with the
same parameters as one process, to 1e-6 (float64, tiny model, a few outer steps)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from cropmeta.train import checkpoint as ck
from cropmeta.train.config import resolve_config
from cropmeta.train.distributed import DistContext, spawn
from cropmeta.train.maml import meta_train, meta_train_worker
from cropmeta.testing import toy_samples

REGIONS = [("Kenya", 0.2, 37.9, ["maize", "bean"]), ("Togo", 8.5, 0.9, ["maize"]),
           ("Uganda", 1.3, 32.4, ["maize", "bean"])]
CFG = {"hidden": 8, "encoder_dims": [8, 8, 8], "encoder_channels_per_group": 4, "iterations": 4,
       "tasks_per_step": 5, "k_support": 4, "k_query": 2, "val_every": 2, "val_fraction": 0.3,
       "first_order": False, "dtype": "float64", "threads": 1, "checkpoint_every": 2}


def test_two_gloo_ranks_equal_one_process(tmp_path):
    torch.set_num_threads(1)
    samples = toy_samples(n_per_label=16, n_noncrop=20, t=4, seed=9, regions=REGIONS)
    cfg = resolve_config("quick", overrides=CFG)
    one = meta_train(samples, None, cfg, seed=4, workdir=tmp_path / "one")
    spawn(meta_train_worker, 2, args=(samples, None, cfg, 4, str(tmp_path / "two"), False, False), backend="gloo")
    two, _ = ck.load_model(tmp_path / "two" / "meta")
    assert two.info["world_size"] == 2 and one.info["world_size"] == 1
    assert two.info["best_iteration"] == one.info["best_iteration"]
    for name, mod1, mod2 in (("classifier", one.classifier, two.classifier), ("encoder", one.encoder, two.encoder)):
        s1, s2 = mod1.state_dict(), mod2.state_dict()
        for k in s1:
            err = (s1[k].double() - s2[k].double()).abs().max().item()
            assert err < 1e-6, f"{name}.{k} differs by {err}"
    # the last weights (and Adam moments, BatchNorm statistics) agree too, and they did move
    a = load_file(str(tmp_path / "one" / "checkpoint" / "state.safetensors"))
    b = load_file(str(tmp_path / "two" / "checkpoint" / "state.safetensors"))
    for k in a:
        if k.startswith(("classifier.", "encoder.", "opt.", "enc_opt.")):
            assert (a[k].double() - b[k].double()).abs().max().item() < 1e-6, k
    fresh = meta_train(samples, None, cfg.replace(iterations=0), seed=4)
    moved = (fresh.classifier.lstm.weight_hh - one.classifier.lstm.weight_hh).abs().max().item()
    assert moved > 1e-4


@pytest.mark.parametrize("k,world", [(5, 2), (32, 3), (2, 4)])
def test_rank_slices_partition_the_batch(k, world):
    parts = [DistContext(r, world).slice(k) for r in range(world)]
    assert parts[0][0] == 0 and parts[-1][1] == k
    assert all(parts[i][1] == parts[i + 1][0] for i in range(world - 1))
    sizes = [b - a for a, b in parts]
    assert max(sizes) - min(sizes) <= 1
