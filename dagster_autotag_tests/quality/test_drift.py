"""Drift measures on hand-computed values and hand-made label profiles / corpora."""

import math

import polars as pl
import pytest

from dagster_autotag.quality.drift import (
    APPEARED,
    DISAPPEARED,
    ERROR,
    OK,
    TOO_FEW,
    WARN,
    DriftThresholds,
    LabelProfile,
    input_drift,
    js_distance,
    label_drift,
    label_profile,
    length_bins,
    psi,
    worst,
)

GATE = "新车资讯"


def hand_js(p: float, q: float) -> float:
    """JS distance of (p, 1-p) and (q, 1-q), written out term by term."""
    m = (p + q) / 2

    def kl(a: float) -> float:
        return sum(x * math.log2(x / y) for x, y in ((a, m), (1 - a, 1 - m)) if x > 0)

    return math.sqrt((kl(p) + kl(q)) / 2)


def test_js_distance_matches_the_hand_computed_values():
    # (0.3, 0.7) vs (0.6, 0.4): M = (0.45, 0.55), KL terms 0.06811 and 0.06519 → sqrt(0.06665) = 0.2582
    assert js_distance([0.3, 0.7], [0.6, 0.4]) == pytest.approx(0.25817, abs=1e-5)
    assert (
        js_distance([0.05, 0.95], [0.10, 0.90]) == pytest.approx(hand_js(0.05, 0.10)) == pytest.approx(0.0813, abs=1e-4)
    )
    assert js_distance([0.2, 0.8], [0.2, 0.8]) == 0.0
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # base 2: disjoint distributions are at 1
    assert js_distance([3, 7], [6, 4]) == pytest.approx(0.25817, abs=1e-5)  # counts are normalised


def test_psi_matches_the_hand_computed_value():
    # (0.25 − 0.5)·ln(0.25/0.5) + (0.75 − 0.5)·ln(0.75/0.5) = 0.17329 + 0.10137
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.27465, abs=1e-5)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert math.isfinite(psi([0.1, 0.9], [0.0, 1.0]))  # an empty bin is floored, not infinite


def profile(items=1000, gate=200, labels=None, per_item=None, all_zero=None) -> LabelProfile:
    labels = labels if labels is not None else {"a": 100, "b": 20}
    per_item = per_item or {"0": 80, "1": 120, "2": 0, "3": 0, "4+": 0}
    zero = all_zero if all_zero is not None else items - gate + per_item["0"]
    return LabelProfile(items, GATE, gate, labels, zero, per_item)


def status(result, label: str) -> str:
    return result.table.filter(pl.col("label") == label)["status"].item()


def test_label_shares_map_to_ok_warn_error_on_the_default_thresholds():
    reference = profile()
    assert label_drift(reference, profile()).severity == OK
    # a: 50 % of gate positives → 65 % (JS 0.129: warn), → 80 % (JS 0.270: error)
    warn = label_drift(reference, profile(labels={"a": 130, "b": 20}))
    assert (warn.severity, status(warn, "a"), status(warn, "b")) == (WARN, WARN, OK)
    row = warn.table.filter(pl.col("label") == "a").row(0, named=True)
    assert row["distance"] == pytest.approx(hand_js(0.5, 0.65)) == pytest.approx(0.1292, abs=1e-4)
    assert (row["reference_share"], row["current_share"]) == (0.5, 0.65)
    error = label_drift(reference, profile(labels={"a": 160, "b": 20}))
    assert (error.severity, status(error, "a")) == (ERROR, ERROR)
    assert error.moved["label"].to_list() == ["a"]
    assert "| label | a | 50.0% | 80.0% | 0.270 | error |" in error.markdown()
    custom = label_drift(reference, profile(labels={"a": 130, "b": 20}), DriftThresholds(warn=0.05, error=0.12))
    assert custom.severity == ERROR


def test_the_gate_share_is_of_all_items():
    per_item = {"0": 200, "1": 300, "2": 0, "3": 0, "4+": 0}
    result = label_drift(profile(), profile(gate=500, per_item=per_item, labels={"a": 250, "b": 50}))
    gate = result.table.filter(pl.col("metric") == "gate").row(0, named=True)
    assert (gate["reference_share"], gate["current_share"], gate["status"]) == (0.2, 0.5, ERROR)
    assert status(result, "a") == OK  # sub-labels are shares of gate positives: unchanged


def test_a_label_that_disappears_or_appears_is_an_error_when_enough_items_were_expected():
    reference = profile(labels={"a": 100, "b": 6})  # b: 3 % of 200 gate positives
    gone = label_drift(reference, profile(labels={"a": 100, "b": 0}))
    assert hand_js(0.03, 0.0) < 0.2  # the distance alone would only warn
    assert (status(gone, "b"), gone.severity) == (DISAPPEARED, ERROR)
    # 100 gate positives × 3 % = 3 expected < min_expected 5: a zero there is noise, not a disappearance
    small = profile(
        items=1000, gate=100, labels={"a": 50, "b": 0}, per_item={"0": 40, "1": 60, "2": 0, "3": 0, "4+": 0}
    )
    assert status(label_drift(reference, small), "b") == WARN
    new = label_drift(profile(labels={"a": 100, "b": 0}), profile(labels={"a": 100, "b": 6}))
    assert (status(new, "b"), new.severity) == (APPEARED, ERROR)
    assert set(new.moved["status"]) == {APPEARED}


def test_all_zero_share_and_labels_per_item():
    reference = profile()
    # same gate and labels, but the items that had one sub-label now have none or two
    shifted = profile(per_item={"0": 150, "1": 20, "2": 30, "3": 0, "4+": 0})
    result = label_drift(reference, shifted)
    per_item = result.table.filter(pl.col("metric") == "labels_per_item")
    assert per_item["label"].to_list() == ["0", "1", "2", "3", "4+"]
    expected = js_distance([80, 120, 0, 0, 0], [150, 20, 30, 0, 0])
    assert per_item["distance"].to_list() == pytest.approx([expected] * 5)
    assert per_item["status"].to_list() == [ERROR, ERROR, ERROR, OK, OK]  # empty on both sides: did not move
    zero = result.table.filter(pl.col("metric") == "all_zero").row(0, named=True)
    assert (zero["reference_share"], zero["current_share"]) == (0.88, 0.95)
    assert zero["distance"] == pytest.approx(hand_js(0.88, 0.95))


def test_too_few_items_are_not_compared():
    tiny = profile(items=20, gate=4, labels={"a": 4, "b": 0}, per_item={"0": 0, "1": 4, "2": 0, "3": 0, "4+": 0})
    result = label_drift(profile(), tiny)
    assert result.severity == OK and set(result.table["status"]) == {TOO_FEW}


def test_psi_metric_uses_the_same_thresholds():
    result = label_drift(profile(), profile(labels={"a": 160, "b": 20}), DriftThresholds(metric="psi"))
    assert result.table.filter(pl.col("label") == "a")["distance"].item() == pytest.approx(psi([0.5, 0.5], [0.8, 0.2]))
    assert result.severity == ERROR and "PSI distance" in result.markdown()
    with pytest.raises(ValueError, match="metric"):
        DriftThresholds(metric="chi2")
    with pytest.raises(ValueError, match="warn"):
        DriftThresholds(warn=0.3, error=0.2)


def test_label_profile_counts_shipped_sub_labels_among_gate_positives():
    gate = pl.Series([True, True, False, None, True])
    labels = pl.Series([[GATE, "a"], [GATE, "a", "b", "not shipped"], [], None, [GATE]])
    p = label_profile(gate, labels, GATE, ["a", "b", "c"])
    assert (p.items, p.gate_positive, p.all_zero) == (5, 3, 3)
    assert p.label_counts == {"a": 2, "b": 1, "c": 0}
    assert p.labels_per_item == {"0": 1, "1": 1, "2": 1, "3": 0, "4+": 0}


def corpus(n: int, dtype: str, text: str, asr: float = 1.0) -> pl.DataFrame:
    has_asr = [k < asr * n for k in range(n)]
    return pl.DataFrame({"dtype": [dtype] * n, "text": [text] * n, "has_asr": has_asr, "has_ocr": [True] * n})


def test_input_drift_flags_length_dtype_and_coverage_at_warn_only():
    reference = pl.concat([corpus(60, "news", "短" * 40), corpus(40, "yichehao_video", "长" * 300)])
    assert input_drift(reference, reference).severity == OK
    drifted = corpus(100, "yichehao_video", "长" * 600, asr=0.5)  # all videos, longer, half without ASR
    result = input_drift(reference, drifted)
    assert result.severity == WARN  # never ERROR, however far it moved
    moved = dict(zip(result.moved["metric"], result.moved["status"]))
    assert moved == {"text_length": WARN, "dtype": WARN, "asr_coverage": WARN}
    dtype = result.table.filter(pl.col("metric") == "dtype")
    assert dtype["distance"][0] == pytest.approx(js_distance([60, 40], [0, 100]))


def test_length_bins_and_worst():
    assert length_bins(pl.Series(["a" * 10, "a" * 32, None, "a" * 600])) == {
        "<32": 2, "32–63": 1, "64–127": 0, "128–255": 0, "256–511": 0, "≥512": 1,
    }  # fmt: skip
    assert worst([OK, WARN]) == WARN and worst([]) == OK and worst([ERROR, OK]) == ERROR
