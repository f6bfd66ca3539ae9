"""A scheme model over corpus items → one prediction row per item (pure: no Dagster, no MLflow).

Row contents (one scheme; the asset adds `scheme` and the model columns):
- `labels`: the shipped targets that fired, in target order, the gate target first: the gate path
  (e.g. `新车资讯`; a multi-root gate is named `导购+评测`) is a label too, and a sub-label only
  ever appears together with it;
- `gate` / `gate_score`: whether the gate fired and P(gate);
- `scores`: `list[struct{label, score}]` for every shipped target (gate included), joint
  probabilities P(gate)·P(label | gate) — `unnest` in DuckDB gives a long table;
- `rule_labels`: the corpus's regex rule labels; `labels_all`: `labels` then the rule labels not
  already in it (rule labels are scheme-independent, so they repeat on each scheme's row).
Unshipped targets appear nowhere: not in labels, not in scores.
"""

from collections.abc import Callable
from datetime import datetime

import numpy as np
import polars as pl

ProgressCallback = Callable[[int, int], None]  # (items done, items total)
SCORE = pl.Struct({"label": pl.String, "score": pl.Float32})
PREDICTION_SCHEMA = {
    "itemid": pl.String,
    "dtype": pl.String,
    "labels": pl.List(pl.String),
    "gate": pl.Boolean,
    "gate_score": pl.Float32,
    "scores": pl.List(SCORE),
    "rule_labels": pl.List(pl.String),
    "labels_all": pl.List(pl.String),
}
MODEL_SCHEMA = {
    "model_name": pl.String,
    "model_version": pl.String,
    "model_run_id": pl.String,
    "predicted_at": pl.Datetime("us", "UTC"),
}


def score_and_decide(model, texts: list[str], top_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, decisions) for one batch. An agreement ensemble decides from each member's
    own probabilities; computing them once here saves its decide() a second pass over the texts."""
    if getattr(model, "method", None) == "agreement" and getattr(model, "members", None):
        top_k = model.top_k if top_k is None else top_k
        member_probs = [m.predict_proba(texts) for m in model.members]
        fired = np.logical_and.reduce([m.decide(p, top_k=top_k) for m, p in zip(model.members, member_probs)])
        return np.minimum.reduce(member_probs), fired
    probs = model.predict_proba(texts)
    return probs, model.decide(probs, top_k=top_k, texts=texts)


def predict_items(
    items: pl.DataFrame,
    model,
    batch_size: int = 4096,
    on_batch: ProgressCallback | None = None,
    top_k: int | None = None,
) -> pl.DataFrame:
    """`items`: corpus/items rows (itemid, dtype, text; rule_labels optional). `model`: a
    SchemeModel or EnsembleModel. Returns PREDICTION_SCHEMA, one row per item, in input order."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    targets = list(model.targets)
    shipped = set(model.shipped_targets())
    # Python strings a batch at a time: the day stays in Arrow's compact form (a whole day as a list
    # of str would cost ~2 bytes per character more, for as long as the day is scored)
    texts = items["text"].fill_null("")
    n = len(texts)
    probs = np.zeros((n, len(targets)), dtype=np.float32)
    fired = np.zeros((n, len(targets)), dtype=bool)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        batch = texts.slice(start, stop - start).to_list()
        probs[start:stop], fired[start:stop] = score_and_decide(model, batch, top_k)
        if on_batch is not None:
            on_batch(stop, n)
    # The model's decide() already does both; kept here because the table's contract depends on it.
    fired &= np.array([t in shipped for t in targets])[None, :]
    fired[:, 1:] &= fired[:, :1]
    return _frame(items, targets, shipped, probs, fired)


def _frame(items: pl.DataFrame, targets: list[str], shipped: set[str], probs: np.ndarray, fired: np.ndarray):
    kept = [j for j, t in enumerate(targets) if t in shipped]
    columns = {f"p{j}": probs[:, j] for j in kept} | {f"f{j}": fired[:, j] for j in kept}
    wide = pl.DataFrame(columns, schema={**{f"p{j}": pl.Float32 for j in kept}, **{f"f{j}": pl.Boolean for j in kept}})
    rules = items["rule_labels"] if "rule_labels" in items.columns else pl.Series([[]] * items.height)
    base = pl.DataFrame(
        {
            "itemid": items["itemid"].cast(pl.String),
            "dtype": items["dtype"].cast(pl.String),
            "gate": fired[:, 0],
            "gate_score": probs[:, 0],
            "rule_labels": rules.cast(pl.List(pl.String)).fill_null([]),
        }
    )
    empty_labels = pl.lit([], dtype=pl.List(pl.String))
    empty_scores = pl.lit([], dtype=pl.List(SCORE))
    label_exprs = [pl.when(pl.col(f"f{j}")).then(pl.lit(targets[j])) for j in kept]
    score_exprs = [pl.struct(pl.lit(targets[j]).alias("label"), pl.col(f"p{j}").alias("score")) for j in kept]
    lists = wide.select(
        (pl.concat_list(label_exprs).list.drop_nulls() if kept else empty_labels).alias("labels"),
        (pl.concat_list(score_exprs) if kept else empty_scores).alias("scores"),
    )
    if not kept:  # with_columns broadcasts the empty lists to every row (select would give one row)
        lists = base.with_columns(empty_labels.alias("labels"), empty_scores.alias("scores")).select("labels", "scores")
    out = pl.concat([base, lists], how="horizontal").with_columns(
        pl.concat_list("labels", "rule_labels").list.unique(maintain_order=True).alias("labels_all")
    )
    return out.select([pl.col(c).cast(t) for c, t in PREDICTION_SCHEMA.items()])


def with_model_columns(
    frame: pl.DataFrame, name: str, version: str, run_id: str, predicted_at: datetime
) -> pl.DataFrame:
    """Which registered model version made the rows, and when (`predicted_at` stored in UTC)."""
    return frame.with_columns(
        pl.lit(name, dtype=pl.String).alias("model_name"),
        pl.lit(str(version), dtype=pl.String).alias("model_version"),
        pl.lit(run_id, dtype=pl.String).alias("model_run_id"),
        pl.lit(predicted_at).cast(MODEL_SCHEMA["predicted_at"]).alias("predicted_at"),
    )


def label_counts(table: pl.DataFrame, corpus: pl.DataFrame) -> dict[str, int]:
    """Items per predicted label and scheme (`table`: rows of several schemes, with `scheme`), and per
    rule label of the corpus (counted once, not per scheme)."""
    model = table.select("scheme", pl.col("labels").alias("label")).explode("label").drop_nulls("label")
    counts = {f"{r[0]}: {r[1]}": r[2] for r in model.group_by("scheme", "label").len().iter_rows()}
    rules = corpus["rule_labels"].explode().drop_nulls().value_counts()
    return counts | {f"rules: {label}": n for label, n in rules.iter_rows()}
