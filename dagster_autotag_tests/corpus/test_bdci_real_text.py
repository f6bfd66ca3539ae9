"""Real multi-label text end to end: BDCI 2018 car reviews through ingest → clean → corpus → datasets.

8,290 reviews with 1–4 of 10 aspects each become Hive exports (one news_pool row per text × aspect,
the aspects as level-2 tags under 车评) spread over three days, are materialised through Dagster,
and split by `datasets/bdci`. Every text must keep exactly its aspects, sit in exactly one split,
and each frequent aspect must keep its share in every split.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from dagster_autotag.corpus.config import parse_corpus_config
from dagster_autotag.definitions import build_definitions
from dagster_autotag.resources import LakeResource, LandingExportSource
from dagster_autotag_tests.corpus.bdci import BDCI_CSV, PARENT_NAME, expected_aspects, read_reviews, write_bdci_landing

pytestmark = pytest.mark.shared_data

DAYS = ["2024-03-01", "2024-03-02", "2024-03-03"]
SCHEME = "bdci"
DATASET_KEY = dg.AssetKey(["datasets", SCHEME])
SPLITS = ("train", "dev", "test")
RATIO_TOLERANCE = 0.02  # absolute, for labels with at least MIN_SUPPORT examples
MIN_SUPPORT = 200
PREFIX = PARENT_NAME + "/"


@dataclass
class Materialised:
    lake: Path
    expected: dict[str, frozenset[str]]  # content_id → aspects (the CSV)
    daily_results: list[dg.ExecuteInProcessResult]
    dataset_result: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def bdci(tmp_path_factory: pytest.TempPathFactory) -> Materialised:
    if not BDCI_CSV.is_file():
        pytest.skip(f"BDCI 2018 data not found at {BDCI_CSV}")
    home = tmp_path_factory.mktemp("bdci")
    reviews = read_reviews()
    write_bdci_landing(home / "landing", reviews, DAYS)
    config = parse_corpus_config(
        {"schemes": {SCHEME: {"gate": [PARENT_NAME], "label_level": 2, "description": "BDCI 2018 car aspects"}}},
        source="test_bdci_real_text",
    )
    defs = build_definitions(
        export_source=LandingExportSource(landing_dir=str(home / "landing")),
        lake=LakeResource(home=str(home)),
        corpus_config=config,
    )
    assets, resources = list(defs.assets), dict(defs.resources)
    daily = dg.AssetSelection.groups("ingest", "clean", "corpus")
    daily_results = [
        dg.materialize(assets, partition_key=dt, resources=resources, selection=daily, raise_on_error=False)
        for dt in DAYS
    ]
    dataset_result = dg.materialize(
        assets,
        resources=resources,
        selection=[DATASET_KEY],
        run_config={"ops": {f"datasets__{SCHEME}": {"config": {"window_days": len(DAYS)}}}},
        raise_on_error=False,
    )
    return Materialised(home / "lake", expected_aspects(reviews), daily_results, dataset_result)


def aspects_of(labels: list[str]) -> frozenset[str]:
    assert all(label.startswith(PREFIX) for label in labels), labels
    return frozenset(label[len(PREFIX) :] for label in labels)


def check_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.asset_check_key.name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def read_splits(lake: Path) -> dict[str, pl.DataFrame]:
    return {s: pl.read_parquet(lake / "datasets" / SCHEME / f"{s}.parquet") for s in SPLITS}


def test_every_day_materialises_through_dagster(bdci: Materialised):
    for dt, result in zip(DAYS, bdci.daily_results):
        assert result.success, dt
        outcomes = check_outcomes(result)
        # raw/asr, raw/ocr, clean/video_* are empty on purpose: only their not_empty WARN may fail
        failed = {k for k, passed in outcomes.items() if not passed}
        assert failed <= {f"{t}:not_empty" for t in ("raw/asr", "raw/ocr", "clean/video_asr", "clean/video_ocr")}, (
            dt,
            failed,
        )
        assert outcomes["corpus/items:itemid_unique"], dt
    assert bdci.dataset_result.success


def test_corpus_items_keep_every_text_with_exactly_its_aspects(bdci: Materialised):
    items = pl.read_parquet(bdci.lake / "corpus" / "items" / "dt=*" / "*.parquet", hive_partitioning=True)
    assert items.height == len(bdci.expected) == 8_290
    assert items["itemid"].is_unique().all()
    assert items[f"{SCHEME}_gate"].all()  # every text has an aspect, so every item is gate-positive
    got = {cid: aspects_of(labels) for cid, labels in items.select("itemid", f"{SCHEME}_labels").iter_rows()}
    assert got == bdci.expected
    # content labels: the aspects plus their parent, nothing else
    for cid, labels in items.select("itemid", "content_labels").head(200).iter_rows():
        assert set(labels) == {PARENT_NAME} | {PREFIX + a for a in bdci.expected[cid]}


def test_split_files_hold_every_text_once_with_its_aspects(bdci: Materialised):
    splits = read_splits(bdci.lake)
    seen: dict[str, str] = {}
    for split, frame in splits.items():
        assert frame.height > 0, split
        assert frame["itemid"].is_unique().all(), split  # no oversampling configured: one row per item
        for cid, labels in frame.select("itemid", "labels").iter_rows():
            assert cid not in seen, f"{cid} in {seen[cid]} and {split}"
            seen[cid] = split
            assert aspects_of(labels) == bdci.expected[cid], cid
    assert set(seen) == set(bdci.expected)
    # exact-duplicate texts (after normalisation) share a split
    both = pl.concat([f.select("text_hash", pl.lit(s).alias("split")) for s, f in splits.items()])
    assert both.group_by("text_hash").agg(pl.col("split").n_unique()).filter(pl.col("split") > 1).is_empty()


def test_each_frequent_aspect_keeps_its_share_in_every_split(bdci: Materialised):
    splits = read_splits(bdci.lake)
    total_rows = sum(f.height for f in splits.values())
    sizes = {s: f.height / total_rows for s, f in splits.items()}
    assert sizes["train"] == pytest.approx(0.8, abs=0.01)
    assert sizes["dev"] == pytest.approx(0.1, abs=0.01) and sizes["test"] == pytest.approx(0.1, abs=0.01)
    support: dict[str, int] = {}
    for aspects in bdci.expected.values():
        for a in aspects:
            support[a] = support.get(a, 0) + 1
    frequent = sorted(a for a, n in support.items() if n >= MIN_SUPPORT)
    assert len(frequent) == 10
    deviations = {}
    for aspect in frequent:
        overall = support[aspect] / total_rows
        for split, frame in splits.items():
            share = frame["labels"].list.contains(PREFIX + aspect).mean()
            deviations[(aspect, split)] = abs(share - overall)
    worst = max(deviations, key=deviations.get)
    assert deviations[worst] <= RATIO_TOLERANCE, (worst, deviations[worst])


def test_dataset_checks_pass(bdci: Materialised):
    outcomes = check_outcomes(bdci.dataset_result)
    assert outcomes == {
        f"datasets/{SCHEME}:labels_in_every_split": True,
        f"datasets/{SCHEME}:no_item_in_two_splits": True,
        f"datasets/{SCHEME}:sub_label_implies_gate": True,
    }
