"""End-to-end flows that string the library together (behind `cropmeta demo` and the notebook)."""

from __future__ import annotations

from pathlib import Path

from cropmeta.regions import get_region


def demo(region: str = "kenya", out: str | Path = "runs/demo", seed: int = 0, preset: str = "quick",
         progress: bool = True, overrides: dict | None = None) -> dict:
    """Ingest the simulated world, meta-train + fine-tune on ``region`` (its benchmark target), export
    the region's simulated scene as a COG with quick-look, and assess the map against the scene's
    truth raster. Returns the metrics of each step and the paths written. Rerunnable: a second call
    with the same ``out`` resumes its run and replaces its map."""
    from cropmeta.ingest import ingest
    from cropmeta.mapping.export import export
    from cropmeta.app.train import train

    out = Path(out)
    slug = get_region(region).slug
    ing = ingest(region=None, source="sim", seed=seed, progress=progress)
    run_dir = out / "run"
    # rerunnable: a second demo continues (or re-finishes) its own run and replaces its own map
    resume = (run_dir / "config.json").exists()
    res = train(region=region, preset=preset, seed=seed, out=run_dir, progress=progress, overrides=overrides,
                resume=resume)
    exp = export(res["run_dir"], out / f"{slug}_map.tif", progress=progress, overwrite=True)
    return {
        "datasets": len(ing.datasets),
        "run_dir": res["run_dir"],
        "test_metrics": dict(res["table"]),
        "map": exp.get("map"),
        "quicklook": exp.get("quicklook"),
        "map_accuracy": {k: v for k, v in (exp.get("accuracy") or {}).items() if isinstance(v, (int, float))},
    }
