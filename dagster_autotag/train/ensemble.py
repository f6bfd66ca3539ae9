"""Ensembles of trained scheme models (e.g. TextCNN + BERT), evaluated and registered like any model.

- mean: the average of the members' joint probabilities, with thresholds tuned for it;
- agreement: a target fires only when every member fires by its own thresholds (the seed's lesson:
  both models agreeing raises precision); its probability column is the members' minimum. It ships
  a label when every member ships it and the agreement's own precision bound reaches the floor.

Both are tuned/judged on the rows the members were tuned on, by itemid (their out-of-fold train
rows plus dev, thresholds.py's bound gets more positives than dev alone), when the members kept
them and those rows cover at least dev; else on dev.

Members of an exclusive scheme are softmax models: mean averages their joint probabilities and
takes the argmax of the average, agreement fires when every member's argmax is the same label.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dagster_autotag.train.configs import TrainingOptions
from dagster_autotag.train.evaluate import evaluate
from dagster_autotag.train.scheme_model import (
    META_FILE,
    SchemeModel,
    SplitData,
    TrainingResult,
    argmax_scores,
    decision_scores,
    gated_decide,
    read_thresholds,
    write_thresholds,
)
from dagster_autotag.train.thresholds import Thresholds, decide, thresholds_of_decisions, tune_thresholds

ENSEMBLE_FILE = "ensemble.json"
METHODS = ("mean", "agreement")


@dataclass
class EnsembleModel:
    members: list[SchemeModel]
    method: str = "mean"
    # mean: its cuts; agreement: which labels ship (the members' cuts decide), None in models saved before
    thresholds: Thresholds | None = None
    top_k: int | None = None  # mean: the sub-label cap; agreement: None = each member's own
    min_confidence: float | None = None  # exclusive schemes, mean: the averaged argmax must reach this

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"ensemble method must be one of {METHODS}, got {self.method!r}")
        if not self.members or any(m.targets != self.members[0].targets for m in self.members):
            raise ValueError("ensemble members must exist and share the same targets (same scheme and labels)")
        if len({m.exclusive for m in self.members}) > 1:
            raise ValueError("ensemble members must all be exclusive (softmax) models or none")

    @property
    def exclusive(self) -> bool:
        return self.members[0].exclusive

    @property
    def kind(self) -> str:
        return f"ensemble-{self.method}({'+'.join(m.kind for m in self.members)})"

    @property
    def targets(self) -> list[str]:
        return self.members[0].targets

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        # every member's full scores: the ensemble's gate is not any one member's
        stacked = np.stack([m.predict_proba(list(texts), skip_gate_negative=False) for m in self.members])
        return stacked.mean(axis=0) if self.method == "mean" else stacked.min(axis=0)

    def shipped_targets(self) -> list[str]:
        if self.thresholds is not None:
            return self.thresholds.label_names_shipped(self.targets)
        shipped = set.intersection(*(set(m.shipped_targets()) for m in self.members))
        return [t for t in self.targets if t in shipped]

    def decide(self, probs: np.ndarray, top_k: int | None = None, texts: list[str] | None = None) -> np.ndarray:
        top_k = self.top_k if top_k is None else top_k
        if self.method == "mean":
            if self.exclusive:
                return gated_decide(argmax_scores(probs, self.min_confidence), self.thresholds, None)
            return gated_decide(probs, self.thresholds, top_k)
        if texts is None:
            raise ValueError("agreement decides from each member's own probabilities: pass texts")
        fired = np.ones(probs.shape, dtype=bool)
        for member in self.members:
            fired &= member.decide(member.predict_proba(list(texts)), top_k=top_k)
        if self.thresholds is not None:
            fired &= self.thresholds.shipped[None, :]
        return fired

    def save(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        for i, member in enumerate(self.members):
            member.save(path / f"member{i}")
        meta = {
            "method": self.method,
            "members": len(self.members),
            "top_k": self.top_k,
            "min_confidence": self.min_confidence,
        }
        (path / ENSEMBLE_FILE).write_text(json.dumps(meta), encoding="utf-8")
        write_thresholds(path, self.thresholds, self.targets)
        return path

    @classmethod
    def load(cls, path: Path) -> "EnsembleModel":
        meta = json.loads((path / ENSEMBLE_FILE).read_text(encoding="utf-8"))
        members = [SchemeModel.load(path / f"member{i}") for i in range(meta["members"])]
        thresholds = read_thresholds(path, members[0].targets)
        return cls(members, meta["method"], thresholds, meta.get("top_k"), meta.get("min_confidence"))


def load_model_dir(path: Path) -> "SchemeModel | EnsembleModel":
    """A saved SchemeModel or EnsembleModel, whichever the directory holds."""
    if (path / ENSEMBLE_FILE).exists():
        return EnsembleModel.load(path)
    if (path / META_FILE).exists():
        return SchemeModel.load(path)
    raise FileNotFoundError(f"{path} holds neither {META_FILE} nor {ENSEMBLE_FILE}")


def build_ensemble(
    members: list[SchemeModel], method: str, dataset_dir: Path, options: TrainingOptions | None = None
) -> TrainingResult:
    """Tune (mean) or judge (agreement) on the members' tuning rows, evaluate on test exactly as
    train_scheme_model does for one model."""
    options = options or TrainingOptions()
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    labels = members[0].labels  # the members' (champions') labels: the taxonomy may have moved since
    train, dev, test = (SplitData.read(dataset_dir / f"{s}.parquet", labels) for s in ("train", "dev", "test"))
    model = EnsembleModel(members, method, top_k=options.top_k)
    if model.exclusive:
        model.min_confidence = options.min_argmax_confidence
    y, member_probs, source = tuning_rows(members, train, dev)
    if method == "mean":
        scores = decision_scores(np.mean(member_probs, axis=0), model.exclusive, model.min_confidence)
        model.thresholds = tune_thresholds(
            y, scores, mode=options.threshold_mode, precision_floor=options.precision_floor,
            confidence=options.confidence, source=source,
        )  # fmt: skip
    else:
        # each member at its own cuts, shipped or not: the figures say how far an unshipped label is
        fired = np.logical_and.reduce(
            [
                decide(decision_scores(p, m.exclusive, m.min_confidence), m.thresholds, only_shipped=False)
                for m, p in zip(members, member_probs)
            ]
        )
        allowed = np.logical_and.reduce([m.thresholds.shipped for m in members])
        model.thresholds = thresholds_of_decisions(
            y, fired, allowed, options.precision_floor, options.confidence, source=source
        )
    dev_probs, test_probs = model.predict_proba(dev.texts), model.predict_proba(test.texts)
    return TrainingResult(
        model=model,
        dev=evaluate(dev.y, model.decide(dev_probs, texts=dev.texts), dev_probs, model.targets, dev.texts, dev.itemids),
        test=evaluate(
            test.y, model.decide(test_probs, texts=test.texts), test_probs, model.targets, test.texts, test.itemids
        ),
        rare_labels=list(manifest.get("rare_labels", [])),
    )


def tuning_rows(members: list[SchemeModel], train: SplitData, dev: SplitData) -> tuple[np.ndarray, list, str]:
    """(y, each member's probabilities, source): the items every member kept from its tuning (by
    itemid, labelled from the current train and dev), when they are at least as many as dev; else dev."""
    known = {i: row for row, i in enumerate(dev.itemids)}
    originals = train.originals()
    known |= {i: len(dev.itemids) + row for row, i in enumerate(originals.itemids)}
    tunings = [m.tuning for m in members]
    if all(t is not None for t in tunings):
        common = set(known).intersection(*(t.itemids for t in tunings))
        order = [i for i in tunings[0].itemids if i in common]
        if order and len(order) >= len(dev.itemids):
            y = np.vstack([dev.y, originals.y])[[known[i] for i in order]]
            probs = []
            for t in tunings:
                where = {i: row for row, i in enumerate(t.itemids)}
                probs.append(t.probs[[where[i] for i in order]])
            from_train = sum(known[i] >= len(dev.itemids) for i in order)
            return y, probs, f"members' out-of-fold ({from_train} train rows)+dev" if from_train else "dev"
    return dev.y, [m.predict_proba(dev.texts) for m in members], "dev"
