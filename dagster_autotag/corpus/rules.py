"""Regex rule labels over the model input text (the seed labelled auto shows this way)."""

import polars as pl

from dagster_autotag.corpus.config import Rule

RULE_LABELS = "rule_labels"


def rule_label_column(rules: tuple[Rule, ...], text: str = "text") -> pl.Expr:
    """The labels of every rule whose pattern occurs in `text`, in rule order (empty list: none)."""
    if not rules:
        return pl.lit([], dtype=pl.List(pl.String)).alias(RULE_LABELS)
    hits = [pl.when(pl.col(text).str.contains(r.pattern)).then(pl.lit(r.label)) for r in rules]
    return pl.concat_list(hits).list.drop_nulls().list.unique(maintain_order=True).alias(RULE_LABELS)


def rule_hits(frame: pl.DataFrame, rules: tuple[Rule, ...]) -> pl.DataFrame:
    """Per rule: items it hit, items whose editor tags carry the same label path, and both."""
    if not rules or frame.is_empty():
        return pl.DataFrame(schema={"label": pl.String, "hits": pl.Int64, "tagged": pl.Int64, "both": pl.Int64})
    exprs = []
    for i, r in enumerate(rules):
        hit = pl.col(RULE_LABELS).list.contains(r.label)
        tagged = pl.col("content_labels").list.contains(r.label)
        exprs += [hit.sum().alias(f"h{i}"), tagged.sum().alias(f"t{i}"), (hit & tagged).sum().alias(f"b{i}")]
    sums = frame.select(exprs).row(0)
    return pl.DataFrame(
        {
            "label": [r.label for r in rules],
            "hits": [sums[3 * i] for i in range(len(rules))],
            "tagged": [sums[3 * i + 1] for i in range(len(rules))],
            "both": [sums[3 * i + 2] for i in range(len(rules))],
        },
        schema={"label": pl.String, "hits": pl.Int64, "tagged": pl.Int64, "both": pl.Int64},
    )
