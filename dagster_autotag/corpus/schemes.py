"""A label scheme applied to content labels: the gate (bool; null = out of scope) and sub-labels."""

import polars as pl

from dagster_autotag.corpus.config import Scheme

NAME_SEP = "/"


def scheme_label_set(scheme: Scheme, tags: pl.DataFrame) -> list[str]:
    """The scheme's labels: pinned, else every tag at label_level under a gate subtree, in tag order."""
    if scheme.labels is not None:
        return list(scheme.labels)
    under_gate = pl.any_horizontal([pl.col("name_path").str.starts_with(g + NAME_SEP) for g in scheme.gate])
    ordered = tags.filter(under_gate & (pl.col("level") == scheme.label_level)).sort(
        pl.col("tag_id").cast(pl.Int64, strict=False), "tag_id"
    )
    return ordered["name_path"].unique(maintain_order=True).to_list()


def scheme_columns(scheme: Scheme, label_set: list[str]) -> list[pl.Expr]:
    """Expressions over `content_labels`: <scheme>_gate and <scheme>_labels (sorted label paths).

    Ancestors are already in content_labels, so the gate is "a gate root is among the labels";
    an item with no content labels at all is out of scope (null), not a negative."""
    labels = pl.col("content_labels")
    gate = (
        pl.when(labels.list.len() == 0)
        .then(pl.lit(None, dtype=pl.Boolean))
        .otherwise(labels.list.set_intersection(pl.lit(list(scheme.gate), dtype=pl.List(pl.String))).list.len() > 0)
    )
    subs = labels.list.set_intersection(pl.lit(label_set, dtype=pl.List(pl.String))).list.sort()
    return [gate.alias(scheme.gate_column), subs.alias(scheme.labels_column)]
