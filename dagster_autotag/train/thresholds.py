"""Per-label decision thresholds and the decision rule that applies them.

"precision_floor" ships a label only if, at some threshold, a lower confidence bound of its
precision on the tuning set is at or above the floor, and then takes the highest recall there: a
wrong tag costs more than a missing one, and a point estimate from a few dozen positives does not
hold on unseen days (issue #14: 3/3 right is no evidence of 80 % precision). The bound is
Clopper–Pearson's (exact binomial, one-sided at `confidence`): unlike Wilson's it never covers
less than promised, which matters exactly where labels sit, few predictions and precision near 1
(8/8 reaches 0.8 by Wilson's 90 % bound; Clopper–Pearson asks for 11/11).

Each label ends in one status: `shipped`; `needs data` (the point precision reaches the floor
somewhere but its bound does not: more positives would settle it, or no positives at all); `below
floor` (no cut reaches the floor even as a point estimate). Unshipped labels keep the cut with the
highest lower bound and its figures, for reports and for `decide(..., only_shipped=False)`.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import beta

Mode = Literal["f1", "precision_floor"]
NO_THRESHOLD = 1.0  # for labels without a usable cut: nothing above a probability of 1 fires on noise
SHIPPED, NEEDS_DATA, BELOW_FLOOR = "shipped", "needs data", "below floor"
INTERVAL = "clopper_pearson"


def precision_interval(tp, predicted, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Clopper–Pearson lower and upper bounds of tp / predicted, each at `confidence`
    (together a two-sided interval at 2·confidence − 1). confidence 0: both are the point estimate."""
    tp, n = np.asarray(tp, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    point = np.divide(tp, n, out=np.zeros_like(tp), where=n > 0)
    if not confidence:
        return point, point
    with np.errstate(invalid="ignore", divide="ignore"):  # beta's shape 0 at tp = 0 or tp = n: replaced below
        lower = np.where(tp > 0, beta.ppf(1 - confidence, tp, n - tp + 1), 0.0)
        upper = np.where(tp < n, beta.ppf(confidence, tp + 1, n - tp), 1.0)
    return lower, upper


@dataclass
class Thresholds:
    thresholds: np.ndarray  # (L,) float
    shipped: np.ndarray  # (L,) bool
    precision: np.ndarray  # (L,) tuning-set figures at the chosen threshold
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # (L,) tuning-set positives
    mode: str = "precision_floor"
    precision_floor: float = 0.8
    # Issue #14: the counts behind `precision` and its interval. Files written before have none:
    # tp/predicted are recovered from precision, recall and support, the bounds are NaN (unknown).
    tp: np.ndarray | None = None
    predicted: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    status: list[str] | None = None
    confidence: float | None = None  # None: tuned before the bound rule
    source: str = "dev"  # what the thresholds were tuned on, e.g. "oof(5)+dev"
    note: str = ""  # why that source, when not the configured one
    tuning_rows: int | None = None

    def __post_init__(self) -> None:
        n = len(self.thresholds)
        if self.tp is None:
            self.tp = np.rint(np.asarray(self.recall, dtype=np.float64) * self.support).astype(np.int64)
        if self.predicted is None:
            precision = np.asarray(self.precision, dtype=np.float64)
            self.predicted = np.rint(np.divide(self.tp, precision, out=np.zeros(n), where=precision > 0))
            self.predicted = self.predicted.astype(np.int64)
        if self.lower is None or self.upper is None:
            self.lower, self.upper = np.full(n, np.nan), np.full(n, np.nan)
        if self.status is None:
            self.status = [SHIPPED if s else BELOW_FLOOR for s in self.shipped]

    @property
    def counts(self) -> dict[str, int]:
        return {s: self.status.count(s) for s in (SHIPPED, NEEDS_DATA, BELOW_FLOOR)}

    def rows(self, label_names: list[str]) -> list[dict]:
        """One JSON-ready dict per label (an unknown bound is None)."""
        if len(label_names) != len(self.thresholds):
            raise ValueError(f"{len(label_names)} label names for {len(self.thresholds)} thresholds")
        return [
            {
                "label": name,
                "threshold": float(self.thresholds[j]),
                "shipped": bool(self.shipped[j]),
                "status": self.status[j],
                "precision": float(self.precision[j]),
                "precision_lower": _number(self.lower[j]),
                "precision_upper": _number(self.upper[j]),
                "tp": int(self.tp[j]),
                "predicted": int(self.predicted[j]),
                "recall": float(self.recall[j]),
                "f1": float(self.f1[j]),
                "support": int(self.support[j]),
            }
            for j, name in enumerate(label_names)
        ]

    def to_dict(self, label_names: list[str]) -> dict:
        return {
            "mode": self.mode,
            "precision_floor": self.precision_floor,
            "confidence": self.confidence,
            "interval": INTERVAL,
            "source": self.source,
            "note": self.note,
            "tuning_rows": self.tuning_rows,
            "counts": self.counts,
            "labels": self.rows(label_names),
        }

    @classmethod
    def from_dict(cls, data: dict, label_names: list[str] | None = None) -> "Thresholds":
        """Back from `to_dict`; with `label_names`, in that order (KeyError for a label not tuned)."""
        entries = {e["label"]: e for e in data["labels"]}
        order = label_names if label_names is not None else [e["label"] for e in data["labels"]]
        rows = [entries[name] for name in order]

        def column(key: str, dtype) -> np.ndarray | None:
            if not all(key in r for r in rows):
                return None  # written before this key existed
            return np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=dtype)

        return cls(
            thresholds=column("threshold", np.float64),
            shipped=column("shipped", bool),
            precision=column("precision", np.float64),
            recall=column("recall", np.float64),
            f1=column("f1", np.float64),
            support=column("support", np.int64),
            mode=data.get("mode", "precision_floor"),
            precision_floor=float(data.get("precision_floor", 0.8)),
            tp=column("tp", np.int64),
            predicted=column("predicted", np.int64),
            lower=column("precision_lower", np.float64),
            upper=column("precision_upper", np.float64),
            status=[r["status"] for r in rows] if all("status" in r for r in rows) else None,
            confidence=data.get("confidence"),
            source=data.get("source", "dev"),
            note=data.get("note", ""),
            tuning_rows=data.get("tuning_rows"),
        )

    def label_names_shipped(self, label_names: list[str]) -> list[str]:
        return [name for name, ok in zip(label_names, self.shipped) if ok]

    def subset(self, index) -> "Thresholds":
        """The same table for some labels only (e.g. the sub-labels without the gate)."""
        return Thresholds(
            self.thresholds[index], self.shipped[index], self.precision[index], self.recall[index], self.f1[index],
            self.support[index], self.mode, self.precision_floor, self.tp[index], self.predicted[index],
            self.lower[index], self.upper[index], list(np.asarray(self.status, dtype=object)[index]), self.confidence,
            self.source, self.note, self.tuning_rows,
        )  # fmt: skip


def _number(x) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def _curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct score as a cut, highest first, with the true and predicted positives at
    score ≥ cut (what precision_recall_curve divides; the bound needs the counts)."""
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]  # the last row of each run of equal scores
    return p[last], np.cumsum(y)[last], last + 1


def _tune_one(y: np.ndarray, p: np.ndarray, mode: Mode, floor: float, min_threshold: float, confidence: float):
    """(threshold, shipped, status, tp, predicted, precision, recall, f1, lower, upper) for one label."""
    n_pos = int(y.sum())
    if n_pos == 0 or len(y) == 0:
        return NO_THRESHOLD, False, NEEDS_DATA, 0, 0, 0.0, 0.0, 0.0, 0.0, 1.0
    cuts, tp, predicted = _curve(y, p)
    usable = (cuts >= min_threshold) & (tp > 0)
    if not usable.any():
        return NO_THRESHOLD, False, BELOW_FLOOR, 0, 0, 0.0, 0.0, 0.0, 0.0, 1.0
    precision, recall, f1 = tp / predicted, tp / n_pos, 2 * tp / (predicted + n_pos)
    lower, upper = precision_interval(tp, predicted, confidence)
    reaches = usable & (lower >= floor)
    # cuts fall along the arrays, recall rises: the first index among equals is the higher threshold
    if mode == "f1":
        i = int(np.argmax(np.where(usable, f1, -1.0)))
        shipped = bool(reaches[i])
    elif mode == "precision_floor":
        shipped = bool(reaches.any())
        # unshipped: the cut closest to shipping, the highest lower bound (ties → more recall)
        i = int(np.argmax(np.where(reaches, recall, -1.0))) if shipped else _last_argmax(np.where(usable, lower, -1.0))
    else:
        raise ValueError(f"unknown threshold mode {mode!r}")
    status = SHIPPED if shipped else NEEDS_DATA if (usable & (precision >= floor)).any() else BELOW_FLOOR
    return (
        float(cuts[i]), shipped, status, int(tp[i]), int(predicted[i]), float(precision[i]), float(recall[i]),
        float(f1[i]), float(lower[i]), float(upper[i]),
    )  # fmt: skip


def _last_argmax(values: np.ndarray) -> int:
    return len(values) - 1 - int(np.argmax(values[::-1]))


def tune_thresholds(
    y_true: np.ndarray,
    probs: np.ndarray,
    mode: Mode = "precision_floor",
    precision_floor: float = 0.8,
    min_threshold: float = 0.05,
    confidence: float = 0.9,
    source: str = "dev",
    note: str = "",
) -> Thresholds:
    """One threshold per column of `probs` (n, L) against the tuning truth `y_true` (n, L, 0/1).

    A label ships when the lower bound of its precision at `confidence` (0: the point estimate)
    reaches `precision_floor` (mode precision_floor: at the highest-recall such cut; mode f1: at
    the F1-best cut). Only cuts ≥ `min_threshold` are considered, so a label is never switched on
    by noise-level scores. `source`/`note` record what `y_true` and `probs` are."""
    if not (confidence == 0 or 0.5 <= confidence < 1):
        raise ValueError(f"confidence must be 0 (no bound) or in [0.5, 1), got {confidence}")
    y_true = np.asarray(y_true) > 0
    probs = np.asarray(probs)
    if y_true.shape != probs.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and probs {probs.shape} must be the same (n, L) shape")
    tuned = [
        _tune_one(y_true[:, j], probs[:, j], mode, precision_floor, min_threshold, confidence)
        for j in range(probs.shape[1])
    ]
    cut, shipped, status, tp, predicted, precision, recall, f1, lower, upper = (
        zip(*tuned) if tuned else ([],) * 10
    )  # fmt: skip
    return Thresholds(
        thresholds=np.asarray(cut, dtype=np.float64),
        shipped=np.asarray(shipped, dtype=bool),
        precision=np.asarray(precision, dtype=np.float64),
        recall=np.asarray(recall, dtype=np.float64),
        f1=np.asarray(f1, dtype=np.float64),
        support=y_true.sum(axis=0).astype(np.int64),
        mode=mode,
        precision_floor=precision_floor,
        tp=np.asarray(tp, dtype=np.int64),
        predicted=np.asarray(predicted, dtype=np.int64),
        lower=np.asarray(lower, dtype=np.float64),
        upper=np.asarray(upper, dtype=np.float64),
        status=list(status),
        confidence=confidence,
        source=source,
        note=note,
        tuning_rows=int(y_true.shape[0]),
    )


def thresholds_of_decisions(
    y_true: np.ndarray,
    fired: np.ndarray,
    allowed: np.ndarray,
    precision_floor: float = 0.8,
    confidence: float = 0.9,
    mode: str = "agreement",
    source: str = "dev",
    note: str = "",
) -> Thresholds:
    """The same table for a rule without cuts of its own (an agreement ensemble): each label's
    figures and bound from fixed decisions `fired` (n, L); it ships when `allowed` (e.g. every
    member ships it) and its lower bound reaches the floor. `thresholds` are 0: not applicable."""
    y_true, fired = np.asarray(y_true) > 0, np.asarray(fired, dtype=bool)
    if y_true.shape != fired.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and fired {fired.shape} must be the same (n, L) shape")
    support = y_true.sum(axis=0).astype(np.int64)
    tp, predicted = (y_true & fired).sum(axis=0).astype(np.int64), fired.sum(axis=0).astype(np.int64)
    precision = np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(len(tp)), where=support > 0)
    f1 = np.divide(2 * tp, predicted + support, out=np.zeros(len(tp)), where=predicted + support > 0)
    lower, upper = precision_interval(tp, predicted, confidence)
    shipped = np.asarray(allowed, dtype=bool) & (tp > 0) & (lower >= precision_floor)
    status = [
        SHIPPED
        if ok
        else NEEDS_DATA
        if support[j] == 0 or (tp[j] > 0 and precision[j] >= precision_floor)
        else BELOW_FLOOR
        for j, ok in enumerate(shipped)
    ]
    return Thresholds(
        np.zeros(len(tp)), shipped, precision, recall, f1, support, mode, precision_floor, tp, predicted, lower,
        upper, status, confidence, source, note, int(y_true.shape[0]),
    )  # fmt: skip


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
