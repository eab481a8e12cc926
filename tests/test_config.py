"""Nested configuration: one section per component, the same from files, overrides and ``--set``;
every documented option accepted, unknown keys rejected with a suggestion, ``null``/``false`` either
documented or rejected, one list of options a resume may change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cropmeta.errors import InputError
from cropmeta.train.config import (
    SECTIONS, InContextOptions, TrainConfig, config_from_dict, load_config_file, resolve_config,
)
from cropmeta.train.config_base import RESUME_MAY_CHANGE, config_changes, parse_assignments

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_nested_dotted_flat_and_set_spellings_resolve_to_the_same_config(tmp_path):
    nested = tmp_path / "n.toml"
    nested.write_text('[model]\nhidden = 16\n[finetune]\nsteps = 7\nlr = 0.02\n[pretrain]\npatience = 3\n'
                      '[meta]\nremove_auc = false\n[in_context]\nd_model = 32\nheads = 2\n')
    flat = tmp_path / "f.yaml"
    flat.write_text("hidden: 16\nft_steps: 7\nft_lr: 0.02\npt_patience: 3\nremove_auc: null\n"
                    "ic_d_model: 32\nic_heads: 2\n")
    dotted = {"model.hidden": 16, "finetune.steps": 7, "finetune.lr": 0.02, "pretrain.patience": 3,
              "meta.remove_auc": False, "in_context.d_model": 32, "in_context.heads": 2}
    cli = parse_assignments(["model.hidden=16", "finetune.steps=7", "finetune.lr=0.02", "pretrain.patience=3",
                             "meta.remove_auc=false", "in_context.d_model=32", "in_context.heads=2"])
    assert cli == dotted
    a = resolve_config("quick", nested)
    b = resolve_config("quick", flat)
    c = resolve_config("quick", overrides=dotted)
    d = resolve_config("quick", overrides=cli)
    assert a.to_dict() == b.to_dict() == c.to_dict() == d.to_dict()
    assert (a.hidden, a.ft_steps, a.ft_lr, a.pt_patience, a.remove_auc) == (16, 7, 0.02, 3, None)
    assert (a.in_context.d_model, a.in_context.heads, a.in_context.layers) == (32, 2, 2)
    # the nested form round-trips through config_from_dict
    assert config_from_dict(a.to_nested()).to_dict() == a.to_dict()
    assert config_from_dict(json.loads(json.dumps(a.to_dict()))).to_dict() == a.to_dict()


def test_flags_win_over_the_file_and_file_over_the_preset(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[finetune]\nsteps = 7\n[meta]\nouter_lr = 0.5\n")
    c = resolve_config("quick", f, {"finetune": {"steps": 9}})
    assert c.ft_steps == 9 and c.outer_lr == 0.5 and c.iterations == 200  # 200: the quick preset's


def test_default_config_keeps_its_flat_saved_form():
    """Run directories, checkpoints and compare's cache keys hash ``to_dict()``: an untouched
    in-context section leaves it as it was before sections existed."""
    d = resolve_config("paper").to_dict()
    assert "in_context" not in d and "hidden" in d and "ft_steps" in d and not any(isinstance(v, dict) for v in d.values())
    assert resolve_config("paper", overrides={"ic_d_model": 16}).to_dict()["in_context"]["d_model"] == 16
    # the quick preset gives the in-context learner its own, longer schedule (issue 26)
    assert resolve_config("quick").to_dict()["in_context"]["iterations"] == 2000


@pytest.mark.parametrize("text, match", [
    ("[meta]\ninner_lrr = 0.1\n", r"inner_lrr.*\[meta\].*did you mean inner_lr"),
    ("[meta]\nft_steps = 3\n", r"ft_steps.*\[meta\].*finetune.steps"),  # wrong section: names the right one
    ("[finetune]\nstepz = 3\n", r"stepz.*did you mean steps"),
    ("[in_context]\nd_modle = 3\n", r"in-context option 'd_modle'.*did you mean d_model"),
    ("ic_d_modle = 3\n", r"in-context option 'ic_d_modle'.*did you mean ic_d_model"),
    ("hiddn = 3\n", r"unknown training option 'hiddn'.*did you mean hidden"),
    ("[modle]\nhidden = 3\n", r"unknown training option 'modle'"),
    ("remove_auc = true\n", r"remove_auc.*false to switch task removal off"),
])
def test_unknown_or_meaningless_keys_are_rejected_with_a_suggestion(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=match):
        resolve_config("quick", f)


def test_a_null_is_either_documented_or_rejected(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("iterations: null\nthreads: null\nmin_per_class: null\nremove_auc: null\n"
                  "in_context: {lr: null, max_support: null}\n")
    c = resolve_config("quick", ok)
    assert (c.iterations, c.threads, c.min_per_class, c.remove_auc) == (None, None, None, None)
    for text, match in [("hidden: null\n", "'hidden' cannot be empty"),
                        ("in_context: {d_model: null}\n", "in-context option 'd_model' cannot be empty")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(InputError, match=match):
            resolve_config("quick", bad)
    # in overrides (flags, the API) None means "not given"
    assert resolve_config("quick", overrides={"remove_auc": None, "hidden": None}).remove_auc == 0.95


def test_replace_takes_every_spelling_and_keeps_the_in_context_section():
    c = resolve_config("quick", overrides={"in_context": {"d_model": 16}})
    r = c.replace(iterations=3, **{"finetune.steps": 5})
    assert (r.iterations, r.ft_steps, r.in_context.d_model) == (3, 5, 16) and c.iterations == 200


def test_in_context_options_come_from_the_config_section():
    cfg = resolve_config("quick", overrides={"in_context": {"d_model": 16, "heads": 2}})
    opts = InContextOptions.resolve(cfg, {"layers": 1})
    assert (opts.d_model, opts.heads, opts.layers) == (16, 2, 1)
    assert cfg.in_context.layers == 2  # resolve copies, never mutates the config


def test_resume_may_change_only_the_execution_options():
    old = resolve_config("quick").to_dict()
    new = resolve_config("quick", overrides={"device": "cpu", "threads": 2, "val_every": 3, "ft_steps": 9}).to_dict()
    # a number of steps asked for is run as asked: the quick preset's auto budget becomes fixed
    assert config_changes(old, new) == ["ft_budget", "ft_steps"]
    assert RESUME_MAY_CHANGE >= {"device", "threads", "vectorize", "val_every", "checkpoint_every"}
    assert config_changes(old, {**old, "nprocs": 4}) == []


def test_remove_auc_false_switches_task_removal_off(tmp_path):
    from cropmeta.train import train
    from cropmeta.testing import toy_samples

    regions = [("Kenya", 0.2, 37.9, ["maize", "bean"]), ("Togo", 8.5, 0.9, ["maize"]),
               ("Uganda", 1.3, 32.4, ["maize", "bean"]), ("Tanzania", -6.3, 34.8, ["maize", "cassava"])]
    s = toy_samples(n_per_label=24, n_noncrop=30, t=6, seed=3, regions=regions)
    tiny = {"learner": "timl", "hidden": 16, "encoder_dims": [8, 8, 16], "encoder_channels_per_group": 4, "iterations": 8,
            "tasks_per_step": 4, "val_every": 4, "checkpoint_every": 4, "ft_steps": 5, "threads": 1,
            "outer_lr": 3e-3, "encoder_lr": 3e-3, "remove_lookback": 2}
    on = train("kenya", samples=s, out=tmp_path / "on", overrides={**tiny, "remove_auc": 0.6}, seed=1)
    f = tmp_path / "off.toml"
    f.write_text("[meta]\nremove_auc = false\n")
    off = train("kenya", samples=s, out=tmp_path / "off", config=f, overrides=tiny, seed=1)
    assert on["meta"]["removed_tasks"]  # the threshold does remove tasks on this data …
    assert off["meta"]["removed_tasks"] == []  # … and false switches removal off
    assert json.loads((tmp_path / "off" / "config.json").read_text())["remove_auc"] is None


def test_cli_set_reaches_the_training_config(tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    r = CliRunner().invoke(app, ["train", "--region", "kenya", "--set", "finetune.stepz=3"])
    assert r.exit_code != 0 and isinstance(r.exception, InputError) and "did you mean steps" in str(r.exception)
    r = CliRunner().invoke(app, ["train", "--region", "kenya", "--set", "finetune.steps"])
    assert isinstance(r.exception, InputError) and "expected KEY=VALUE" in str(r.exception)


def test_docs_list_every_option():
    text = DOCS.read_text()
    for sec, names in SECTIONS.items():
        assert f"[{sec}]" in text, sec
        for short, flat in names.items():
            assert re.search(rf"`{re.escape(short)}`", text), f"{sec}.{short}"
            assert f"`{flat}`" in text, flat
    for name in InContextOptions.__dataclass_fields__:
        assert f"`{name}`" in text and f"`ic_{name}`" in text, name
    assert "remove_auc = false" in text
    assert set(TrainConfig.__dataclass_fields__) - {"preset", "in_context"} == \
        {flat for names in SECTIONS.values() for flat in names.values()}


def test_load_config_file_returns_flat_names(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"finetune": {"steps": 4}, "in-context": {"layers": 1}, "run": {"threads": 2}}))
    assert load_config_file(f) == {"ft_steps": 4, "ic_layers": 1, "threads": 2}
