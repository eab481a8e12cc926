"""The one learner contract: every registered kind round-trips through save/load and predicts the
same; ``cropmeta train`` and the comparison are generic over the registry (a learner registered
exactly as docs/architecture.md documents trains and predicts through them); no branch on a kind
remains outside ``cropmeta/learners/``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from cropmeta.errors import ConfigError, InputError, ModelError
from cropmeta.learners import get_learner, kinds, unregister
from cropmeta.tasks import resolve_target, target_data
from cropmeta.train.checkpoint import load_model, load_predictor, save_model
from cropmeta.train.config import resolve_config
from cropmeta.testing import toy_samples

REPO = Path(__file__).resolve().parent.parent
REGIONS = [("Kenya", 0.2, 37.9, ["maize"]), ("Togo", 8.5, 0.9, ["maize"]), ("Uganda", 1.3, 32.4, ["maize"])]
TINY = {"hidden": 8, "encoder_dims": [8, 8], "encoder_channels_per_group": 4, "iterations": 2, "tasks_per_step": 2,
        "val_every": 2, "checkpoint_every": 2, "ft_steps": 3, "pt_steps": 2, "pt_val_every": 1, "threads": 1,
        "device": "cpu", "k_support": 4, "k_query": 2, "ic_d_model": 8, "ic_ff": 8, "ic_heads": 2, "ic_layers": 1}
BUILTIN = ("timl", "maml", "concat", "pretrained", "scratch", "in-context")


@pytest.fixture(scope="module")
def data():
    s = toy_samples(n_per_label=10, n_noncrop=10, t=3, seed=4, regions=REGIONS)
    task = resolve_target(s, "kenya")
    return s, task, target_data(s, task)


@pytest.mark.parametrize("kind", BUILTIN)
def test_every_kind_round_trips_through_save_and_load(kind, data, tmp_path):
    s, task, td = data
    cfg = resolve_config("quick", overrides=TINY)
    base = get_learner(kind, cfg).fit(s, task, seed=0)
    assert base.kind == kind
    model = base.adapt(td.x_train, td.y_train, task_info=task.info, cfg=cfg, seed=0)
    rec = save_model(tmp_path / kind, model)
    assert rec["kind"] == kind and rec["schema"]["name"] == s.schema.name
    back, _ = load_model(tmp_path / kind)
    assert type(back) is type(model) and back.kind == kind
    np.testing.assert_array_equal(back.predict_proba(td.x_test), model.predict_proba(td.x_test))
    np.testing.assert_array_equal(load_predictor(tmp_path / kind).predict_proba(td.x_test, calibrated=False),
                                  model.predict_proba(td.x_test))


def test_registry_lists_every_kind_and_refuses_unknown_ones(tmp_path, data):
    assert set(BUILTIN) <= set(kinds())
    with pytest.raises(ConfigError, match="did you mean timl"):
        get_learner("timll")
    from cropmeta.app.train import train

    with pytest.raises(InputError, match="unknown learner 'in-contxt'.*did you mean in-context"):
        train("kenya", samples=data[0], out=tmp_path / "x", learner="in-contxt", overrides=TINY)
    # a record of an unknown kind names it
    s, task, td = data
    m = get_learner("scratch").fit(s, task)
    save_model(tmp_path / "m", m)
    jp = tmp_path / "m" / "model.json"
    jp.write_text(jp.read_text().replace('"kind": "scratch"', '"kind": "nope"'))
    with pytest.raises(ModelError, match="unknown model kind 'nope'"):
        load_model(tmp_path / "m")


def _documented_example() -> str:
    text = (REPO / "docs" / "architecture.md").read_text()
    part = text[text.index("## Adding a learner"):]
    return re.search(r"```python\n(.*?)```", part, re.S).group(1)


def test_the_documented_learner_trains_and_predicts_through_the_generic_path(data, tmp_path):
    from cropmeta.evaluate.compare import build_target, source_samples
    from cropmeta.evaluate.methods import make_method
    from cropmeta.app.train import train

    exec(compile(_documented_example(), "docs/architecture.md", "exec"), {"__name__": "centroid_example"})
    try:
        assert "centroid" in kinds()
        s, task, td = data
        plain = {k: v for k, v in TINY.items() if not k.startswith("ic_")}  # it has no options section
        res = train("kenya", samples=s, out=tmp_path / "run", learner="centroid", overrides=plain, seed=0)
        assert 0 <= res["metrics"]["auc_roc"] <= 1
        p = load_predictor(tmp_path / "run").predict_proba(td.x_test)
        assert p.shape == (len(td.x_test),) and np.all((p >= 0) & (p <= 1))
        # the comparison's one adapter serves it too, prepared state cached and reloaded
        d = build_target(s, "kenya")
        m = make_method("centroid").prepare(source_samples(s, d), d.task, seed=0)
        q = m.fit(d.x_train, d.y_train).predict_proba(d.x_test)
        m2 = make_method("centroid")
        m2.set_target(d.task, 0)
        assert m2.load_prepared_state(*m.prepared_state())
        np.testing.assert_array_equal(m2.fit(d.x_train, d.y_train).predict_proba(d.x_test), q)
    finally:
        unregister("centroid")


def _kind_comparisons(tree: ast.AST, names: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            consts = [c.value for side in [node.left, *node.comparators] for c in ast.walk(side)
                      if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            if any(c in names for c in consts):
                yield node.lineno, ast.unparse(node)


def test_no_branch_on_a_learner_kind_outside_the_registry():
    names = set(kinds())
    found = []
    for path in sorted((REPO / "cropmeta").rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[1] == "learners":
            continue
        found += [f"{rel}:{line}: {src}" for line, src in _kind_comparisons(ast.parse(path.read_text()), names)]
    assert not found, "branches on a learner kind (use the registry, cropmeta.learners):\n" + "\n".join(found)
