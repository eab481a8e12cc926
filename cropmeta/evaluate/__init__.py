"""Baselines, comparison protocol, calibration and reports (``cropmeta compare``).

- :func:`cropmeta.evaluate.compare.compare` — one target's comparison, behind ``cropmeta compare``
  (its entry point :func:`cropmeta.app.compare.compare` loads the data; ``--benchmark`` runs
  :func:`cropmeta.evaluate.benchmark.run_benchmark`);
- :func:`cropmeta.evaluate.calibration.calibrate_run` — fit and save a run directory's temperature;
- :func:`cropmeta.evaluate.report.print_summary` — print a finished comparison or benchmark (CLI).

(The submodule ``compare`` shares its name with its main function, so import the function from
the submodule explicitly.)
"""
