"""Label-balanced train/dev/test assignment for one scheme (pure: numpy + polars, no I/O).

Units, not items, are assigned: items with the same normalised text hash form one unit, so exact
duplicates never straddle splits. Each unit's label vector (gate + sub-labels, OR over its items)
is packed into one int64 bit mask.

Stratification, in two steps:
1. Units with identical label vectors are interchangeable, so each label combination is split
   proportionally (floor of count × ratio per split, members in random order) — exact for the
   frequent combinations and O(n log n), which matters at tens of millions of items;
2. the few units left over (< number of splits per combination) go through the iterative
   stratification of Sechidis et al. (2011), starting from what each split still lacks per label
   after step 1 (the `iterative-stratification` package cannot start from given counts).
With `holdout_newest_days`, units seen in the newest days form the test split and the rest is
stratified into train/dev.
"""

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from dagster_autotag.options import option

SPLITS = ("train", "dev", "test")
MAX_LABELS = 62  # gate bit + labels must fit an int64 mask


@dataclass(frozen=True)
class SplitOptions:
    ratios: tuple[float, float, float] = option((0.8, 0.1, 0.1), "train, dev and test shares of the units")
    holdout_newest_days: int = option(0, "> 0: the newest N days are the test split")
    seed: int = 0
    rare_min_share: float = option(0.01, "rare: support below this share of gate-positive items …")
    rare_min_count: int = option(50, "… or below this many examples")
    oversample_floor: float = option(0.0, "train only; 0 = off: labels below this share of gate positives …")
    oversample_target: float = option(0.05, "… are oversampled up to this share")
    all_zero_ratio: float = option(0.0, "train only; 0 = off: keep at most ratio × labelled train items")

    def __post_init__(self) -> None:
        if len(self.ratios) != 3 or min(self.ratios) < 0 or not np.isclose(sum(self.ratios), 1.0):
            raise ValueError(f"ratios must be three non-negative shares summing to 1, got {self.ratios}")
        if self.holdout_newest_days < 0:
            raise ValueError("holdout_newest_days must be ≥ 0")
        if self.oversample_floor and self.oversample_target < self.oversample_floor:
            raise ValueError("oversample_target must be ≥ oversample_floor")


@dataclass
class SplitPlan:
    labels: list[str]  # bit j+1 of a mask is labels[j]; bit 0 is the gate
    assignment: pl.DataFrame  # itemid, split, copies (train rebalancing: 0 = dropped, 1 = as is, k = k rows)
    rare_labels: list[str]
    support: dict[str, int]  # label → gate-positive items in the window carrying it
    stats: dict[str, int] = field(default_factory=dict)


def label_mask(gate: str, labels_column: str, labels: list[str]) -> pl.Expr:
    """gate → bit 0, labels[j] → bit j+1 (a sub-label implies its gate, so gate is set too)."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels per scheme, got {len(labels)}")
    bits = [pl.col(gate).fill_null(False).cast(pl.Int64)]
    bits += [pl.col(labels_column).list.contains(lab).cast(pl.Int64) * (1 << (j + 1)) for j, lab in enumerate(labels)]
    return pl.sum_horizontal(bits).alias("mask")


def bits_matrix(masks: np.ndarray, n_bits: int) -> np.ndarray:
    return ((masks[:, None] >> np.arange(n_bits, dtype=np.int64)) & 1).astype(bool)


def plan_splits(items: pl.DataFrame, labels: list[str], options: SplitOptions) -> SplitPlan:
    """items: itemid, dt (date), text_hash, mask (see label_mask), one row per itemid."""
    rng = np.random.default_rng(options.seed)
    n_bits = len(labels) + 1
    # Group on a 64-bit hash of text_hash (strings group several times slower at 10M rows); sorted
    # because group_by order is not deterministic.
    units = (
        items.with_columns(pl.col("text_hash").hash(seed=0).alias("_unit"))
        .group_by("_unit")
        .agg(pl.col("mask").bitwise_or(), pl.col("dt").max(), pl.len().alias("members"))
        .sort("_unit")
    )
    masks = units["mask"].to_numpy()
    split = np.full(units.height, -1, dtype=np.int8)
    ratios = np.array(options.ratios, dtype=float)
    if options.holdout_newest_days:
        days = items["dt"].unique().sort()
        first_holdout = days[max(len(days) - options.holdout_newest_days, 0)]
        split[(units["dt"] >= first_holdout).to_numpy()] = SPLITS.index("test")
        ratios = np.array([ratios[0], ratios[1], 0.0]) / max(ratios[0] + ratios[1], 1e-12)
    free = np.flatnonzero(split < 0)
    split[free] = _stratify(masks[free], ratios, n_bits, rng)

    assignment = (
        items.select("itemid", pl.col("text_hash").hash(seed=0).alias("_unit"), "mask")
        .join(
            pl.DataFrame({"_unit": units["_unit"], "split": np.asarray(SPLITS)[split]}),
            on="_unit",
            how="left",
            maintain_order="left",
        )
        .drop("_unit")
        .sort("itemid")
    )  # rebalancing draws by position: fix the order so a seed gives one plan
    assignment = _rebalance_train(assignment, n_bits, options, rng)
    support, rare = rare_labels(items["mask"].to_numpy(), labels, options)
    stats = {
        "items": items.height,
        "duplicate_groups": int((units["members"] > 1).sum()),
        "items_in_duplicate_groups": int(units.filter(pl.col("members") > 1)["members"].sum() or 0),
        **{f"{s}_items": int((assignment["split"] == s).sum()) for s in SPLITS},
    }
    return SplitPlan(labels, assignment.select("itemid", "split", "copies"), rare, support, stats)


def _stratify(masks: np.ndarray, ratios: np.ndarray, n_bits: int, rng: np.random.Generator) -> np.ndarray:
    n = len(masks)
    out = np.full(n, -1, dtype=np.int8)
    if n == 0:
        return out
    # step 1: per label combination, floor(count × ratio) members to each split in random order
    order = np.lexsort((rng.random(n), masks))
    sorted_masks = masks[order]
    starts = np.flatnonzero(np.r_[True, sorted_masks[1:] != sorted_masks[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)
    bounds = np.cumsum(np.floor(size[:, None] * ratios[None, :]), axis=1)  # per member: cumulative quota
    chosen = (rank[:, None] < bounds).argmax(axis=1)
    placed = rank < bounds[:, -1]
    out[order[placed]] = chosen[placed]
    # step 2: the remainders, towards what each split still lacks per label
    left = order[~placed]
    if len(left):
        y_all = bits_matrix(masks, n_bits)
        placed_y = np.stack([y_all[out == k].sum(axis=0) for k in range(len(ratios))])
        want_labels = ratios[:, None] * y_all.sum(axis=0)[None, :] - placed_y
        want_total = ratios * n - np.bincount(out[out >= 0], minlength=len(ratios))
        out[left] = iterative_stratification(y_all[left], want_labels, want_total, rng)
    return out


def iterative_stratification(
    y: np.ndarray, want_labels: np.ndarray, want_total: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Sechidis, Tsoumakas & Vlahavas (2011), Algorithm 1, starting from given desired counts.

    y: (n, labels) bool. want_labels: (splits, labels) examples each split still wants per label;
    want_total: (splits,) examples each split still wants. Repeatedly take the label with the
    fewest remaining examples and give each of its examples to the split that wants that label
    most (ties: most wanted overall, then random). Examples without labels fill the splits that
    want the most examples. The `iterative-stratification` package implements the same loop but
    derives the desired counts itself, which step 1 of plan_splits needs to set."""
    want_labels = want_labels.astype(float).copy()
    want_total = want_total.astype(float).copy()
    out = np.full(len(y), -1, dtype=np.int8)
    remaining = np.ones(len(y), dtype=bool)
    while remaining.any():
        per_label = y[remaining].sum(axis=0)
        if not per_label.any():
            for i in np.flatnonzero(remaining):
                out[i] = _argmax_random(want_total, rng)
                want_total[out[i]] -= 1
            break
        label = _argmin_positive_random(per_label, rng)
        for i in np.flatnonzero(remaining & y[:, label]):
            wanted = want_labels[:, label]
            best = np.flatnonzero(wanted == wanted.max())
            if len(best) > 1:
                best = best[want_total[best] == want_total[best].max()]
            k = best[rng.integers(len(best))] if len(best) > 1 else best[0]
            out[i] = k
            remaining[i] = False
            want_labels[k, y[i]] -= 1
            want_total[k] -= 1
    return out


def _argmax_random(values: np.ndarray, rng: np.random.Generator) -> int:
    best = np.flatnonzero(values == values.max())
    return int(best[rng.integers(len(best))])


def _argmin_positive_random(values: np.ndarray, rng: np.random.Generator) -> int:
    positive = np.where(values > 0, values, np.iinfo(values.dtype).max)
    best = np.flatnonzero(positive == positive.min())
    return int(best[rng.integers(len(best))])


def rare_labels(masks: np.ndarray, labels: list[str], options: SplitOptions) -> tuple[dict[str, int], list[str]]:
    y = bits_matrix(masks, len(labels) + 1)
    positives = int(y[:, 0].sum())
    support = {lab: int(y[:, j + 1].sum()) for j, lab in enumerate(labels)}
    floor = max(options.rare_min_share * positives, options.rare_min_count)
    return support, [lab for lab in labels if support[lab] < floor]


def _rebalance_train(
    assignment: pl.DataFrame, n_bits: int, options: SplitOptions, rng: np.random.Generator
) -> pl.DataFrame:
    """copies per item: dev/test 1; train: 0 for downsampled all-zero items, k > 1 for oversampled."""
    copies = np.ones(assignment.height, dtype=np.int32)
    train = np.flatnonzero((assignment["split"] == "train").to_numpy())
    y = bits_matrix(assignment["mask"].to_numpy()[train], n_bits)
    if options.all_zero_ratio:
        zero = train[~y[:, 1:].any(axis=1)]
        keep = min(len(zero), int(round(options.all_zero_ratio * (len(train) - len(zero)))))
        copies[rng.choice(zero, size=len(zero) - keep, replace=False)] = 0
    if options.oversample_floor:
        positives = max(int(y[:, 0].sum()), 1)
        for j in np.argsort(y[:, 1:].sum(axis=0)):  # rarest first
            have = np.flatnonzero(y[:, j + 1])
            need = int(np.ceil(options.oversample_target * positives)) - len(have)
            if len(have) and len(have) / positives < options.oversample_floor and need > 0:
                np.add.at(copies, train[rng.choice(have, size=need, replace=True)], 1)
    return assignment.with_columns(pl.Series("copies", copies))


def distribution_table(counts: pl.DataFrame, labels: list[str], gate_name: str) -> pl.DataFrame:
    """counts: split, mask (one row per written row). → label | train | train % | dev | … where %
    is of the split's gate positives (gate and all-zero rows: of the split's rows)."""
    rows = []
    n_bits = len(labels) + 1
    per_split = {}
    for s in SPLITS:
        m = counts.filter(pl.col("split") == s)["mask"].to_numpy()
        y = bits_matrix(m, n_bits) if len(m) else np.zeros((0, n_bits), dtype=bool)
        per_split[s] = (len(m), int(y[:, 0].sum()), y[:, 1:].sum(axis=0), int((~y[:, 1:].any(axis=1)).sum()))
    names = ["(rows)", f"gate: {gate_name}", *labels, "all-zero (全0样本)"]
    for i, name in enumerate(names):
        row = {"label": name}
        for s in SPLITS:
            total, pos, label_counts, zero = per_split[s]
            if i == 0:
                n, d = total, total
            elif i == 1:
                n, d = pos, total
            elif i == len(names) - 1:
                n, d = zero, total
            else:
                n, d = int(label_counts[i - 2]), pos
            row[s] = n
            row[f"{s} %"] = round(100.0 * n / d, 2) if d else 0.0
        rows.append(row)
    return pl.DataFrame(rows)
