"""Labels added to or retired from the taxonomy since a serving model was trained (issue #14 §2).

A model only ever predicts the targets it was trained on, so a label added since waits for the next
training; a label retired since (no longer an active tag in the day's clean/tags) is masked: this
run treats it as not shipped, so it appears nowhere in the day's labels or scores, nor in the label
drift profile. The gate is never masked (the scheme itself is configuration, not taxonomy).
"""

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.corpus.schemes import scheme_label_set


@dataclass(frozen=True)
class TaxonomyDifference:
    retired: list[str] = field(default_factory=list)  # in the model, gone from the taxonomy: masked
    added: list[str] = field(default_factory=list)  # in the taxonomy, unknown to the model: not predicted

    def to_dict(self) -> dict:
        return {"retired_masked": self.retired, "added_not_predicted": self.added}


def current_targets(scheme: Scheme, tags: pl.DataFrame) -> list[str]:
    """The scheme's gate and labels in a day's taxonomy (clean/tags: active content tags only)."""
    active = set(tags["name_path"].to_list())
    return ["+".join(scheme.gate), *(t for t in scheme_label_set(scheme, tags) if t in active)]


def taxonomy_difference(model_targets: list[str], current: list[str]) -> TaxonomyDifference:
    gate, now = model_targets[0], set(current)
    return TaxonomyDifference(
        retired=[t for t in model_targets[1:] if t not in now],
        added=[t for t in current[1:] if t not in set(model_targets) and t != gate],
    )


def mask_retired(model, retired: list[str]):
    """A shallow copy of `model` (SchemeModel or EnsembleModel) whose `retired` targets do not ship;
    the model itself (the registry's, maybe cached) is left alone."""
    if not retired:
        return model
    if model.thresholds is None:
        raise ValueError(f"{model.kind}: no threshold table to mask retired labels {retired} with (retrain it)")
    masked = copy.copy(model)
    keep = np.array([t not in set(retired) for t in model.targets])
    masked.thresholds = replace(model.thresholds, shipped=model.thresholds.shipped & keep)
    return masked
