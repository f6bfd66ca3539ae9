"""One evaluation for every model type: per-label counts and P/R/F1, micro/macro summary, the
label pairs most often confused, the worst cases per label, and PR curves.

right / predict / standard are the counts the seed reports used: true positives, predicted
positives and gold positives.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import precision_recall_curve, precision_recall_fscore_support

from dagster_autotag.charts import Chart, CJKFont, render_chart

TOP_CONFUSION_PAIRS = 50
PR_COLUMNS = 4


@dataclass
class Evaluation:
    per_label: pl.DataFrame  # label, precision, recall, f1, support, right, predict, standard, average_precision
    summary: dict
    co_occurrence_errors: pl.DataFrame  # gold_label, predicted_label, count
    bad_cases: pl.DataFrame  # kind, label, itemid, prob, text
    label_names: list[str]
    y_true: np.ndarray = field(repr=False)
    probs: np.ndarray = field(repr=False)
    y_pred: np.ndarray = field(repr=False)

    def pr_curve_chart(self, path: Path | None = None) -> Chart:
        return pr_curve_chart(self.y_true, self.probs, self.label_names, path, y_pred=self.y_pred)


def _as_bool(name: str, a: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or (shape is not None and a.shape != shape):
        raise ValueError(f"{name} has shape {a.shape}, expected (n, L){'' if shape is None else f' = {shape}'}")
    return a > 0 if a.dtype != bool else a


def _average_precision(y: np.ndarray, p: np.ndarray) -> float | None:
    """Step-wise area under the PR curve (sklearn's definition); None without a gold positive."""
    if not y.any():
        return None
    precision, recall, _ = precision_recall_curve(y, p)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def per_label_table(y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray, label_names: list[str]) -> pl.DataFrame:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, labels=range(len(label_names)), zero_division=0
    )
    return pl.DataFrame(
        {
            "label": label_names,
            "precision": precision.astype(np.float64),
            "recall": recall.astype(np.float64),
            "f1": f1.astype(np.float64),
            "support": support.astype(np.int64),
            "right": (y_true & y_pred).sum(axis=0).astype(np.int64),
            "predict": y_pred.sum(axis=0).astype(np.int64),
            "standard": y_true.sum(axis=0).astype(np.int64),
            "average_precision": [_average_precision(y_true[:, j], probs[:, j]) for j in range(len(label_names))],
        },
        schema_overrides={"average_precision": pl.Float64},
    )


def summarise(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    n, n_labels = y_true.shape
    summary: dict = {"samples": int(n), "labels": int(n_labels)}
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    summary |= {"micro_precision": float(p), "micro_recall": float(r), "micro_f1": float(f)}
    # macro over labels that occur in gold: a label absent from the split has no recall to average
    present = np.flatnonzero(y_true.any(axis=0))
    if present.size:
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", labels=present, zero_division=0)
    else:
        p = r = f = 0.0
    summary |= {"macro_precision": float(p), "macro_recall": float(r), "macro_f1": float(f)}
    summary["macro_labels"] = int(present.size)
    # per-item F1; zero_division=1 so an item with no gold and no prediction (gate negative) counts as right
    _, _, f, _ = (
        precision_recall_fscore_support(y_true, y_pred, average="samples", zero_division=1) if n else (0, 0, 0, 0)
    )
    summary["samples_f1"] = float(f)
    summary["exact_match"] = float((y_true == y_pred).all(axis=1).mean()) if n else 0.0
    summary |= {
        "right": int((y_true & y_pred).sum()),
        "predict": int(y_pred.sum()),
        "standard": int(y_true.sum()),
    }
    return summary


def co_occurrence_errors(
    y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str], top: int = TOP_CONFUSION_PAIRS
) -> pl.DataFrame:
    """Items whose gold label A was missed while label B was predicted wrongly, per (A, B): the
    labels the model mixes up. One item counts once for every such pair it holds."""
    missed = (y_true & ~y_pred).astype(np.int64)
    extra = (y_pred & ~y_true).astype(np.int64)
    counts = missed.T @ extra  # (L, L); the diagonal is 0, a label cannot be both
    gold, predicted = np.nonzero(counts)
    names = np.asarray(label_names, dtype=object)
    return (
        pl.DataFrame(
            {
                "gold_label": names[gold].tolist(),
                "predicted_label": names[predicted].tolist(),
                "count": counts[gold, predicted].astype(np.int64),
            },
            schema={"gold_label": pl.String, "predicted_label": pl.String, "count": pl.Int64},
        )
        .sort(["count", "gold_label", "predicted_label"], descending=[True, False, False])
        .head(top)
    )


def bad_cases(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    probs: np.ndarray,
    label_names: list[str],
    texts: list[str],
    itemids: list[str],
    per_label: int,
) -> pl.DataFrame:
    """Worst false positives (most confident) and false negatives (least confident) per label."""
    rows: list[tuple[str, int, np.ndarray]] = []  # kind, label index, row indices
    for j in range(len(label_names)):
        p = probs[:, j]
        fp = np.flatnonzero(y_pred[:, j] & ~y_true[:, j])
        fn = np.flatnonzero(y_true[:, j] & ~y_pred[:, j])
        rows.append(("false_positive", j, fp[np.argsort(-p[fp], kind="stable")][:per_label]))
        rows.append(("false_negative", j, fn[np.argsort(p[fn], kind="stable")][:per_label]))
    kinds = [k for k, _, idx in rows for _ in idx]
    cols = np.concatenate([np.full(len(idx), j, dtype=np.int64) for _, j, idx in rows]) if rows else np.zeros(0, int)
    idx = np.concatenate([idx for _, _, idx in rows]) if rows else np.zeros(0, int)
    text_arr, id_arr = np.asarray(texts, dtype=object), np.asarray(itemids, dtype=object)
    return pl.DataFrame(
        {
            "kind": kinds,
            "label": np.asarray(label_names, dtype=object)[cols].tolist(),
            "itemid": id_arr[idx].tolist(),
            "prob": probs[idx, cols].astype(np.float64),
            "text": text_arr[idx].tolist(),
        },
        schema={"kind": pl.String, "label": pl.String, "itemid": pl.String, "prob": pl.Float64, "text": pl.String},
    )


def evaluate(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    probs: np.ndarray,
    label_names: list[str],
    texts: list[str],
    itemids: list[str] | None = None,
    bad_cases_per_label: int = 20,
) -> Evaluation:
    y_true = _as_bool("y_true", y_true)
    y_pred = _as_bool("y_pred", y_pred, y_true.shape)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != y_true.shape or len(label_names) != y_true.shape[1] or len(texts) != y_true.shape[0]:
        raise ValueError(
            f"shapes disagree: y_true {y_true.shape}, probs {probs.shape}, {len(label_names)} labels, {len(texts)} texts"
        )
    ids = [str(i) for i in range(len(texts))] if itemids is None else [str(i) for i in itemids]
    return Evaluation(
        per_label=per_label_table(y_true, y_pred, probs, label_names),
        summary=summarise(y_true, y_pred),
        co_occurrence_errors=co_occurrence_errors(y_true, y_pred, label_names),
        bad_cases=bad_cases(y_true, y_pred, probs, label_names, list(texts), ids, bad_cases_per_label),
        label_names=list(label_names),
        y_true=y_true,
        probs=probs,
        y_pred=y_pred,
    )


def _json_number(x):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return x


def to_json(evaluation: Evaluation) -> dict:
    """Metrics as JSON-ready builtins (no texts: bad cases go out as their own table)."""
    return {
        "summary": {k: _json_number(v) for k, v in evaluation.summary.items()},
        "per_label": [{k: _json_number(v) for k, v in row.items()} for row in evaluation.per_label.to_dicts()],
        "co_occurrence_errors": evaluation.co_occurrence_errors.to_dicts(),
        "bad_cases": evaluation.bad_cases.group_by("kind").len().sort("kind").to_dicts(),
    }


def pr_curve_chart(
    y_true: np.ndarray,
    probs: np.ndarray,
    label_names: list[str],
    path: Path | None = None,
    y_pred: np.ndarray | None = None,
) -> Chart:
    """A grid of small PR curves, one per label, with the operating point of `y_pred` marked; the
    PNG is also written to `path` when given. Never raises (charts.py)."""
    y_true, probs = np.asarray(y_true) > 0, np.asarray(probs)
    return render_chart(lambda font: _pr_figure(y_true, probs, label_names, y_pred, font), path)


def _pr_figure(y_true: np.ndarray, probs: np.ndarray, label_names: list[str], y_pred: np.ndarray | None, font: CJKFont):
    from matplotlib.figure import Figure  # here, not at import: loading a model for inference needs no plots

    n_labels = len(label_names)
    ncols = max(1, min(PR_COLUMNS, n_labels))
    nrows = max(1, math.ceil(n_labels / ncols))
    fig = Figure(figsize=(3.0 * ncols, 2.6 * nrows), dpi=80 if nrows > 8 else 100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for j, ax in enumerate(axes):
        if j >= n_labels:
            ax.set_axis_off()
            continue
        y, p = y_true[:, j], probs[:, j]
        ap = _average_precision(y, p)
        if ap is None:
            ax.text(0.5, 0.5, "no gold positives", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        else:
            precision, recall, _ = precision_recall_curve(y, p)
            ax.step(recall, precision, where="post", color="#4c78a8", linewidth=1.2)
            if y_pred is not None:
                tp = int((y & y_pred[:, j]).sum())
                predicted = int(y_pred[:, j].sum())
                ax.plot(tp / int(y.sum()), tp / predicted if predicted else 1.0, "o", color="#e45756", markersize=4)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        title = f"{label_names[j]}  n={int(y.sum())}" + ("" if ap is None else f"  AP={ap:.2f}")
        ax.set_title(title, fontproperties=font.properties(8), loc="left")
        ax.spines[["top", "right"]].set_visible(False)
    fig.supxlabel("recall", fontsize=9)
    fig.supylabel("precision", fontsize=9)
    return fig
