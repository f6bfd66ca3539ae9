"""Does a scheme's data agree with `exclusive: true`? The share of gate-positive items carrying
more than one sub-label (issue #14 §3), reported in the datasets manifest for every scheme: for an
exclusive scheme it says whether the softmax over the sub-labels fits; for the others, whether one could."""

import polars as pl

# Editors sometimes tag one item twice; up to this share the data still counts as single-label.
AGREE_MAX_SHARE = 0.01


def exclusivity_report(mask_counts: pl.DataFrame, declared: bool, max_share: float = AGREE_MAX_SHARE) -> dict:
    """`mask_counts`: mask, items — distinct items per label combination (bit 0 the gate, bit j+1
    sub-label j; corpus/splits.py's label_mask), as the split plan counts them (each item once)."""
    positives_only = mask_counts.filter((pl.col("mask") % 2) == 1)
    n_sub = (pl.col("mask") // 2).bitwise_count_ones()
    counts = positives_only.select(
        pl.col("items").sum().alias("gate_positives"),
        pl.col("items").filter(n_sub > 1).sum().alias("several_labels"),
        pl.col("items").filter(n_sub == 0).sum().alias("no_label"),
    ).row(0, named=True)
    positives = int(counts["gate_positives"] or 0)
    several = int(counts["several_labels"] or 0)
    share = several / positives if positives else 0.0
    return {
        "declared": bool(declared),
        "gate_positives": positives,
        "several_labels": several,
        "no_label": int(counts["no_label"] or 0),
        "several_labels_share": round(share, 6),
        "data_agrees": share <= max_share,
        "max_share": max_share,
    }
