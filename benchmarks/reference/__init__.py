"""Reference implementations that cropmeta is measured against (benchmarks only, not installed).

Written from the *structure* of the published code, not copied from it:

- :mod:`.timl_reference` — a TIML-paper-style meta-training loop (Tseng, Kerner & Rolnick 2022,
  nasaharvest/timl): a hand-unrolled LSTM cell (one ``Linear(18 + 128 → 4·128)`` per time step)
  with FiLM, a learn2learn ``MAML.clone()`` + ``adapt()`` per task, the query loss back-propagated
  per task, gradients averaged over the meta-batch, one Adam step;
- :mod:`.inference_reference` — a CropHarvest-``Inference``-style map path (nasaharvest/cropharvest
  ``inference.py``): the same unrolled-cell model with FiLM, batches of 64, the whole tile into a
  pandas DataFrame indexed by (lat, lon) and ``to_xarray()``.

Both run on cropmeta's weights (converted, :func:`.timl_reference.from_cropmeta`) so that a
benchmark compares implementations of the same function, on the same tasks, with the same seed.
"""
