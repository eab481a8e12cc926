"""The application layer's entry points (issue 12, Layers): where samples come from, and the
dispatch between one comparison and a benchmark. The command line (``cli/``) and the Python API
(:mod:`cropmeta.api`) call these; the library functions below them receive their data.

- :mod:`cropmeta.app.samples` — the workspace's samples (ingesting a source first), the simulated
  pretraining world
- :mod:`cropmeta.app.train` — ``cropmeta train``: loads the samples, then
  :func:`cropmeta.train.run.train`
- :mod:`cropmeta.app.compare` — ``cropmeta compare``: a benchmark
  (:func:`cropmeta.evaluate.benchmark.run_benchmark`) or one target
  (:func:`cropmeta.evaluate.compare.compare`)
"""
