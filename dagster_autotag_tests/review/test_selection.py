"""Which items go to review (audit and hard cases), and what corrections do: pure functions."""

from datetime import UTC, datetime
from xml.etree import ElementTree

import numpy as np
import polars as pl
import pytest

from dagster_autotag.review.corrections import (
    annotation_rows,
    apply_corrections,
    audited_precision,
    latest_labels,
    upsert,
)
from dagster_autotag.review.selection import LabelThreshold, ReviewOptions, choose_tasks
from dagster_autotag.review.tasks import choices_result, label_config, task_payloads

GATE, SPY, LAUNCH = "新车资讯", "新车资讯/谍照", "新车资讯/新车上市"


def predictions(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    spy, launch = rng.uniform(size=n), rng.uniform(size=n)
    rows = []
    for i in range(n):
        labels = [GATE] + [lb for lb, p in ((SPY, spy[i]), (LAUNCH, launch[i])) if p >= 0.5]
        scores = [{"label": GATE, "score": 0.9}, {"label": SPY, "score": spy[i]}, {"label": LAUNCH, "score": launch[i]}]
        rows.append(
            {"itemid": f"i{i:04d}", "labels": labels, "scores": scores, "model_name": "m", "model_version": "1"}
        )
    return pl.DataFrame(rows)


def texts(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("itemid", pl.format("text of {}", "itemid").alias("text"))


def test_audit_is_a_uniform_sample_per_label_reproducible_and_never_repeats_an_item():
    rows = predictions(2000)
    options = ReviewOptions(audit_per_label=20, hard_max_items=0)
    tasks, counts = choose_tasks(rows, texts(rows), {}, set(), options, seed=7)
    audit = tasks.filter(pl.col("stream") == "audit")
    per_label = audit.explode("audit_labels")["audit_labels"].value_counts().sort("audit_labels")
    assert dict(per_label.iter_rows()) == {GATE: 20, LAUNCH: 20, SPY: 20}
    assert audit["itemid"].is_unique().all() and counts["audit"] == audit.height
    predicted = dict(zip(rows["itemid"], rows["labels"]))
    assert all(set(a) <= set(predicted[i]) for i, a in audit.select("itemid", "audit_labels").iter_rows())
    assert tasks.equals(choose_tasks(rows, texts(rows), {}, set(), options, seed=7)[0])  # a re-run draws the same
    again, _ = choose_tasks(rows, texts(rows), {}, set(audit["itemid"]), options, seed=7)
    assert not set(again["itemid"]) & set(audit["itemid"])  # sent before: never again

    # uniform: over many days, each SPY item is drawn about equally often (no bias to high scores)
    spy_items = rows.filter(pl.col("labels").list.contains(SPY))
    high = set(spy_items.filter(pl.col("scores").list.get(1).struct.field("score") > 0.75)["itemid"])
    draws = [
        i
        for seed in range(200)
        for i, a in choose_tasks(rows, texts(rows), {}, set(), options, seed)[0]
        .select("itemid", "audit_labels").iter_rows() if SPY in a
    ]  # fmt: skip
    assert abs(np.mean([i in high for i in draws]) - len(high) / spy_items.height) < 0.03


def test_the_audit_cap_shrinks_every_label_evenly():
    rows = predictions(500)
    tasks, _ = choose_tasks(rows, texts(rows), {}, set(), ReviewOptions(audit_per_label=50, audit_max_items=60), 1)
    audit = tasks.filter(pl.col("stream") == "audit")
    assert audit.height <= 60
    counts = audit.explode("audit_labels")["audit_labels"].value_counts()["count"].to_list()
    assert max(counts) - min(counts) <= 0 and max(counts) < 50


def test_hard_cases_near_threshold_needs_data_and_label_issues_take_turns_under_the_cap():
    rows = predictions(400, seed=3)
    thresholds = {
        GATE: LabelThreshold(0.5, "shipped"),
        SPY: LabelThreshold(0.5, "shipped"),
        LAUNCH: LabelThreshold(0.9, "needs data"),
    }
    issues = pl.DataFrame(
        {"itemid": ["old1", "old2", "i0000"], "suggested": [[GATE], [], [GATE]], "text": ["t1", "t2", "t3"],
         "quality": [0.1, 0.01, 0.2]}
    )  # fmt: skip
    editors = pl.DataFrame({"itemid": ["i0005", "i0006"], "labels": [[GATE, LAUNCH], [GATE]]})
    options = ReviewOptions(audit_per_label=0, hard_max_items=6, near_threshold=0.05)
    tasks, counts = choose_tasks(rows, texts(rows), thresholds, {"i0000"}, options, 0, issues, editors)
    hard = tasks.filter(pl.col("stream") == "hard")
    assert hard.height == 6
    reasons = [r.split(":")[0] for rs in hard["reasons"] for r in rs]
    assert reasons.count("label_issue") == 2 and reasons.count("needs_data") == 1  # i0000: sent before
    assert hard["itemid"].to_list()[0] == "old2"  # worst label-quality first
    near = hard.filter(pl.col("reasons").list.first().str.starts_with("near_threshold"))
    scores = rows.explode("scores").unnest("scores").filter(pl.col("label") == SPY)
    gaps = scores.filter(pl.col("itemid").is_in(near["itemid"].implode()))["score"] - 0.5
    assert near.height == 3 and (gaps.abs() <= 0.05).all()
    old = hard.filter(pl.col("itemid") == "old2").row(0, named=True)
    assert old["text"] == "t2" and old["predicted"] == [] and old["model"] == "cleanlab"


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="audit_per_label"):
        ReviewOptions(audit_per_label=-1)
    with pytest.raises(ValueError, match="near_threshold"):
        ReviewOptions(near_threshold=2)


def test_task_payloads_pre_fill_only_known_boxes_and_carry_the_stream():
    odd = """a "quoted" <label> & 'more'"""
    config = ElementTree.fromstring(label_config([GATE, SPY, odd]))
    assert [c.get("value") for c in config.iter("Choice")] == [GATE, SPY, odd]
    assert config.find("Choices").get("choice") == "multiple"
    tasks = pl.DataFrame(
        {"itemid": ["x"], "stream": ["audit"], "reasons": [["audit:" + SPY]], "audit_labels": [[SPY]],
         "predicted": [[GATE, SPY, "retired/label"]], "text": ["正文"], "model": ["m:1"]}
    )  # fmt: skip
    (payload,) = task_payloads(tasks, "p0_newcar", "2024-05-03", [GATE, SPY])
    assert payload["data"]["stream"] == "audit" and payload["data"]["itemid"] == "x"
    assert payload["predictions"][0]["result"] == choices_result([GATE, SPY])


def annotation(aid: int, labels: list[str], updated: str, cancelled: bool = False) -> dict:
    return {"id": aid, "completed_by": 1, "result": choices_result(labels), "was_cancelled": cancelled,
            "created_at": "2024-05-04T01:00:00Z", "updated_at": updated}  # fmt: skip


def test_corrections_upsert_by_annotation_id_never_loses_or_doubles_one():
    tasks = [
        {"id": 10, "data": {"itemid": "a", "stream": "audit", "dt": "2024-05-03"},
         "annotations": [annotation(1, [GATE, SPY], "2024-05-04T01:00:00Z")]},
        {"id": 11, "data": {"itemid": "b", "stream": "hard", "dt": "2024-05-03"},
         "annotations": [annotation(2, [], "2024-05-04T01:00:00Z"), annotation(3, [GATE], "2024-05-04T01:00:00Z", True)]},
    ]  # fmt: skip
    first, skipped = annotation_rows(tasks, "p0_newcar", {1: "rev@x"})
    assert skipped == 1 and first["annotator"].to_list() == ["rev@x", "rev@x"] and first["labels"][1].to_list() == []
    table, changes = upsert(None, first)
    assert changes == {"added": 2, "updated": 0, "unchanged": 0}
    same, changes = upsert(table, first)
    assert same.equals(table) and changes == {"added": 0, "updated": 0, "unchanged": 2}
    tasks[0]["annotations"][0] = annotation(1, [GATE], "2024-05-05T01:00:00Z")  # edited in Label Studio
    del tasks[1]  # deleted there: kept here
    edited, changes = upsert(table, annotation_rows(tasks, "p0_newcar", {})[0])
    assert changes == {"added": 0, "updated": 1, "unchanged": 0}
    assert edited.height == 2 and edited.filter(pl.col("annotation_id") == 1)["labels"].to_list() == [[GATE]]


def test_apply_corrections_replaces_gate_and_labels_of_reviewed_items_only():
    frame = pl.LazyFrame({"itemid": ["a", "b", "c"], "g": [True, True, False], "l": [[SPY], [LAUNCH], []]})
    t = datetime(2024, 5, 4, tzinfo=UTC)
    corrections = pl.DataFrame(
        {"annotation_id": [1, 2, 3], "itemid": ["a", "a", "c"], "scheme": ["s"] * 3,
         "labels": [[GATE, SPY], [], [LAUNCH]], "updated_at": [t, t.replace(day=5), t]}
    )  # fmt: skip
    out = apply_corrections(frame, latest_labels(corrections, "s"), GATE, "g", "l").collect().sort("itemid")
    assert out["g"].to_list() == [
        False,
        True,
        True,
    ]  # a: newest annotation ticks nothing; c: a sub-label implies the gate
    assert out["l"].to_list() == [[], [LAUNCH], [LAUNCH]] and out["reviewed"].to_list() == [True, False, True]


def test_audited_precision_flags_a_label_whose_interval_is_below_the_floor():
    n = 20
    tasks = pl.DataFrame(
        {"itemid": [f"s{i}" for i in range(n)] + [f"l{i}" for i in range(n)], "dt": ["2024-05-03"] * 2 * n,
         "stream": ["audit"] * 2 * n, "audit_labels": [[SPY]] * n + [[LAUNCH]] * n}
    )  # fmt: skip
    t = datetime(2024, 5, 4, tzinfo=UTC)
    labels = [[GATE, SPY]] * 19 + [[GATE]] + [[GATE, LAUNCH]] * 8 + [[GATE]] * 12
    corrections = pl.DataFrame(
        {"annotation_id": range(2 * n), "itemid": tasks["itemid"], "scheme": ["s"] * 2 * n, "labels": labels,
         "updated_at": [t] * 2 * n}
    )  # fmt: skip
    table = audited_precision(tasks, corrections, GATE, "2024-05-05", 28, 0.8, 0.95)
    rows = {r["label"]: r for r in table.iter_rows(named=True)}
    assert rows[SPY]["confirmed"] == 19 and rows[SPY]["audited"] == 20 and not rows[SPY]["flagged"]
    assert rows[LAUNCH]["precision"] == pytest.approx(0.4) and rows[LAUNCH]["flagged"]
    outside = audited_precision(tasks, corrections, GATE, "2024-07-01", 28, 0.8, 0.95)
    assert outside.is_empty()  # older than the window


def test_a_second_kind_that_disagrees_makes_a_hard_case():
    rows = predictions(50, seed=5)
    runner_up = [labels if i % 10 else [GATE] for i, labels in enumerate(rows["labels"].to_list())]
    rows = rows.with_columns(pl.Series("runner_up_labels", runner_up)).with_columns(
        pl.when(pl.col("itemid") == "i0020").then(None).otherwise(pl.col("runner_up_labels")).alias("runner_up_labels")
    )  # i0020: the second kind has no answer for it
    tasks, counts = choose_tasks(rows, texts(rows), {}, set(), ReviewOptions(audit_per_label=0), 0)
    expected = {f"i{i:04d}" for i in range(0, 50, 10) if rows["labels"][i].to_list() != [GATE]} - {"i0020"}
    assert set(tasks["itemid"]) == expected and counts.get("disagrees", 0) == len(expected) > 0
