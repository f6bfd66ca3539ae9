"""Which items of a day go to human review, and why (pure: no Dagster, no HTTP).

Two streams per scheme and day, each capped, never an item sent before:
- `audit`: for every label the model shipped that day, a uniform random sample of the items it was
  predicted on (`audit_per_label`). Uniform, so the share reviewers confirm estimates the label's
  true precision without selection bias; `audit_labels` says for which labels an item is a sample
  (an item drawn for two labels is sent once and counts for both).
- `hard`: items the model is least sure of or likely wrong on, taken in turn from each reason so no
  reason starves the others: `label_issue` (training items quality/label_issues flagged, worst first),
  `disagrees` (a second model kind's labels differ, when daily_labels records them),
  `near_threshold` (a shipped label's score within `near_threshold` of its threshold, closest first),
  `needs_data` (editors tagged a label the model may not ship yet for want of verified examples).
"""

import zlib
from dataclasses import dataclass

import numpy as np
import polars as pl

AUDIT, HARD = "audit", "hard"
RUNNER_UP_COLUMN = "runner_up_labels"  # daily_labels: a second kind's labels, when configured
TASK_SCHEMA = {
    "itemid": pl.String,
    "stream": pl.String,
    "reasons": pl.List(pl.String),
    "audit_labels": pl.List(pl.String),
    "predicted": pl.List(pl.String),  # pre-filled in Label Studio: the model's labels
    "text": pl.String,
    "model": pl.String,
}


@dataclass(frozen=True)
class ReviewOptions:
    """How many items go to review per scheme and day, and which count as hard."""

    audit_per_label: int = 20  # uniform sample of each shipped label's predicted items
    audit_max_items: int = 300  # the audit stream's cap (per-label samples shrink evenly to fit)
    hard_max_items: int = 100  # the hard-case stream's cap
    near_threshold: float = 0.05  # |score − threshold| at most this is a near-threshold case
    label_issues_per_day: int = 30  # flagged training items offered per day (worst first)

    def __post_init__(self) -> None:
        for name in ("audit_per_label", "audit_max_items", "hard_max_items", "label_issues_per_day"):
            if getattr(self, name) < 0:
                raise ValueError(f"ReviewOptions.{name} must be ≥ 0, got {getattr(self, name)}")
        if not 0 <= self.near_threshold <= 1:
            raise ValueError(f"ReviewOptions.near_threshold must be in [0, 1], got {self.near_threshold}")


@dataclass(frozen=True)
class LabelThreshold:
    threshold: float
    status: str  # shipped / needs data / below floor (train/thresholds.py)


def day_seed(dt: str, scheme: str) -> int:
    """The same day and scheme always draw the same sample (a re-run sends the same items)."""
    return zlib.crc32(f"{dt}:{scheme}".encode())


def choose_tasks(
    predictions: pl.DataFrame,
    texts: pl.DataFrame,
    thresholds: dict[str, LabelThreshold],
    sent: set[str],
    options: ReviewOptions,
    seed: int,
    issues: pl.DataFrame | None = None,
    editor_labels: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """One scheme's day → (tasks in TASK_SCHEMA, counts per reason).

    predictions: daily_labels rows of the scheme (itemid, labels, scores, model_name, model_version;
    `runner_up_labels` optional). texts: itemid, text. thresholds: the serving model's, by label ({}:
    no near-threshold or needs-data cases). sent: itemids already sent for this scheme. issues:
    quality/label_issues rows (itemid, suggested, text, quality). editor_labels: itemid, labels (the
    day's corpus tags: gate name + sub-labels)."""
    fresh = predictions.filter(~pl.col("itemid").is_in(list(sent)))
    model = _model_names(fresh)
    audit = _audit(fresh, options, np.random.default_rng(seed))
    taken = set(audit)
    hard = _hard(fresh, thresholds, options, taken | sent, issues, editor_labels)
    rows = []
    predicted = dict(zip(fresh["itemid"].to_list(), fresh["labels"].to_list()))
    for itemid, labels in audit.items():
        rows.append(
            (itemid, AUDIT, [f"audit:{lb}" for lb in labels], labels, predicted[itemid], None, model.get(itemid))
        )
    for itemid, (reasons, prefill, text) in hard.items():
        rows.append((itemid, HARD, reasons, [], predicted.get(itemid, prefill), text, model.get(itemid, "cleanlab")))
    frame = pl.DataFrame(rows, schema=TASK_SCHEMA, orient="row")
    frame = (
        frame.join(texts.select("itemid", pl.col("text").alias("_text")), on="itemid", how="left")
        .with_columns(pl.coalesce("text", "_text").fill_null("").alias("text"))
        .select(list(TASK_SCHEMA))
    )
    counts = {"audit": len(audit), "hard": len(hard)}
    for reasons in frame.filter(pl.col("stream") == HARD)["reasons"].to_list():
        for reason in {r.split(":")[0] for r in reasons}:
            counts[reason] = counts.get(reason, 0) + 1
    return frame, counts


def _model_names(predictions: pl.DataFrame) -> dict[str, str]:
    if predictions.is_empty():
        return {}
    names = predictions.select("itemid", pl.format("{}:{}", "model_name", "model_version").alias("m"))
    return dict(names.iter_rows())


def _audit(predictions: pl.DataFrame, options: ReviewOptions, rng: np.random.Generator) -> dict[str, list[str]]:
    """itemid → the labels it is an audit sample for."""
    by_label = (
        predictions.select("itemid", pl.col("labels").alias("label")).explode("label").drop_nulls("label")
        .group_by("label").agg("itemid").sort("label")
    )  # fmt: skip
    shuffled = {}
    for label, itemids in by_label.iter_rows():
        ids = sorted(itemids)  # group_by order is not stable: sort, then shuffle with the day's seed
        shuffled[label] = [ids[i] for i in rng.permutation(len(ids))]
    per_label = options.audit_per_label
    while True:
        chosen: dict[str, list[str]] = {}
        for label, ids in shuffled.items():
            for itemid in ids[:per_label]:  # a prefix of a uniform shuffle is a uniform sample
                chosen.setdefault(itemid, []).append(label)
        if len(chosen) <= options.audit_max_items or per_label == 0:
            return chosen
        per_label -= 1


def _hard(
    predictions: pl.DataFrame,
    thresholds: dict[str, LabelThreshold],
    options: ReviewOptions,
    excluded: set[str],
    issues: pl.DataFrame | None,
    editor_labels: pl.DataFrame | None,
) -> dict[str, tuple[list[str], list[str], str | None]]:
    """itemid → (reasons, labels to pre-fill when the item has no prediction today, text or None)."""
    queues: list[list[tuple[str, str, list[str], str | None]]] = []
    if issues is not None and not issues.is_empty():
        worst = (
            issues.filter(~pl.col("itemid").is_in(list(excluded))).sort("quality").head(options.label_issues_per_day)
        )
        queues.append([(i, "label_issue", s, t) for i, s, t in worst.select("itemid", "suggested", "text").iter_rows()])
    if RUNNER_UP_COLUMN in predictions.columns:
        differ = predictions.filter(
            pl.col(RUNNER_UP_COLUMN).is_not_null()
            & (pl.col("labels").list.sort() != pl.col(RUNNER_UP_COLUMN).list.sort())
        )
        queues.append([(i, "disagrees", [], None) for i in sorted(differ["itemid"].to_list())])
    shipped = {lb: t.threshold for lb, t in thresholds.items() if t.status == "shipped"}
    if shipped and not predictions.is_empty():
        near = (
            predictions.select("itemid", "scores").explode("scores").unnest("scores")
            .filter(pl.col("label").is_in(list(shipped)))
            .with_columns((pl.col("score") - pl.col("label").replace_strict(shipped, return_dtype=pl.Float64)).abs().alias("gap"))
            .filter(pl.col("gap") <= options.near_threshold)
            .sort("gap", "itemid")
        )  # fmt: skip
        queues.append([(i, f"near_threshold:{lb}", [], None) for i, lb in near.select("itemid", "label").iter_rows()])
    needs_data = [lb for lb, t in thresholds.items() if t.status == "needs data"]
    if needs_data and editor_labels is not None and not editor_labels.is_empty():
        tagged = (
            editor_labels.explode("labels").filter(pl.col("labels").is_in(needs_data))
            .filter(pl.col("itemid").is_in(predictions["itemid"].to_list())).sort("itemid")
        )  # fmt: skip
        queues.append([(i, f"needs_data:{lb}", [], None) for i, lb in tagged.iter_rows()])
    chosen: dict[str, tuple[list[str], list[str], str | None]] = {}
    positions = [0] * len(queues)
    while len(chosen) < options.hard_max_items and any(p < len(q) for p, q in zip(positions, queues)):
        for k, queue in enumerate(queues):  # round robin: one new item from each reason in turn
            while positions[k] < len(queue):
                itemid, reason, prefill, text = queue[positions[k]]
                positions[k] += 1
                if itemid in excluded:
                    continue
                if itemid in chosen:
                    chosen[itemid][0].append(reason)  # already on its way: one more reason, keep looking
                    continue
                if len(chosen) < options.hard_max_items:
                    chosen[itemid] = ([reason], list(prefill), text)
                break
    return chosen
