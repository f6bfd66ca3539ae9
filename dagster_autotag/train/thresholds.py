"""Per-label decision thresholds tuned on dev, and the decision rule that applies them.

"precision_floor" ships a label only if some threshold keeps dev precision at or above the floor
with at least one true positive, and then takes the highest recall there: a wrong tag costs more
than a missing one. Unshipped labels still carry their F1-best threshold and its dev figures, for
reports and for `decide(..., only_shipped=False)`.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.metrics import precision_recall_curve

Mode = Literal["f1", "precision_floor"]
NO_THRESHOLD = 1.0  # for labels without a usable cut: nothing above a probability of 1 fires on noise


@dataclass
class Thresholds:
    thresholds: np.ndarray  # (L,) float
    shipped: np.ndarray  # (L,) bool
    precision: np.ndarray  # (L,) dev figures at the chosen threshold
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # (L,) dev positives
    mode: str = "precision_floor"
    precision_floor: float = 0.8

    def to_dict(self, label_names: list[str]) -> dict:
        if len(label_names) != len(self.thresholds):
            raise ValueError(f"{len(label_names)} label names for {len(self.thresholds)} thresholds")
        return {
            "mode": self.mode,
            "precision_floor": self.precision_floor,
            "labels": [
                {
                    "label": name,
                    "threshold": float(self.thresholds[j]),
                    "shipped": bool(self.shipped[j]),
                    "precision": float(self.precision[j]),
                    "recall": float(self.recall[j]),
                    "f1": float(self.f1[j]),
                    "support": int(self.support[j]),
                }
                for j, name in enumerate(label_names)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict, label_names: list[str] | None = None) -> "Thresholds":
        """Back from `to_dict`; with `label_names`, in that order (KeyError for a label not tuned)."""
        entries = {e["label"]: e for e in data["labels"]}
        order = label_names if label_names is not None else [e["label"] for e in data["labels"]]
        rows = [entries[name] for name in order]

        def column(key: str, dtype) -> np.ndarray:
            return np.array([r[key] for r in rows], dtype=dtype)

        return cls(
            thresholds=column("threshold", np.float64),
            shipped=column("shipped", bool),
            precision=column("precision", np.float64),
            recall=column("recall", np.float64),
            f1=column("f1", np.float64),
            support=column("support", np.int64),
            mode=data.get("mode", "precision_floor"),
            precision_floor=float(data.get("precision_floor", 0.8)),
        )

    def label_names_shipped(self, label_names: list[str]) -> list[str]:
        return [name for name, ok in zip(label_names, self.shipped) if ok]


def _tune_one(
    y: np.ndarray, p: np.ndarray, mode: Mode, floor: float, min_threshold: float
) -> tuple[float, bool, float, float, float]:
    """threshold, shipped, precision, recall, f1 for one label."""
    if not y.any():
        return NO_THRESHOLD, False, 0.0, 0.0, 0.0
    precision, recall, cuts = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    usable = (cuts >= min_threshold) & (recall > 0)
    if not usable.any():
        return NO_THRESHOLD, False, 0.0, 0.0, 0.0
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    # cuts increase along the curve, so the last index among equals is the higher threshold
    best_f1 = _last_argmax(np.where(usable, f1, -1.0))
    reaches = usable & (precision >= floor)
    if mode == "f1":
        i, shipped = best_f1, bool(reaches[best_f1])
    elif mode == "precision_floor":
        i, shipped = (_last_argmax(np.where(reaches, recall, -1.0)), True) if reaches.any() else (best_f1, False)
    else:
        raise ValueError(f"unknown threshold mode {mode!r}")
    return float(cuts[i]), shipped, float(precision[i]), float(recall[i]), float(f1[i])


def _last_argmax(values: np.ndarray) -> int:
    return len(values) - 1 - int(np.argmax(values[::-1]))


def tune_thresholds(
    y_true: np.ndarray,
    probs: np.ndarray,
    mode: Mode = "precision_floor",
    precision_floor: float = 0.8,
    min_threshold: float = 0.05,
) -> Thresholds:
    """One threshold per column of `probs` (n, L) against the dev truth `y_true` (n, L, 0/1).

    Only cuts ≥ `min_threshold` are considered, so a label is never switched on by noise-level scores."""
    y_true = np.asarray(y_true) > 0
    probs = np.asarray(probs)
    if y_true.shape != probs.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and probs {probs.shape} must be the same (n, L) shape")
    tuned = [_tune_one(y_true[:, j], probs[:, j], mode, precision_floor, min_threshold) for j in range(probs.shape[1])]
    cut, shipped, precision, recall, f1 = (np.array(c) for c in zip(*tuned)) if tuned else ([],) * 5
    return Thresholds(
        thresholds=np.asarray(cut, dtype=np.float64),
        shipped=np.asarray(shipped, dtype=bool),
        precision=np.asarray(precision, dtype=np.float64),
        recall=np.asarray(recall, dtype=np.float64),
        f1=np.asarray(f1, dtype=np.float64),
        support=y_true.sum(axis=0).astype(np.int64),
        mode=mode,
        precision_floor=precision_floor,
    )


def decide(
    probs: np.ndarray, thresholds: Thresholds, top_k: int | None = None, only_shipped: bool = True
) -> np.ndarray:
    """(n, L) bool: prob ≥ threshold; unshipped labels off when `only_shipped`; with `top_k`, at
    most that many labels per row, the most probable (ties → the earlier label)."""
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] != len(thresholds.thresholds):
        raise ValueError(f"probs {probs.shape} do not match {len(thresholds.thresholds)} thresholds")
    fired = probs >= thresholds.thresholds[None, :]
    if only_shipped:
        fired &= thresholds.shipped[None, :]
    if top_k is not None and top_k < probs.shape[1]:
        if top_k <= 0:
            return np.zeros_like(fired)
        ranked = np.argsort(np.where(fired, -probs, np.inf), axis=1, kind="stable")[:, :top_k]
        keep = np.zeros_like(fired)
        np.put_along_axis(keep, ranked, True, axis=1)
        fired &= keep
    return fired
