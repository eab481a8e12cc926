"""cropmeta: task-informed meta-learning (TIML) for crop maps from satellite time series."""

__version__ = "0.1.0"
