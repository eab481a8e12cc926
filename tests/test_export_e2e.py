"""End to end on the simulated world: a real (tiny) trained run directory → ``export`` with no
inputs maps the run's target scene (Kenya maize) → a valid COG, the quick-look and the accuracy
against the scene's truth raster."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from cropmeta.mapping.export import export
from cropmeta.mapping.validate import check_cog

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kenya_run(tmp_path_factory):
    import torch

    from cropmeta.io.store import SampleSet, make_meta
    from cropmeta.sim import generate_world
    from cropmeta.sim.calibrate import world_samples
    from cropmeta.tasks import resolve_target, target_data
    from cropmeta.train import checkpoint as ck
    from cropmeta.train.config import resolve_config
    from cropmeta.train.finetune import finetune
    from cropmeta.train.trained import TrainedModel, build_model

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("e2e")
    world = generate_world(d / "world", seed=0, scene_size=32, regions=["Kenya"])
    x, meta = world_samples(world, "Kenya")
    samples = SampleSet(x, make_meta(meta))
    task = resolve_target(samples, "kenya", "maize")
    td = target_data(samples, task)
    cfg = resolve_config("quick", overrides={"hidden": 16, "encoder_dims": [8, 8, 8], "encoder_channels_per_group": 4,
                                             "ft_steps": 30})
    clf, enc = build_model(cfg, samples.t, "timl", seed=0)
    model = finetune(TrainedModel("timl", clf, enc, None, cfg), td.x_train, td.y_train, task.info, cfg, seed=0)
    run = d / "run"
    ck.save_model(run, model, {"task": task.to_dict(), "seed": 0, "date_range": ["2019-02-06", "2019-02-06"],
                               "config": cfg.to_dict()})
    (run / "config.json").write_text(json.dumps({**cfg.to_dict(), "target": task.to_dict(), "seed": 0,
                                                 "source": str(world)}))
    return run, world


def test_export_simulated_kenya_scene(kenya_run, tmp_path):
    run, world = kenya_run
    out = tmp_path / "kenya.tif"
    res = export(run, out, progress=False)
    assert check_cog(out) == [] and res["cog_problems"] == []
    scene = json.loads((world / "world.json").read_text())["scenes"]["kenya"]
    with rasterio.open(world / scene["tif"]) as src, rasterio.open(out) as m:
        assert (m.width, m.height, m.transform, m.crs) == (src.width, src.height, src.transform, src.crs)
        tags = m.tags()
        prob = m.read(1)
    assert prob.max() <= 100 and len(np.unique(prob)) > 5
    meta = json.loads((run / "model.json").read_text())
    assert tags["MODEL_SHA256"] == meta["weights_sha256"]
    assert json.loads(tags["TASK"])["crop"] == "maize" and json.loads(tags["SEED"]) == 0
    assert out.with_suffix(".png").exists()
    acc = json.loads(out.with_suffix(".accuracy.json").read_text())
    assert acc["f1"] == res["accuracy"]["f1"] and 0.0 <= acc["auc_roc"] <= 1.0
    cm = acc["confusion_matrix"]
    assert cm["tn"] + cm["fp"] + cm["fn"] + cm["tp"] == 32 * 32
    # 32 × 32 pixels of ~10 m near the equator: ~10.3 ha mapped, in hectares (not degrees)
    assert 9.5 < acc["mapped_area_ha"] < 11
    assert acc["reference_crop_area_ha"] == pytest.approx(scene["positive_fraction"] * acc["mapped_area_ha"], rel=0.01)

    # the map is the run's own predictor applied to the scene's pixels (read independently)
    from cropmeta.io.eetiff import pixels_array, read_ee_tiff
    from cropmeta.train.checkpoint import load_predictor

    px = pixels_array(read_ee_tiff(world / scene["tif"], fill=True))
    expect = np.rint(load_predictor(run).predict_proba(px) * 100).reshape(prob.shape)
    diff = np.abs(prob.astype(int) - expect.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_view_of_the_demo_map_shows_it_in_a_browser(kenya_run, tmp_path):
    """Issue 28 (7): `cropmeta view` of the demo's map (a trained Kenya maize run's export of its
    simulated scene), screenshotted in headless Chromium, shows the map."""
    import shutil
    import subprocess

    from cropmeta.mapping.view import write_view

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser (chromium) installed: `apt-get install chromium` runs this test")
    import matplotlib.image as mpimg

    run, _ = kenya_run
    out = tmp_path / "kenya_map.tif"
    export(run, out, progress=False)
    page = write_view(out)
    assert "Kenya maize" in page.read_text()
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=900,700", "--virtual-time-budget=4000", f"--screenshot={shot}",
                    page.resolve().as_uri()], capture_output=True, timeout=120, check=False)
    img = mpimg.imread(shot)[..., :3]
    greenish = (img[..., 1] > img[..., 2] + 0.1) & (img[..., 1] > 0.3)
    assert greenish.sum() > 20_000  # the map fills much of the 900 x 700 page
