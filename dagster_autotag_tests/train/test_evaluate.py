import json

import numpy as np
import pytest

from dagster_autotag.train.evaluate import evaluate, to_json

LABELS = ["新车资讯/新车上市", "导购/报价", "新车资讯/谍照", "用车/保养"]  # A, B, C, D (D never occurs)
#            A     B     C     D
PROBS = np.array(
    [
        [0.90, 0.30, 0.70, 0.00],  # gold A B   → pred A C
        [0.20, 0.60, 0.10, 0.00],  # gold A     → pred B
        [0.10, 0.10, 0.80, 0.00],  # gold C     → pred C
        [0.55, 0.20, 0.20, 0.10],  # gold -     → pred A
        [0.10, 0.40, 0.90, 0.00],  # gold B     → pred C
    ]
)
GOLD = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
PRED = PROBS >= 0.5
TEXTS = [f"文本{i}" for i in range(5)]
IDS = [f"n{i}" for i in range(5)]


@pytest.fixture(scope="module")
def ev():
    return evaluate(GOLD, PRED, PROBS, LABELS, TEXTS, IDS)


def test_per_label_counts_and_scores(ev):
    t = {row["label"]: row for row in ev.per_label.to_dicts()}
    a, b, c, d = (t[name] for name in LABELS)
    assert (a["right"], a["predict"], a["standard"], a["support"]) == (1, 2, 2, 2)
    assert (a["precision"], a["recall"], a["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (b["right"], b["predict"], b["standard"]) == (0, 1, 2)
    assert (b["precision"], b["recall"], b["f1"]) == (0.0, 0.0, 0.0)
    assert (c["right"], c["predict"], c["standard"]) == (1, 3, 1)
    assert (c["precision"], c["recall"], c["f1"]) == pytest.approx((1 / 3, 1.0, 0.5))
    assert (d["right"], d["predict"], d["standard"], d["f1"]) == (0, 0, 0, 0.0)
    # A ranked: .9 (+), .55 (-), .2 (+) → AP = .5·1 + .5·2/3
    assert a["average_precision"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert d["average_precision"] is None


def test_summary_micro_and_macro(ev):
    s = ev.summary
    assert (s["right"], s["predict"], s["standard"], s["samples"], s["labels"]) == (2, 6, 5, 5, 4)
    assert (s["micro_precision"], s["micro_recall"], s["micro_f1"]) == pytest.approx((1 / 3, 0.4, 4 / 11))
    # macro over the three labels present in gold (D has nothing to recall)
    assert s["macro_labels"] == 3
    assert s["macro_precision"] == pytest.approx((0.5 + 0 + 1 / 3) / 3)
    assert s["macro_recall"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert s["macro_f1"] == pytest.approx(1 / 3)
    # per item: F1 = .5, 0, 1, 0 (prediction without gold), 0
    assert s["samples_f1"] == pytest.approx(1.5 / 5)
    assert s["exact_match"] == pytest.approx(1 / 5)


def test_co_occurrence_errors(ev):
    # row 0 and row 4 miss 报价 while predicting 谍照; row 1 misses 新车上市 while predicting 报价
    assert ev.co_occurrence_errors.rows() == [
        ("导购/报价", "新车资讯/谍照", 2),
        ("新车资讯/新车上市", "导购/报价", 1),
    ]


def test_bad_cases_worst_first(ev):
    def cases(kind, label):
        part = ev.bad_cases.filter((ev.bad_cases["kind"] == kind) & (ev.bad_cases["label"] == label))
        return list(zip(part["itemid"], part["prob"], strict=True))

    assert cases("false_positive", LABELS[2]) == [("n4", 0.9), ("n0", 0.7)]  # most confident first
    assert cases("false_negative", LABELS[1]) == [("n0", 0.3), ("n4", 0.4)]  # least confident first
    assert cases("false_positive", LABELS[0]) == [("n3", 0.55)]
    assert cases("false_negative", LABELS[0]) == [("n1", 0.2)]
    assert cases("false_negative", LABELS[2]) == []
    row = ev.bad_cases.filter(ev.bad_cases["itemid"] == "n3").row(0, named=True)
    assert row["text"] == "文本3"
    capped = evaluate(GOLD, PRED, PROBS, LABELS, TEXTS, bad_cases_per_label=1).bad_cases
    assert capped.height == 5  # FP and FN for A and B (B's two FNs capped at one), FP for C
    assert capped.filter(capped["kind"] == "false_negative")["itemid"].to_list() == ["1", "0"]  # row index ids


def test_json_is_serialisable(ev):
    data = json.loads(json.dumps(to_json(ev)))
    assert data["summary"]["micro_f1"] == pytest.approx(4 / 11)
    assert [r["label"] for r in data["per_label"]] == LABELS
    assert data["per_label"][3]["average_precision"] is None
    assert data["co_occurrence_errors"][0]["count"] == 2


def test_pr_curve_chart(ev, tmp_path):
    path = tmp_path / "charts" / "pr.png"
    chart = ev.pr_curve_chart(path)
    assert chart.png.startswith(b"\x89PNG\r\n\x1a\n") and len(chart.png) > 5000
    assert path.read_bytes() == chart.png and chart.missing_glyphs == []


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        evaluate(GOLD, PRED[:, :3], PROBS, LABELS, TEXTS)
    with pytest.raises(ValueError):
        evaluate(GOLD, PRED, PROBS, LABELS[:3], TEXTS)
