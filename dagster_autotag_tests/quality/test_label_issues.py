"""cleanlab finds tag errors planted in a dataset whose labels follow keyword cues."""

import json

import polars as pl
import pytest

from dagster_autotag.quality.label_issues import find_label_issues
from dagster_autotag.train.configs import LinearConfig
from dagster_autotag_tests.train.test_scheme_model import GATE, LABELS, rows

SPY = "新车资讯/谍照"


def plant_errors(frame: pl.DataFrame, n: int) -> tuple[pl.DataFrame, set[str]]:
    """Drop 谍照 from n items whose text says 谍照曝光, and add it to n gate items whose text does not."""
    has_cue = frame["text"].str.contains("谍照曝光")
    dropped = frame.filter(has_cue & frame["labels"].list.contains(SPY)).head(n)["itemid"].to_list()
    added = frame.filter(frame["gate"] & ~has_cue).head(n)["itemid"].to_list()
    labels = [
        [x for x in ls if x != SPY] if i in dropped else sorted([*ls, SPY]) if i in added else ls
        for i, ls in zip(frame["itemid"], frame["labels"].to_list(), strict=True)
    ]
    planted = frame.with_columns(pl.Series("labels", labels, dtype=pl.List(pl.String)))
    return planted, set(dropped) | set(added)


@pytest.fixture(scope="module")
def noisy_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("datasets") / "p0_noisy"
    path.mkdir()
    train, planted = plant_errors(rows(800, 0), 12)
    train.write_parquet(path / "train.parquet")
    rows(200, 1).write_parquet(path / "dev.parquet")
    manifest = {"scheme": "p0_noisy", "gate": [GATE], "labels": LABELS, "rare_labels": []}
    (path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return path, planted


def test_planted_tag_errors_are_found_and_ranked_first(noisy_dataset):
    path, planted = noisy_dataset
    found = find_label_issues(path, folds=5, config=LinearConfig(min_df=1))
    assert found.rows_checked == 1000
    issues = found.issues
    assert planted <= set(issues["itemid"].to_list())  # every planted error is reported …
    assert issues["quality"].is_sorted()  # … worst first, and the planted ones near the top
    assert len(planted & set(issues.head(30)["itemid"].to_list())) >= 0.75 * len(planted)
    by_item = {r["itemid"]: r for r in issues.iter_rows(named=True)}
    for item in planted:  # the suggestion undoes the planted change
        assert (SPY in by_item[item]["given"]) != (SPY in by_item[item]["suggested"])
    assert issues.filter(pl.col("confident")).height > 0


def test_fewer_than_two_folds_is_refused(noisy_dataset):
    with pytest.raises(ValueError, match="at least 2 folds, got 1"):
        find_label_issues(noisy_dataset[0], folds=1)
