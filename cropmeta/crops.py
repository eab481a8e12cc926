"""Crop names, crop groups and the task-information layout: THE crop-name normaliser
(:func:`normalise_crop`), CropHarvest's crop groups (:data:`CROP_GROUPS`, :func:`crop_group_of`)
and TIML's task-information vector (:func:`task_info`, :data:`TASK_INFO_DIM`).

Part of the one sample-schema definition (with :mod:`cropmeta.schema`); import these names from here.
"""

from __future__ import annotations

import re

import numpy as np

from cropmeta.errors import InputError

#: CropHarvest's 10 classification groups (FAO indicative crop classification), in one-hot order
CROP_GROUPS = [
    "non_crop",
    "cereals",
    "vegetables_melons",
    "fruits_nuts",
    "oilseeds",
    "root_tuber",
    "beverage_spice",
    "leguminous",
    "sugar",
    "other",
]
#: crop type (lower case) → crop group, for the crops cropmeta's simulator and label files use
CROP_TO_GROUP = {
    "maize": "cereals", "corn": "cereals", "wheat": "cereals", "rice": "cereals", "sorghum": "cereals", "millet": "cereals",
    "barley": "cereals", "teff": "cereals",
    "tomato": "vegetables_melons", "cabbage": "vegetables_melons", "onion": "vegetables_melons",
    "banana": "fruits_nuts", "mango": "fruits_nuts", "citrus": "fruits_nuts", "cashew": "fruits_nuts",
    "groundnut": "oilseeds", "soybean": "oilseeds", "sunflower": "oilseeds", "rapeseed": "oilseeds",
    "oil_palm": "oilseeds", "sesame": "oilseeds",
    "cassava": "root_tuber", "sweetpotato": "root_tuber", "potato": "root_tuber", "yam": "root_tuber",
    "coffee": "beverage_spice", "cocoa": "beverage_spice", "tea": "beverage_spice",
    "bean": "leguminous", "chickpea": "leguminous", "cowpea": "leguminous", "lentil": "leguminous",
    "sugarcane": "sugar", "sugar_beet": "sugar",
    "cotton": "other", "tobacco": "other", "fallowland": "other", "hay": "other", "brachiaria": "other",
    # non-crop covers that label files name as classes
    "pasture": "non_crop", "cerrado": "non_crop", "forest": "non_crop", "grassland": "non_crop",
}
#: task information vector: region centre on the unit sphere (x, y, z) + crop-group one-hot
TASK_INFO_DIM = 3 + len(CROP_GROUPS)  # 13


#: other spellings of a crop (after case/separator folding) → the name cropmeta uses
CROP_ALIASES = {
    "sweet_potato": "sweetpotato", "sweet_potatoes": "sweetpotato", "oilpalm": "oil_palm",
    "sugarbeet": "sugar_beet", "ground_nut": "groundnut", "soy_bean": "soybean", "fallow_land": "fallowland",
}
_CROP_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_crop(name) -> str | None:
    """THE crop-name normaliser: the one spelling of a crop type that label reading, tasks, the CLI
    and :data:`CROP_TO_GROUP` lookups share. Lower case, runs of spaces/underscores/hyphens → one
    ``_``, then :data:`CROP_ALIASES` (``"Sweet Potato"``, ``"sweet_potato"``, ``"sweet-potato"`` →
    ``"sweetpotato"``, the simulator's name). ``None`` or a blank name → ``None``.

    >>> normalise_crop("Sweet  Potato"), normalise_crop("oil-palm"), normalise_crop("Maize")
    ('sweetpotato', 'oil_palm', 'maize')
    """
    if name is None:
        return None
    key = _CROP_SEPARATORS.sub("_", str(name).strip().lower()).strip("_")
    if not key:
        return None
    return CROP_ALIASES.get(key, key)


def crop_group_of(crop: str | None) -> str | None:
    """Crop group of a crop type name (any spelling :func:`normalise_crop` folds), ``None`` when unknown."""
    key = normalise_crop(crop)
    if key is None:
        return None
    if key in CROP_GROUPS:
        return key
    return CROP_TO_GROUP.get(key)


def latlon_to_xyz(lat: float, lon: float) -> np.ndarray:
    """(cos lat · cos lon, cos lat · sin lon, sin lat), degrees in."""
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], dtype=np.float32)


def crop_group_onehot(group: str | None) -> np.ndarray:
    """One-hot over :data:`CROP_GROUPS`; ``None`` (crop vs non-crop task) → 1/9 on each crop group."""
    v = np.zeros(len(CROP_GROUPS), dtype=np.float32)
    if group is None:
        v[1:] = 1.0 / (len(CROP_GROUPS) - 1)
    else:
        if group not in CROP_GROUPS:
            raise InputError(f"unknown crop group {group!r}; known: {', '.join(CROP_GROUPS)}")
        v[CROP_GROUPS.index(group)] = 1.0
    return v


def task_info(lat: float, lon: float, crop_group: str | None) -> np.ndarray:
    """The 13-number task information vector of TIML (Tseng, Kerner & Rolnick 2022)."""
    return np.concatenate([latlon_to_xyz(lat, lon), crop_group_onehot(crop_group)]).astype(np.float32)


__all__ = ["CROP_ALIASES", "CROP_GROUPS", "CROP_TO_GROUP", "TASK_INFO_DIM", "crop_group_of", "crop_group_onehot",
           "latlon_to_xyz", "normalise_crop", "task_info"]
