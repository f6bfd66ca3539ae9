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

Everything runs on numpy arrays of 64-bit keys (key_expr: itemid and text_hash hashed), masks and
days — about 25 bytes per item — so a 90-day window of 30M items plans in a few GB; strings and
their hashes give the same plan. Items are ordered by key, units by text key, before any random draw.
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
    itemids: pl.Series  # the input's itemid column, in input order
    order: np.ndarray  # plan row i is input row order[i]
    keys: np.ndarray  # uint64 item keys (see item_keys), ascending
    split: np.ndarray  # int8 index into SPLITS, per key
    copies: np.ndarray  # int32 per key (train rebalancing: 0 = dropped, 1 = as is, k = k rows)
    rare_labels: list[str]
    support: dict[str, int]  # label → gate-positive items in the window carrying it
    # mask, items: the label combinations of the planned items (e.g. the share of gate positives
    # with more than one sub-label, for an exclusive scheme)
    mask_counts: pl.DataFrame = field(default_factory=pl.DataFrame)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def assignment(self) -> pl.DataFrame:
        """itemid, split, copies — one row per item (a frame for callers that join on itemid)."""
        return pl.DataFrame(
            {"itemid": self.itemids.gather(self.order), "split": np.asarray(SPLITS)[self.split], "copies": self.copies}
        )


def label_mask(gate: str, labels_column: str, labels: list[str]) -> pl.Expr:
    """gate → bit 0, labels[j] → bit j+1 (a sub-label implies its gate, so gate is set too)."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels per scheme, got {len(labels)}")
    bits = [pl.col(gate).fill_null(False).cast(pl.Int64)]
    bits += [pl.col(labels_column).list.contains(lab).cast(pl.Int64) * (1 << (j + 1)) for j, lab in enumerate(labels)]
    return pl.sum_horizontal(bits).alias("mask")


def key_expr(column: str) -> pl.Expr:
    """The 64-bit key of an itemid or text_hash string. 30M keys collide with probability ≈ 2e-5
    (birthday bound); the keys are what makes a 90-day window fit in memory."""
    return pl.col(column).hash(seed=0)


def item_keys(values: pl.Series) -> np.ndarray:
    """uint64 keys of a column: strings are hashed with key_expr, unsigned 64-bit values are keys already."""
    if values.dtype == pl.UInt64:
        return values.to_numpy()
    return values.to_frame("v").select(key_expr("v"))["v"].to_numpy()


def bits_matrix(masks: np.ndarray, n_bits: int) -> np.ndarray:
    return ((masks[:, None] >> np.arange(n_bits, dtype=np.int64)) & 1).astype(bool)


def bit_counts(masks: np.ndarray, n_bits: int) -> np.ndarray:
    """(n_bits,) items per bit, via the distinct masks (a few hundred) rather than an items × bits matrix."""
    values, counts = np.unique(masks, return_counts=True)
    return (bits_matrix(values, n_bits) * counts[:, None]).sum(axis=0)


def plan_splits(items: pl.DataFrame, labels: list[str], options: SplitOptions) -> SplitPlan:
    """items: itemid, dt (date or day number), text_hash, mask (see label_mask), one row per itemid.
    itemid/text_hash are strings or their uint64 keys (key_expr): both give the same plan. Works on
    numpy arrays of ~25 bytes per item, so tens of millions of items plan in a few GB."""
    rng = np.random.default_rng(options.seed)
    n_bits = len(labels) + 1
    key = item_keys(items["itemid"])
    by_key = np.argsort(key, kind="stable")  # rebalancing draws by position: a seed gives one plan
    key = key[by_key]
    masks = items["mask"].to_numpy().astype(np.int64)[by_key]
    day = items["dt"].to_physical().to_numpy()[by_key]
    unit_keys, unit_of, members = np.unique(
        item_keys(items["text_hash"])[by_key], return_inverse=True, return_counts=True
    )
    # per unit: OR of its items' masks and its newest day
    order = np.argsort(unit_of, kind="stable")
    starts = np.r_[0, np.cumsum(members)[:-1]]
    unit_masks = np.bitwise_or.reduceat(masks[order], starts) if len(order) else masks[:0]
    unit_days = np.maximum.reduceat(day[order], starts) if len(order) else day[:0]
    del order
    unit_split = np.full(len(unit_keys), -1, dtype=np.int8)
    ratios = np.array(options.ratios, dtype=float)
    if options.holdout_newest_days:
        days = np.unique(day)
        first_holdout = days[max(len(days) - options.holdout_newest_days, 0)]
        unit_split[unit_days >= first_holdout] = SPLITS.index("test")
        ratios = np.array([ratios[0], ratios[1], 0.0]) / max(ratios[0] + ratios[1], 1e-12)
    free = np.flatnonzero(unit_split < 0)
    unit_split[free] = _stratify(unit_masks[free], ratios, n_bits, rng)
    split = unit_split[unit_of]
    copies = _rebalance_train(split, masks, n_bits, options, rng)
    support, rare = rare_labels(masks, labels, options)
    stats = {
        "items": len(key),
        "duplicate_groups": int((members > 1).sum()),
        "items_in_duplicate_groups": int(members[members > 1].sum()),
        **{f"{s}_items": int((split == k).sum()) for k, s in enumerate(SPLITS)},
    }
    values, counts = np.unique(masks, return_counts=True)
    mask_counts = pl.DataFrame({"mask": values, "items": counts})
    return SplitPlan(labels, items["itemid"], by_key, key, split, copies, rare, support, mask_counts, stats)


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
    # cumulative quota per combination; a member's split is the number of quotas its rank reached
    bounds = np.cumsum(np.floor(sizes[:, None] * ratios[None, :]), axis=1)
    group = np.repeat(np.arange(len(sizes)), sizes)
    chosen = np.zeros(n, dtype=np.int8)
    for k in range(len(ratios) - 1):
        chosen += rank >= bounds[group, k]
    placed = rank < bounds[group, -1]
    del group
    out[order[placed]] = chosen[placed]
    # step 2: the remainders, towards what each split still lacks per label
    left = order[~placed]
    if len(left):
        placed_y = np.stack([bit_counts(masks[out == k], n_bits) for k in range(len(ratios))])
        want_labels = ratios[:, None] * bit_counts(masks, n_bits)[None, :] - placed_y
        want_total = ratios * n - np.bincount(out[out >= 0], minlength=len(ratios))
        out[left] = iterative_stratification(bits_matrix(masks[left], n_bits), want_labels, want_total, rng)
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
    counts = bit_counts(masks, len(labels) + 1)
    positives = int(counts[0])
    support = {lab: int(counts[j + 1]) for j, lab in enumerate(labels)}
    floor = max(options.rare_min_share * positives, options.rare_min_count)
    return support, [lab for lab in labels if support[lab] < floor]


def _rebalance_train(
    split: np.ndarray, masks: np.ndarray, n_bits: int, options: SplitOptions, rng: np.random.Generator
) -> np.ndarray:
    """copies per item: dev/test 1; train: 0 for downsampled all-zero items, k > 1 for oversampled."""
    copies = np.ones(len(split), dtype=np.int32)
    train = np.flatnonzero(split == SPLITS.index("train"))
    train_masks = masks[train]
    if options.all_zero_ratio:
        zero = train[(train_masks >> 1) == 0]
        keep = min(len(zero), int(round(options.all_zero_ratio * (len(train) - len(zero)))))
        copies[rng.choice(zero, size=len(zero) - keep, replace=False)] = 0
    if options.oversample_floor:
        per_bit = bit_counts(train_masks, n_bits)
        positives = max(int(per_bit[0]), 1)
        for j in np.argsort(per_bit[1:], kind="stable"):  # rarest first
            have = np.flatnonzero((train_masks >> (j + 1)) & 1)
            need = int(np.ceil(options.oversample_target * positives)) - len(have)
            if len(have) and len(have) / positives < options.oversample_floor and need > 0:
                np.add.at(copies, train[rng.choice(have, size=need, replace=True)], 1)
    return copies


def keys_in_two_splits(keys: np.ndarray, split: np.ndarray) -> int:
    """Distinct keys that occur with more than one split value (a sort, not a hash table: 30M rows)."""
    if len(keys) < 2:
        return 0
    order = np.lexsort((split, keys))
    k, s = keys[order], split[order]
    del order
    straddles = (k[1:] == k[:-1]) & (s[1:] != s[:-1])
    return len(np.unique(k[1:][straddles]))


def distribution_table(counts: pl.DataFrame, labels: list[str], gate_name: str) -> pl.DataFrame:
    """counts: split, mask and optionally n (rows with that mask; 1 when absent, i.e. one row per
    written row). → label | train | train % | dev | … where % is of the split's gate positives (gate
    and all-zero rows: of the split's rows)."""
    rows = []
    n_bits = len(labels) + 1
    if "n" not in counts.columns:
        counts = counts.with_columns(pl.lit(1, dtype=pl.Int64).alias("n"))
    counts = counts.with_columns(pl.col("split").cast(pl.String))
    per_split = {}
    for s in SPLITS:
        part = counts.filter(pl.col("split") == s)
        m, n = part["mask"].to_numpy().astype(np.int64), part["n"].to_numpy().astype(np.int64)
        y = bits_matrix(m, n_bits) if len(m) else np.zeros((0, n_bits), dtype=bool)
        label_counts = (y[:, 1:] * n[:, None]).sum(axis=0)
        per_split[s] = (int(n.sum()), int(n[y[:, 0]].sum()), label_counts, int(n[~y[:, 1:].any(axis=1)].sum()))
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
