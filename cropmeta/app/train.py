"""``cropmeta train``'s entry point: load the samples (the workspace's datasets, a ``source`` ingested
first) and the simulated world of ``--pretrain-source sim`` here, in the app layer, and train with
the library function :func:`cropmeta.train.run.train`, which receives them.

Also runnable under torchrun: ``torchrun --nproc_per_node=2 -m cropmeta.app.train --region kenya``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cropmeta.io.store import SampleSet
from cropmeta.train import run as _run

__all__ = ["train"]


def train(region: str, crop: str | None = None, source=None, preset: str | None = "quick", seed: int = 0,
          out: str | Path | None = None, resume: bool = False, *, config: str | Path | None = None,
          first_order: bool | None = None, device: str | None = None, nprocs: int = 1, shots: int | None = None,
          learner: str | None = None, overrides: dict | None = None, progress=False,
          samples: SampleSet | None = None, pretrain_source: str | None = None, sim_seed: int = 1,
          ic_options: dict | None = None, datasets: list[str] | None = None, labels=None,
          label_options: dict | None = None, home: str | Path | None = None) -> dict:
    """``cropmeta train``: :func:`cropmeta.train.run.train` (its options, and what it returns) on
    ``samples``, else on the workspace's ingested datasets: ``datasets``: these stored datasets only;
    ``labels``/``label_options``: the label file of a ``source`` of GeoTIFFs (ingested first, as
    ``cropmeta ingest``); ``home``: the workspace. The data are loaded after the options are checked
    (bad options fail before any ingest)."""
    from cropmeta.app import samples as app_samples

    def loader(show_progress: bool):
        return app_samples.select_samples(source, seed, progress=show_progress, datasets=datasets, labels=labels,
                                          label_options=label_options, home=home)

    return _run.train(region, crop, source, preset, seed, out, resume, config=config, first_order=first_order,
                      device=device, nprocs=nprocs, shots=shots, learner=learner, overrides=overrides,
                      progress=progress, samples=samples, pretrain_source=pretrain_source, sim_seed=sim_seed,
                      ic_options=ic_options, home=home, loader=None if samples is not None else loader,
                      load_sim=app_samples.load_sim_samples)


def _main(argv=None) -> None:
    """``python -m cropmeta.app.train`` — for torchrun; the user-facing command is ``cropmeta train``."""
    p = argparse.ArgumentParser(prog="python -m cropmeta.app.train", description=train.__doc__)
    p.add_argument("--region", required=True)
    p.add_argument("--crop")
    p.add_argument("--source")
    p.add_argument("--preset", default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--config")
    p.add_argument("--first-order", action="store_true", default=None)
    p.add_argument("--device")
    p.add_argument("--shots", type=int)
    a = p.parse_args(argv)
    res = train(a.region, a.crop, a.source, a.preset, a.seed, a.out, a.resume, config=a.config,
                first_order=a.first_order, device=a.device, shots=a.shots,
                progress=int(os.environ.get("RANK", "0")) == 0)
    if res:
        print(json.dumps({"run_dir": res["run_dir"], **{k: v for k, v in res["table"]}}, indent=2))


if __name__ == "__main__":
    _main()
