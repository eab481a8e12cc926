"""Regenerate notebooks/quickstart.ipynb (kept as a script so the notebook's source is reviewable)."""

from pathlib import Path

import nbformat as nbf

cells = [
    ("md", """# cropmeta quickstart: ingest → tasks → train → compare → export → look at the map

Everything here runs offline on the embedded simulated world, with **tiny settings** so the notebook
executes in a minute or two on a laptop (the test suite runs it). For real numbers drop the
`TINY` overrides (the `quick` preset is the CPU default; `paper` is the full TIML schedule)."""),
    ("code", """import json, os, tempfile
from pathlib import Path

import numpy as np

work = Path(os.environ.get("CROPMETA_NOTEBOOK_DIR") or tempfile.mkdtemp(prefix="cropmeta-nb-"))
os.environ.setdefault("CROPMETA_HOME", str(work / "home"))
TINY = {"hidden": 16, "iterations": 3, "tasks_per_step": 4, "ft_steps": 10, "pt_steps": 20,
        "val_every": 1, "checkpoint_every": 2, "threads": 1}
print("working in", work)"""),
    ("md", """## 1. Samples: the simulated world, ingested into the workspace on first use

Everything below goes through the Python API, `import cropmeta` (see `help(cropmeta)`): functions
return typed results (`TrainResult`, `ExportResult`, `CompareResult`) with documented fields."""),
    ("code", """import cropmeta

samples = cropmeta.load_samples()                 # ingests the simulated world once, then reads the workspace
print(samples.meta["dataset"].nunique(), "datasets,", len(samples), "samples, x shape", samples.x.shape)
samples.meta.groupby(["region", "split"]).size().unstack(fill_value=0).head(8)"""),
    ("md", "## 2. Tasks and their task-information vectors (region centre on the unit sphere + crop-group one-hot)"),
    ("code", """target = cropmeta.resolve_target(samples, "kenya")   # Kenya → maize vs rest (the benchmark target)
tasks = cropmeta.build_tasks(samples, exclude=[target])
print("target:", target.name, np.round(target.info, 3))
print(len(tasks), "meta-training tasks, e.g.", [t.task.name for t in tasks[:5]])
assert all(t.task.id != target.id for t in tasks)
# crop names are normalised: "sweet potato", "Sweet_Potato" and "sweetpotato" name the same task
print(cropmeta.resolve_target(samples, "kenya", "sweet potato").id)"""),
    ("md", "## 3. Meta-train (TIML) and fine-tune on Kenya maize, evaluate on the held-out test set"),
    ("code", """run = cropmeta.train_model("kenya", out=work / "run", overrides=TINY, samples=samples)
print(run.run_dir)
dict(run.table)"""),
    ("code", """model = cropmeta.load_model(run.run_dir)            # the saved model reproduces the reported AUC
test = cropmeta.target_data(samples, target)
prob = cropmeta.predict(model, test.x_test)
print(model.metadata["task"]["id"], "test AUC from the saved model: %.3f (reported %.3f)"
      % (cropmeta.binary_metrics(test.y_test, prob)["auc_roc"], run.auc_roc))"""),
    ("md", "## 4. Compare against baselines (tiny: one seed, one shot count, two methods)"),
    ("code", """report = cropmeta.compare(region="kenya", seeds=1, shots="20", methods=["random-forest", "timl"],
                          out=work / "compare", samples=samples, config=TINY, progress=False)
print(report.methods, report.shots, len(report.cells), "cells")
print(sorted(p.name for p in report.files.values() if p.suffix in {".json", ".md", ".html"}))"""),
    ("md", "## 5. Export the map of the simulated Kenya scene (COG + quick-look) and assess it against the truth raster"),
    ("code", """exp = cropmeta.export_map(run.run_dir, work / "kenya_map.tif", progress=False)
print(exp.map, exp.cog_problems); print({k: v for k, v in (exp.accuracy or {}).items() if isinstance(v, (int, float))})"""),
    ("code", """import rasterio

with rasterio.open(exp.map) as src:
    prob = src.read(1)
    print(src.profile["driver"], src.crs, src.descriptions, src.overviews(1))
valid = prob[prob != 255]
assert valid.size and valid.max() <= 100
print("mean crop probability %.1f%%" % valid.mean())"""),
    ("code", """from IPython.display import Image
Image(filename=str(exp.quicklook)) if exp.quicklook else None"""),
]

nb = nbf.v4.new_notebook()
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
out = Path(__file__).with_name("quickstart.ipynb")
nbf.write(nb, out)
print(out)
