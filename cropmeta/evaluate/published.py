"""The three published targets of the benchmark and their published numbers (the definition that
:mod:`cropmeta.evaluate.benchmark` runs and :mod:`cropmeta.evaluate.report.benchmark` renders)."""

#: (key, region, crop) of the published targets
TARGETS = [("kenya", "Kenya", "maize"), ("brazil", "Brazil", "coffee"), ("togo", "Togo", None)]
#: published F1 / AUC-ROC with all training labels — Presto paper (Tseng et al. 2023), tables 2 and 12
PUBLISHED = {
    "kenya": {"timl": {"f1": 0.838, "auc_roc": 0.794}, "random-forest": {"f1": 0.559, "auc_roc": 0.578}},
    "brazil": {"timl": {"f1": 0.835, "auc_roc": 0.988}, "random-forest": {"f1": 0.000, "auc_roc": 0.941}},
    "togo": {"timl": {"f1": 0.732, "auc_roc": 0.890}, "random-forest": {"f1": 0.756, "auc_roc": 0.892}},
}
PUBLISHED_SOURCE = "Presto paper (Tseng et al. 2023), tables 2 and 12"
BENCHMARKS = ("cropharvest", "sim")
