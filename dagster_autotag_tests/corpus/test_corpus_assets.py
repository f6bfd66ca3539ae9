"""corpus/* and datasets/* materialised through Dagster on generated sample days."""

import json

import dagster as dg
import duckdb
import polars as pl
import pytest

from dagster_autotag.corpus.dataset import CORPUS_ITEMS, CORPUS_LAYER
from dagster_autotag.definitions import build_definitions
from dagster_autotag.lake import write_partition
from dagster_autotag.resources import LakeResource, LandingExportSource
from dagster_autotag.sample.generator import generate_landing
from dagster_autotag_tests.test_definitions import check_outcomes, materializations

DAYS = ["2024-04-20", "2024-04-21", "2024-04-22"]


def definitions(home) -> dg.Definitions:
    return build_definitions(
        export_source=LandingExportSource(landing_dir=str(home / "landing")), lake=LakeResource(home=str(home))
    )


def daily_assets(defs: dg.Definitions) -> list:
    """ingest → clean → corpus (predictions are daily too, but need a trained champion; review/tasks
    needs predictions and a Label Studio)."""
    later = {"predictions", "review_tasks"}
    return [a for a in defs.assets if a.partitions_def is not None and not later & set(a.group_names_by_key.values())]


def dataset_asset(defs: dg.Definitions, scheme: str):
    return next(a for a in defs.assets if dg.AssetKey(["datasets", scheme]) in a.keys)


def run_config(scheme: str, **config) -> dict:
    return {"ops": {f"datasets__{scheme}": {"config": {"window_days": 3, **config}}}}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Three sample days (600 items each) through ingest → clean → corpus."""
    home = tmp_path_factory.mktemp("corpus_home")
    generate_landing(home / "landing", len(DAYS), DAYS[0], 600, 0)
    defs = definitions(home)
    for dt in DAYS:
        result = dg.materialize(daily_assets(defs), partition_key=dt, resources=defs.resources)
        assert result.success and all(check_outcomes(result).values()), check_outcomes(result)
    return home


def test_corpus_partition_metadata_and_chart(home):
    defs = definitions(home)
    result = dg.materialize(
        daily_assets(defs),
        partition_key=DAYS[-1],
        resources=defs.resources,
        selection=dg.AssetSelection.groups("corpus"),
    )
    meta = materializations(result)
    items_meta, dist_meta = meta["corpus/items"], meta["corpus/label_distribution"]
    assert "yichehao_video" in items_meta["join_coverage"].value
    assert "新车资讯/新车解析" in items_meta["label_counts"].value
    assert "全0样本" in items_meta["label_counts"].value
    assert items_meta["items_with_unknown_tag_ids"].value > 0  # series/brand ids are not content tags
    assert dist_meta["chart"].value.startswith("![label distribution")
    assert dist_meta["chart_missing_glyphs"].value == 0 and dist_meta["chart_note"].value == "ok"
    assert "| 新车资讯/谍照 |" in dist_meta["distribution"].value
    folder = home / "lake" / "corpus" / "label_distribution" / f"dt={DAYS[-1]}"
    assert (folder / "chart.png").stat().st_size > 10_000


def test_without_any_cjk_font_the_distribution_is_written_and_the_metadata_says_why(home, monkeypatch):
    from matplotlib import font_manager

    from dagster_autotag import charts

    monkeypatch.setattr(charts, "_found", None)
    monkeypatch.delenv(charts.FONT_ENV, raising=False)
    monkeypatch.setattr(charts, "bundled_font_path", lambda: None)
    manager = font_manager.fontManager
    monkeypatch.setattr(manager, "ttflist", [e for e in manager.ttflist if e.name not in charts.CJK_FAMILIES])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    defs = definitions(home)
    result = dg.materialize(
        daily_assets(defs),
        partition_key=DAYS[0],
        resources=defs.resources,
        selection=dg.AssetSelection.assets(dg.AssetKey(["corpus", "label_distribution"])),
    )
    assert result.success
    meta = materializations(result)["corpus/label_distribution"]
    assert meta["chart"].value.startswith("_no chart: no CJK font") and meta["chart_font"].value == "none"
    assert meta["chart_note"].value.startswith("no CJK font")
    folder = home / "lake" / "corpus" / "label_distribution" / f"dt={DAYS[0]}"
    assert (folder / "part-0.parquet").exists() and not (folder / "chart.png").exists()


def test_analysts_can_query_the_corpus_and_distribution_with_duckdb(home):
    lake = home / "lake"
    with duckdb.connect() as con:
        per_day = con.sql(
            f"SELECT dt, count(*) n, sum(p0_newcar_gate::INT) gate FROM read_parquet('{lake}/corpus/items/*/*.parquet',"
            " hive_partitioning = true) GROUP BY dt ORDER BY dt"
        ).fetchall()
        assert [str(r[0]) for r in per_day] == DAYS and all(r[1] > 500 and r[2] > 50 for r in per_day)
        share = con.sql(
            f"SELECT share FROM read_parquet('{lake}/corpus/label_distribution/*/*.parquet') "
            "WHERE scheme = 'p0_newcar' AND metric = 'label' AND key = '新车资讯/新车解析' LIMIT 1"
        ).fetchall()[0][0]
        assert 0.5 < share < 0.85  # the generator's 新车解析 prevalence among gate items (~67%)


def test_dataset_splits_files_manifest_and_checks(home):
    defs = definitions(home)
    result = dg.materialize(
        [dataset_asset(defs, "p0_newcar")], resources=defs.resources, run_config=run_config("p0_newcar")
    )
    assert result.success
    outcomes = check_outcomes(result)
    assert outcomes["datasets/p0_newcar:no_item_in_two_splits"] is True
    assert outcomes["datasets/p0_newcar:sub_label_implies_gate"] is True

    folder = home / "lake" / "datasets" / "p0_newcar"
    # the split table the demo prints (the step only logs it: its prints reach the console only now and then)
    assert "| gate: 新车资讯 |" in (folder / "distribution.md").read_text(encoding="utf-8")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["window"] == {"start": DAYS[0], "end": DAYS[-1], "days": 3, "partitions": 3}
    assert "新车资讯/新车到店" in manifest["rare_labels"]  # ~1% of ~300 gate items: < 50 examples
    assert "新车资讯/新车解析" not in manifest["rare_labels"]
    splits = {s: pl.read_parquet(folder / f"{s}.parquet") for s in ("train", "dev", "test")}
    assert {s: f.height for s, f in splits.items()} == manifest["rows"]
    everything = pl.concat(splits.values())
    assert everything["itemid"].is_unique().all()
    corpus = pl.read_parquet(home / "lake" / "corpus" / "items" / "*" / "*.parquet")
    assert everything.height == corpus.filter(pl.col("p0_newcar_gate").is_not_null()).height
    assert 0.75 < manifest["rows"]["train"] / everything.height < 0.85
    meta = materializations(result)["datasets/p0_newcar"]
    assert "gate: 新车资讯" in meta["distribution"].value


def test_label_issues_asset_ranks_the_splits_rows_after_the_dataset(home):
    defs = definitions(home)
    issues_key = dg.AssetKey(["quality", "label_issues", "p0_newcar"])
    issues_asset = next(a for a in defs.assets if issues_key in a.keys)
    result = dg.materialize(
        [dataset_asset(defs, "p0_newcar"), issues_asset],
        resources=defs.resources,
        run_config={
            "ops": {**run_config("p0_newcar")["ops"], "quality__label_issues__p0_newcar": {"config": {"folds": 3}}}
        },
    )
    assert result.success
    meta = materializations(result)["quality/label_issues/p0_newcar"]
    issues = pl.read_parquet(home / "lake" / "quality" / "label_issues" / "p0_newcar" / "label_issues.parquet")
    manifest = json.loads((home / "lake" / "datasets" / "p0_newcar" / "manifest.json").read_text(encoding="utf-8"))
    assert meta["rows_checked"].value <= manifest["rows"]["train"] + manifest["rows"]["dev"]
    assert meta["issues"].value == issues.height and issues["quality"].is_sorted()
    assert issues.columns == ["itemid", "split", "given", "suggested", "quality", "confident", "text"]
    assert (issues["given"] != issues["suggested"]).all()


def test_dataset_rerun_is_identical_and_holdout_uses_the_newest_day(home):
    defs = definitions(home)
    folder = home / "lake" / "datasets" / "p1_guide"
    asset = [dataset_asset(defs, "p1_guide")]
    dg.materialize(asset, resources=defs.resources, run_config=run_config("p1_guide"))
    first = (folder / "train.parquet").read_bytes()
    dg.materialize(asset, resources=defs.resources, run_config=run_config("p1_guide"))
    assert (folder / "train.parquet").read_bytes() == first

    dg.materialize(asset, resources=defs.resources, run_config=run_config("p1_guide", holdout_newest_days=1))
    test = pl.read_parquet(folder / "test.parquet")
    assert test["dt"].unique().cast(pl.String).to_list() == [DAYS[-1]]
    assert not list((home / "lake" / "_staging").iterdir())  # nothing left behind


def test_rebalancing_options_only_change_train(home):
    defs = definitions(home)
    folder = home / "lake" / "datasets" / "p0_newcar"
    asset = [dataset_asset(defs, "p0_newcar")]
    dg.materialize(asset, resources=defs.resources, run_config=run_config("p0_newcar"))
    plain = {s: pl.read_parquet(folder / f"{s}.parquet") for s in ("train", "dev")}
    config = run_config("p0_newcar", all_zero_ratio=1.0, oversample_floor=0.05, oversample_target=0.08)
    dg.materialize(asset, resources=defs.resources, run_config=config)
    train = pl.read_parquet(folder / "train.parquet")
    assert pl.read_parquet(folder / "dev.parquet").equals(plain["dev"])
    originals = train.filter(pl.col("copy") == 0)
    zero = originals.filter(pl.col("labels").list.len() == 0).height
    assert zero == pytest.approx(originals.height - zero, abs=1)  # all-zero downsampled to 1:1
    assert (train["copy"] > 0).any()  # rare labels oversampled; copies are marked
    assert train.filter(pl.col("copy") == 0)["itemid"].is_unique().all()


def test_inconsistent_or_leaking_rows_fail_the_blocking_checks(tmp_path):
    """A hand-made corpus partition whose gate contradicts its labels (e.g. written by an older
    scheme definition) must fail sub_label_implies_gate."""
    lake = tmp_path / "lake"
    rows = pl.DataFrame(
        {
            "itemid": ["a", "b", "c", "d"],
            "dtype": ["news"] * 4,
            "create_time": [None] * 4,
            "text": ["一", "二", "三", "四"],
            "text_hash": ["h1", "h2", "h3", "h4"],
            "p0_newcar_gate": [True, False, False, True],
            "p0_newcar_labels": [["新车资讯/谍照"], ["新车资讯/谍照"], [], []],
        },
        schema_overrides={"create_time": pl.Datetime("us", "Asia/Shanghai"), "p0_newcar_labels": pl.List(pl.String)},
    )
    write_partition(lake, CORPUS_LAYER, CORPUS_ITEMS, DAYS[0], rows)
    tags = pl.DataFrame(
        {
            "tag_id": ["30100", "30101"],
            "tag_name": ["新车资讯", "谍照"],
            "level": [1, 2],
            "parent_id": [None, "30100"],
            "id_path": [["30100"], ["30100", "30101"]],
            "name_path": ["新车资讯", "新车资讯/谍照"],
        },
        schema_overrides={"level": pl.Int8},
    )
    write_partition(lake, "clean", "tags", DAYS[0], tags)
    defs = definitions(tmp_path)
    result = dg.materialize(
        [dataset_asset(defs, "p0_newcar")],
        resources=defs.resources,
        run_config=run_config("p0_newcar"),
        raise_on_error=False,
    )
    outcomes = check_outcomes(result)
    assert outcomes["datasets/p0_newcar:sub_label_implies_gate"] is False
    assert outcomes["datasets/p0_newcar:no_item_in_two_splits"] is True
