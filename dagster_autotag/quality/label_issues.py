"""Likely errors in the editors' tags, found with cleanlab from out-of-fold probabilities.

Editors' tags are the training labels, and they are noisy. cleanlab's multi-label filter compares
each row's given targets (gate + sub-labels) with what a model trained *without that row* predicts.
Reported: every row whose given targets differ from that model's suggestion (cleanlab's
`predicted_neq_given`), worst label quality score first, and `confident` where cleanlab's default
filter (`prune_by_noise_rate`) flags it too. Why both: on planted errors (the test) the default filter
found the tags editors forgot but missed most tags added without cause; the wider set found all of
them, and the quality ranking put 20 of the 24 among the 30 worst rows.
The out-of-fold probabilities come from one flat multi-label linear model (k folds over train + dev):
it trains in seconds, so every row gets a prediction from a model that never saw it. Not the scheme
model's `out_of_fold` (train/scheme_model.py, for thresholds): its joint gate × label probabilities
ranked only 14 of the 24 planted errors among the 30 worst. Pure: no Dagster.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from dagster_autotag.train.configs import LinearConfig
from dagster_autotag.train.targets import gate_vector, label_matrix

ISSUES_FILE = "label_issues.parquet"
SUGGEST_AT = 0.5  # out-of-fold probability above which a target is suggested


@dataclass
class LabelIssues:
    issues: pl.DataFrame  # one row per flagged item, worst (lowest quality) first
    rows_checked: int
    folds: int


def out_of_fold_probs(texts: list[str], y: np.ndarray, folds: int, config: LinearConfig, seed: int = 0) -> np.ndarray:
    """Each row's probabilities from a linear model trained on the other folds."""
    from sklearn.model_selection import KFold

    from dagster_autotag.train.linear import LinearModel

    probs = np.zeros(y.shape, dtype=np.float32)
    for fit_rows, held_out in KFold(folds, shuffle=True, random_state=seed).split(texts):
        model = LinearModel(config).fit([texts[i] for i in fit_rows], y[fit_rows])
        probs[held_out] = model.predict_proba([texts[i] for i in held_out])
    return probs


@dataclass
class Flags:
    rows: np.ndarray  # indices of the rows whose given targets differ from the suggestion, worst first
    quality: np.ndarray  # cleanlab's label quality score of every row (lower = more likely wrong)
    confident: np.ndarray  # bool per row: cleanlab's default filter (prune_by_noise_rate) flags it


def flag_rows(y: np.ndarray, probs: np.ndarray) -> Flags:
    """Rows of multi-hot `y` whose out-of-fold `probs` suggest other targets, ranked by cleanlab."""
    from cleanlab.multilabel_classification.filter import find_label_issues as flag
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    given = [list(np.flatnonzero(row)) for row in y > 0]
    quality = get_label_quality_scores(given, probs)
    # n_jobs=1: cleanlab's default forks a pool, and a fork of a process whose polars thread pool is
    # running deadlocks (seen: a Dagster step hung in Pool.terminate)
    disagree = np.flatnonzero(flag(labels=given, pred_probs=probs, filter_by="predicted_neq_given", n_jobs=1))
    confident = flag(labels=given, pred_probs=probs, n_jobs=1)  # prune_by_noise_rate
    return Flags(disagree[np.argsort(quality[disagree], kind="stable")], quality, confident)


def find_label_issues(dataset_dir: Path, folds: int = 5, config: LinearConfig | None = None) -> LabelIssues:
    """Train + dev rows of a dataset (oversampled copies left out), checked target by target."""
    import json

    if folds < 2:
        raise ValueError(f"out-of-fold probabilities need at least 2 folds, got {folds}")
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    targets = ["+".join(manifest["gate"]), *manifest["labels"]]
    frames = [
        pl.read_parquet(dataset_dir / f"{split}.parquet", columns=["itemid", "text", "gate", "labels", "copy"])
        .filter(pl.col("copy") == 0)
        .with_columns(pl.lit(split).alias("split"))
        for split in ("train", "dev")
    ]
    rows = pl.concat(frames, how="diagonal_relaxed")
    texts, itemids = rows["text"].fill_null("").to_list(), rows["itemid"].to_list()
    y = np.hstack([gate_vector(rows["gate"]), label_matrix(rows["labels"], manifest["labels"])])
    probs = out_of_fold_probs(texts, y, folds, config or LinearConfig())
    flags = flag_rows(y, probs)
    flagged, suggested = flags.rows, probs >= SUGGEST_AT

    def names(mask: np.ndarray) -> list[str]:
        return [targets[j] for j in np.flatnonzero(mask)]

    issues = pl.DataFrame(
        {
            "itemid": [itemids[i] for i in flagged],
            "split": rows["split"].gather(flagged),
            "given": [names(y[i] > 0) for i in flagged],
            "suggested": [names(suggested[i]) for i in flagged],
            "quality": flags.quality[flagged].astype(np.float64),
            "confident": flags.confident[flagged],
            "text": [texts[i] for i in flagged],
        },
        schema_overrides={"given": pl.List(pl.String), "suggested": pl.List(pl.String)},
    )
    return LabelIssues(issues, len(texts), folds)
