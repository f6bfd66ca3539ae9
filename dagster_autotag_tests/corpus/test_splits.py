"""Split planning: stratification quality, duplicates, hold-out days, rebalancing, rare labels."""

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from dagster_autotag.corpus.splits import (
    SPLITS,
    SplitOptions,
    bits_matrix,
    distribution_table,
    iterative_stratification,
    label_mask,
    plan_splits,
)

LABELS = [f"新车资讯/l{j}" for j in range(8)]
PREVALENCE = [0.6, 0.2, 0.1, 0.05, 0.03, 0.012, 0.006, 0.002]  # of gate positives, like the seed


def synthetic(n: int, seed: int = 0, days: int = 10, dup_share: float = 0.0) -> pl.DataFrame:
    """n items: 20% gate positives with independent sub-labels; a share of exact duplicates."""
    rng = np.random.default_rng(seed)
    gate = rng.random(n) < 0.2
    y = (rng.random((n, len(LABELS))) < np.array(PREVALENCE)) & gate[:, None]
    hashes = np.array([f"h{i}" for i in range(n)], dtype=object)
    dups = rng.random(n) < dup_share
    hashes[dups] = hashes[rng.integers(0, n, size=int(dups.sum()))]
    frame = pl.DataFrame(
        {
            "itemid": [f"i{i}" for i in range(n)],
            "dt": [date(2024, 5, 1) + timedelta(days=int(d)) for d in rng.integers(0, days, size=n)],
            "text_hash": hashes.astype(str),
            "gate": gate,
            "labels": [[LABELS[j] for j in np.flatnonzero(row)] for row in y],
        },
        schema_overrides={"labels": pl.List(pl.String)},
    )
    return frame.with_columns(label_mask("gate", "labels", LABELS))


def joined(items: pl.DataFrame, plan) -> pl.DataFrame:
    return items.join(plan.assignment, on="itemid")


def label_shares(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """split → share of rows carrying each bit (gate + labels)."""
    out = {}
    for s in SPLITS:
        m = frame.filter(pl.col("split") == s)["mask"].to_numpy()
        out[s] = bits_matrix(m, len(LABELS) + 1).mean(axis=0)
    return out


def test_every_item_gets_exactly_one_split_in_the_requested_ratios():
    items = synthetic(20_000)
    plan = plan_splits(items, LABELS, SplitOptions())
    assert plan.assignment["itemid"].is_unique().all() and plan.assignment.height == items.height
    counts = plan.assignment["split"].value_counts()
    got = {s: n / items.height for s, n in counts.iter_rows()}
    assert got == pytest.approx({"train": 0.8, "dev": 0.1, "test": 0.1}, abs=0.002)


def test_label_ratios_match_across_splits_even_for_rare_labels():
    items = synthetic(50_000, seed=1)
    frame = joined(items, plan_splits(items, LABELS, SplitOptions(seed=3)))
    overall = bits_matrix(items["mask"].to_numpy(), len(LABELS) + 1).mean(axis=0)
    shares = label_shares(frame)
    for s in SPLITS:
        # relative deviation ≤ 3% for every label, down to the 0.04%-of-items one
        assert np.allclose(shares[s], overall, rtol=0.03, atol=1e-4), (s, shares[s], overall)


def test_stratification_beats_a_random_split():
    items = synthetic(20_000, seed=2)
    rare = len(LABELS)  # bit of the rarest label
    plan = plan_splits(items, LABELS, SplitOptions(seed=0))
    counts = joined(items, plan).group_by("split").agg((pl.col("mask") & (1 << rare) > 0).sum().alias("n"))
    total = int(counts["n"].sum())
    dev = counts.filter(pl.col("split") == "dev")["n"].item()
    assert abs(dev - 0.1 * total) <= 1  # iterative stratification: off by at most one example


def test_exact_duplicates_never_straddle_splits():
    items = synthetic(10_000, seed=4, dup_share=0.15)
    frame = joined(items, plan_splits(items, LABELS, SplitOptions()))
    per_hash = frame.group_by("text_hash").agg(pl.col("split").n_unique().alias("splits"), pl.len().alias("n"))
    assert per_hash.filter(pl.col("n") > 1).height > 500  # the test has real duplicate groups
    assert per_hash["splits"].max() == 1


def test_holdout_newest_days_form_the_test_split():
    items = synthetic(10_000, seed=5, days=10)
    plan = plan_splits(items, LABELS, SplitOptions(holdout_newest_days=2))
    frame = joined(items, plan)
    newest = {date(2024, 5, 9), date(2024, 5, 10)}
    assert set(frame.filter(pl.col("split") == "test")["dt"].unique().to_list()) == newest
    assert frame.filter(pl.col("dt").is_in(list(newest)))["split"].unique().to_list() == ["test"]
    train_dev = frame.filter(pl.col("split") != "test")["split"].value_counts()
    ratio = dict(train_dev.iter_rows())
    assert ratio["dev"] / (ratio["dev"] + ratio["train"]) == pytest.approx(1 / 9, abs=0.005)


def test_holdout_moves_a_whole_duplicate_group_to_test():
    items = pl.DataFrame(
        {
            "itemid": ["old", "new", "other"],
            "dt": [date(2024, 5, 1), date(2024, 5, 3), date(2024, 5, 1)],
            "text_hash": ["same", "same", "x"],
            "mask": [1, 1, 0],
        }
    )
    plan = plan_splits(items, LABELS, SplitOptions(holdout_newest_days=1))
    assert dict(plan.assignment.select("itemid", "split").iter_rows()) | {} == {
        "old": "test",
        "new": "test",
        "other": plan.assignment.filter(pl.col("itemid") == "other")["split"].item(),
    }
    assert plan.assignment.filter(pl.col("itemid") == "other")["split"].item() in ("train", "dev")


def test_same_seed_same_plan_other_seed_other_plan():
    items = synthetic(5_000, seed=6)
    a = plan_splits(items, LABELS, SplitOptions(seed=1)).assignment.sort("itemid")
    b = plan_splits(items, LABELS, SplitOptions(seed=1)).assignment.sort("itemid")
    c = plan_splits(items, LABELS, SplitOptions(seed=2)).assignment.sort("itemid")
    assert a.equals(b) and not a.equals(c)


def test_tiny_inputs_still_split():
    items = synthetic(7, seed=7)
    plan = plan_splits(items, LABELS, SplitOptions())
    assert plan.assignment.height == 7 and set(plan.assignment["split"]) <= set(SPLITS)


def test_rare_labels_by_share_of_gate_positives_or_count():
    items = synthetic(50_000, seed=8)  # ~10k gate positives
    plan = plan_splits(items, LABELS, SplitOptions(rare_min_share=0.01, rare_min_count=50))
    # l5 ≈ 1.2% (~120) passes; l6 ≈ 0.6% and l7 ≈ 0.2% are below 1% of gate positives
    assert plan.rare_labels == ["新车资讯/l6", "新车资讯/l7"]
    assert plan.support["新车资讯/l0"] > 5000
    small = plan_splits(synthetic(3_000, seed=8), LABELS, SplitOptions(rare_min_share=0.01, rare_min_count=50))
    assert "新车资讯/l4" in small.rare_labels  # 3% of ~600 = ~18 < 50 examples


def test_rebalancing_touches_train_only():
    items = synthetic(30_000, seed=9)
    options = SplitOptions(all_zero_ratio=1.0, oversample_floor=0.02, oversample_target=0.05, seed=1)
    plan = plan_splits(items, LABELS, options)
    frame = joined(items, plan)
    assert (frame.filter(pl.col("split") != "train")["copies"] == 1).all()
    train = frame.filter(pl.col("split") == "train")
    expanded = train.select(pl.col("mask").repeat_by("copies").list.explode(keep_nulls=False, empty_as_null=False))
    y = bits_matrix(expanded["mask"].to_numpy(), len(LABELS) + 1)
    zero = (~y[:, 1:].any(axis=1)).sum()
    assert zero == pytest.approx((~y[:, 1:].any(axis=1) == False).sum(), rel=0.15)  # noqa: E712  ≈ 1:1
    positives = y[:, 0].sum()
    for j, p in enumerate(PREVALENCE):
        share = y[:, j + 1].sum() / positives
        if p < 0.02:
            assert share >= 0.045, (LABELS[j], share)  # raised to ~the target share
    dev = bits_matrix(frame.filter(pl.col("split") == "dev")["mask"].to_numpy(), len(LABELS) + 1)
    assert dev[:, len(LABELS)].sum() / max(dev[:, 0].sum(), 1) < 0.01  # dev keeps the real distribution


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="ratios"):
        SplitOptions(ratios=(0.5, 0.3, 0.3))
    with pytest.raises(ValueError, match="oversample_target"):
        SplitOptions(oversample_floor=0.1, oversample_target=0.05)


def test_distribution_table_has_the_seed_layout():
    items = synthetic(2_000, seed=10)
    frame = joined(items, plan_splits(items, LABELS, SplitOptions()))
    table = distribution_table(frame.select("split", "mask"), LABELS, "新车资讯")
    assert table.columns == ["label", "train", "train %", "dev", "dev %", "test", "test %"]
    assert table["label"].to_list() == ["(rows)", "gate: 新车资讯", *LABELS, "all-zero (全0样本)"]
    assert table.row(0)[1] + table.row(0)[3] + table.row(0)[5] == 2_000


def test_every_label_lands_within_a_few_examples_of_its_target_per_split():
    items = synthetic(30_000, seed=11)
    frame = joined(items, plan_splits(items, LABELS, SplitOptions(seed=5)))
    y_all = bits_matrix(items["mask"].to_numpy(), len(LABELS) + 1)
    for k, s in enumerate(SPLITS):
        got = bits_matrix(frame.filter(pl.col("split") == s)["mask"].to_numpy(), len(LABELS) + 1).sum(axis=0)
        target = SplitOptions().ratios[k] * y_all.sum(axis=0)
        # rare labels are placed first and land within one example; common ones absorb the rest
        assert np.all(np.abs(got - target) <= np.maximum(3.0, 0.01 * target)), (s, got, target)
        assert np.all(np.abs(got - target)[-3:] <= 1.0 + 1e-9), (s, got, target)


def test_iterative_stratification_alone_meets_given_targets():
    rng = np.random.default_rng(0)
    y = rng.random((300, 5)) < [0.5, 0.2, 0.1, 0.05, 0.02]
    want_labels = np.array([0.6, 0.2, 0.2])[:, None] * y.sum(axis=0)[None, :]
    out = iterative_stratification(y, want_labels, np.array([180.0, 60.0, 60.0]), rng)
    for k in range(3):
        assert np.all(np.abs(y[out == k].sum(axis=0) - want_labels[k]) <= 1.0 + 1e-9)
    assert abs((out == 0).sum() - 180) <= 6
