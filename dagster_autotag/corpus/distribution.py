"""Label distribution of one corpus partition per scheme: counts, ratios, all-zero share, labels per item.

One long table (Parquet-friendly) with a row per (scheme, metric, key):
  metric = items | in_scope | gate | label | all_zero | labels_per_item
  share  = count / denominator, where the denominator is named in `of`:
    in_scope, gate, all_zero → of the scheme's in-scope items; label, labels_per_item → of gate positives.
The pseudo-scheme `rules` holds the regex rule labels, as shares of all items.
"""

import polars as pl

from dagster_autotag.corpus.config import CorpusConfig
from dagster_autotag.corpus.rules import RULE_LABELS

RULES_SCHEME = "rules"
MAX_LABELS_PER_ITEM_BUCKET = 4  # 4 stands for "4 or more"
DISTRIBUTION_SCHEMA = {
    "scheme": pl.String,
    "metric": pl.String,
    "key": pl.String,
    "count": pl.Int64,
    "of": pl.String,
    "denominator": pl.Int64,
    "share": pl.Float64,
}


def label_distribution(items: pl.DataFrame, config: CorpusConfig, label_sets: dict[str, list[str]]) -> pl.DataFrame:
    rows: list[tuple] = []

    def add(scheme: str, metric: str, key: str, count: int, of: str, denominator: int) -> None:
        share = count / denominator if denominator else 0.0
        rows.append((scheme, metric, key, int(count), of, int(denominator), share))

    n = items.height
    for name, scheme in config.schemes.items():
        gate, labels = pl.col(scheme.gate_column), pl.col(scheme.labels_column)
        scope = items.filter(gate.is_not_null())
        positives = scope.filter(gate)
        n_scope, n_pos = scope.height, positives.height
        add(name, "items", "", n, "items", n)
        add(name, "in_scope", "", n_scope, "items", n)
        add(name, "gate", "+".join(scheme.gate), n_pos, "in_scope", n_scope)
        counts = dict(
            positives.select(labels.list.explode(keep_nulls=False, empty_as_null=False))
            .to_series()
            .value_counts()
            .iter_rows()
        )
        for label in label_sets[name]:
            add(name, "label", label, counts.get(label, 0), "gate", n_pos)
        add(name, "all_zero", "", int((scope[scheme.labels_column].list.len() == 0).sum()), "in_scope", n_scope)
        per_item = positives[scheme.labels_column].list.len().clip(upper_bound=MAX_LABELS_PER_ITEM_BUCKET)
        per_item_counts = dict(per_item.value_counts().iter_rows())
        for k in range(MAX_LABELS_PER_ITEM_BUCKET + 1):
            key = f"{k}+" if k == MAX_LABELS_PER_ITEM_BUCKET else str(k)
            add(name, "labels_per_item", key, per_item_counts.get(k, 0), "gate", n_pos)
    rule_counts = dict(
        items.select(pl.col(RULE_LABELS).list.explode(keep_nulls=False, empty_as_null=False))
        .to_series()
        .value_counts()
        .iter_rows()
    )
    add(RULES_SCHEME, "items", "", n, "items", n)
    for rule in config.rules:
        add(RULES_SCHEME, "label", rule.label, rule_counts.get(rule.label, 0), "items", n)
    return pl.DataFrame(rows, schema=DISTRIBUTION_SCHEMA, orient="row")


def distribution_markdown(dist: pl.DataFrame, title: str = "") -> str:
    """One Markdown section per scheme: label | items | share, then gate, all-zero, labels per item."""
    out = [f"### {title}"] if title else []
    for scheme in dist["scheme"].unique(maintain_order=True).to_list():
        part = dist.filter(pl.col("scheme") == scheme)

        items, scope, gate, zero = (_metric_row(part, m) for m in ("items", "in_scope", "gate", "all_zero"))
        out.append(f"\n**{scheme}** — {items['count']:,} items")
        if scope:
            out.append(
                f"in scope {scope['count']:,} · gate `{gate['key']}` {gate['count']:,} ({gate['share']:.1%} of scope)"
                f" · all-zero (全0样本) {zero['count']:,} ({zero['share']:.1%} of scope)"
            )
        share_of = "gate" if scope else "items"
        out += ["", f"| label | items | share of {share_of} |", "|---|---:|---:|"]
        for r in part.filter(pl.col("metric") == "label").iter_rows(named=True):
            out.append(f"| {r['key']} | {r['count']:,} | {r['share']:.2%} |")
        per_item = part.filter(pl.col("metric") == "labels_per_item")
        if per_item.height:
            out.append(
                "\nlabels per gate item: "
                + " · ".join(f"{r['key']}: {r['count']:,}" for r in per_item.iter_rows(named=True))
            )
    return "\n".join(out)


def _metric_row(part: pl.DataFrame, metric: str) -> dict | None:
    hit = part.filter(pl.col("metric") == metric)
    return hit.row(0, named=True) if hit.height else None
