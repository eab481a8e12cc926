"""Tasks for (task-informed) meta-learning, built from a :class:`~cropmeta.io.store.SampleSet`.

A task is ``(region, target)``: *crop vs non-crop* in a region (``crop=None``), or *crop label vs
rest* (e.g. maize vs everything else; the negatives are balanced between other crops and non-crop,
like CropHarvest's ``balance_negative_crops``). Tasks exist for every region × label with at least
``min_per_class`` training examples of each class.

Leakage rules (enforced here, tested in tests/test_tasks.py):

- only ``split == 'train'`` samples ever enter a task (test points are removed everywhere);
- the target task's region-and-label is excluded from the meta-training tasks;
- the meta-validation tasks are chosen by a hash of the task id (deterministic, no ``random()``).

Task batches use explicit ``torch.Generator`` objects only: two samplers driven by generators with
the same seed draw the same batches. The target's shot subsets come from :func:`shot_subset` (the one
shot sampler, numpy, seeded; shared with ``cropmeta compare``). The task sampler returns *indices*
into the sample array; the trainer gathers pre-normalised tensors with them (no per-sample Python
work in the loop).

The package: :mod:`cropmeta.tasks.build` (:class:`Task`, target resolution, labels, the
meta-training task pools and their split) and :mod:`cropmeta.tasks.sampling` (the seeded task
batches of :class:`TaskSampler`, the one shot sampler :func:`shot_subset` and the target's
:class:`TargetData`); every name is importable from ``cropmeta.tasks``.
"""

from cropmeta.tasks.build import (
    BENCHMARK_TARGETS,
    CROP_VS_NON_CROP,
    Task,
    TaskPools,
    build_tasks,
    make_task,
    region_centre,
    region_mask,
    resolve_target,
    rule_labels,
    split_tasks,
    task_labels,
    test_file_rows,
    validation_score,
)
from cropmeta.tasks.sampling import TargetData, TaskSampler, check_shots, shot_subset, target_data

__all__ = [
    "BENCHMARK_TARGETS",
    "Task",
    "TaskPools",
    "TargetData",
    "TaskSampler",
    "region_centre",
    "make_task",
    "resolve_target",
    "task_labels",
    "rule_labels",
    "build_tasks",
    "validation_score",
    "split_tasks",
    "target_data",
    "shot_subset",
    "check_shots",
]
