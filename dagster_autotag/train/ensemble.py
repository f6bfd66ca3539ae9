"""Ensembles of trained scheme models (e.g. TextCNN + BERT), evaluated and registered like any model.

- mean: the average of the members' joint probabilities, with thresholds tuned on dev for it;
- agreement: a target fires only when every member fires by its own thresholds (the seed's lesson:
  both models agreeing raises precision); its probability column is the members' minimum.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dagster_autotag.train.evaluate import evaluate
from dagster_autotag.train.scheme_model import (
    META_FILE,
    SchemeModel,
    SplitData,
    TrainingResult,
    gated_decide,
    read_thresholds,
    write_thresholds,
)
from dagster_autotag.train.thresholds import Thresholds, tune_thresholds

ENSEMBLE_FILE = "ensemble.json"
METHODS = ("mean", "agreement")


@dataclass
class EnsembleModel:
    members: list[SchemeModel]
    method: str = "mean"
    thresholds: Thresholds | None = None  # mean only; agreement uses the members' own
    top_k: int | None = None  # mean: the sub-label cap; agreement: None = each member's own

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"ensemble method must be one of {METHODS}, got {self.method!r}")
        if not self.members or any(m.targets != self.members[0].targets for m in self.members):
            raise ValueError("ensemble members must exist and share the same targets (same scheme and labels)")

    @property
    def kind(self) -> str:
        return f"ensemble-{self.method}({'+'.join(m.kind for m in self.members)})"

    @property
    def targets(self) -> list[str]:
        return self.members[0].targets

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        stacked = np.stack([m.predict_proba(list(texts)) for m in self.members])
        return stacked.mean(axis=0) if self.method == "mean" else stacked.min(axis=0)

    def shipped_targets(self) -> list[str]:
        if self.method == "mean":
            return self.thresholds.label_names_shipped(self.targets)
        shipped = set.intersection(*(set(m.shipped_targets()) for m in self.members))
        return [t for t in self.targets if t in shipped]

    def decide(self, probs: np.ndarray, top_k: int | None = None, texts: list[str] | None = None) -> np.ndarray:
        top_k = self.top_k if top_k is None else top_k
        if self.method == "mean":
            return gated_decide(probs, self.thresholds, top_k)
        if texts is None:
            raise ValueError("agreement decides from each member's own probabilities: pass texts")
        fired = np.ones(probs.shape, dtype=bool)
        for member in self.members:
            fired &= member.decide(member.predict_proba(list(texts)), top_k=top_k)
        return fired

    def save(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        for i, member in enumerate(self.members):
            member.save(path / f"member{i}")
        meta = {"method": self.method, "members": len(self.members), "top_k": self.top_k}
        (path / ENSEMBLE_FILE).write_text(json.dumps(meta), encoding="utf-8")
        write_thresholds(path, self.thresholds, self.targets)
        return path

    @classmethod
    def load(cls, path: Path) -> "EnsembleModel":
        meta = json.loads((path / ENSEMBLE_FILE).read_text(encoding="utf-8"))
        members = [SchemeModel.load(path / f"member{i}") for i in range(meta["members"])]
        return cls(members, meta["method"], read_thresholds(path, members[0].targets), meta.get("top_k"))


def load_model_dir(path: Path) -> "SchemeModel | EnsembleModel":
    """A saved SchemeModel or EnsembleModel, whichever the directory holds."""
    if (path / ENSEMBLE_FILE).exists():
        return EnsembleModel.load(path)
    if (path / META_FILE).exists():
        return SchemeModel.load(path)
    raise FileNotFoundError(f"{path} holds neither {META_FILE} nor {ENSEMBLE_FILE}")


def build_ensemble(
    members: list[SchemeModel], method: str, dataset_dir: Path, threshold_mode: str = "precision_floor",
    precision_floor: float = 0.8, top_k: int | None = None,
) -> TrainingResult:  # fmt: skip
    """Tune (mean) on dev and evaluate on test exactly as train_scheme_model does for one model."""
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    labels = manifest["labels"]
    dev, test = (SplitData.read(dataset_dir / f"{s}.parquet", labels) for s in ("dev", "test"))
    model = EnsembleModel(members, method, top_k=top_k)
    dev_probs = model.predict_proba(dev.texts)
    if method == "mean":
        model.thresholds = tune_thresholds(dev.y, dev_probs, mode=threshold_mode, precision_floor=precision_floor)
    test_probs = model.predict_proba(test.texts)
    return TrainingResult(
        model=model,
        dev=evaluate(dev.y, model.decide(dev_probs, texts=dev.texts), dev_probs, model.targets, dev.texts, dev.itemids),
        test=evaluate(
            test.y, model.decide(test_probs, texts=test.texts), test_probs, model.targets, test.texts, test.itemids
        ),
        rare_labels=list(manifest.get("rare_labels", [])),
    )
