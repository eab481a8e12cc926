"""Models: the TIML LSTM classifier and its task encoder."""

from cropmeta.models.timl import (
    TaskEncoder,
    TIMLClassifier,
    bernoulli_mask,
    expand_for_tasks,
    slice_film,
)

__all__ = ["TIMLClassifier", "TaskEncoder", "bernoulli_mask", "expand_for_tasks", "slice_film"]
