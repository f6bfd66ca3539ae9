import json

import numpy as np
import pytest
from scipy.stats import binomtest

from dagster_autotag.train.thresholds import (
    BELOW_FLOOR,
    NEEDS_DATA,
    SHIPPED,
    Thresholds,
    decide,
    precision_interval,
    thresholds_of_decisions,
    tune_thresholds,
)

# one label, scores sorted high → low: gold  1    1    0    1    0    1    0    0
SCORES = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.1])
GOLD = np.array([1, 1, 0, 1, 0, 1, 0, 0])
# cut at s: precision / recall (4 positives)
#   0.95: 1/1 .25   0.9: 2/2 .5   0.8: 2/3 .5   0.7: 3/4 .75   0.6: 3/5 .75   0.4: 4/6 1.0   0.3: 4/7   0.1: 4/8
# F1: 0.95 .4, 0.9 .667, 0.8 .571, 0.7 .75, 0.6 .667, 0.4 .8, 0.3 .727, 0.1 .667
POINT = {"confidence": 0.0}  # these eight rows test the choice of cut: on the point precision, without a bound


def column(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1)


def test_precision_floor_takes_highest_recall_above_floor():
    t = tune_thresholds(column(GOLD), column(SCORES), mode="precision_floor", precision_floor=0.75, **POINT)
    assert t.thresholds[0] == pytest.approx(0.7)  # 3/4 = .75 reaches the floor, recall .75
    assert t.shipped[0]
    assert (t.precision[0], t.recall[0]) == pytest.approx((0.75, 0.75))
    assert t.support[0] == 4


def test_precision_floor_ties_go_to_the_higher_threshold():
    # gold 1 1 0 at .95 .9 .8: recall 1 at 0.9 (2/2) and at 0.8 (2/3 ≥ .6) → the higher cut, 0.9
    t = tune_thresholds(column(GOLD[:3]), column(SCORES[:3]), precision_floor=0.6, **POINT)
    assert t.thresholds[0] == pytest.approx(0.9) and t.precision[0] == 1.0
    t = tune_thresholds(column(np.array([1, 0, 1])), column(np.array([0.9, 0.8, 0.8])), precision_floor=0.5, **POINT)
    # cuts 0.9 (1/1, r .5) and 0.8 (2/3, r 1): highest recall wins
    assert t.thresholds[0] == pytest.approx(0.8)
    t = tune_thresholds(column(np.array([1, 0, 0])), column(np.array([0.9, 0.8, 0.7])), precision_floor=0.3, **POINT)
    # recall 1 at every cut; precision 1, .5, .33 all ≥ .3 → the highest threshold
    assert t.thresholds[0] == pytest.approx(0.9)


def test_floor_out_of_reach_is_not_shipped():
    # the best precision with a true positive is 1/2
    gold, scores = column(np.array([0, 1, 0, 0])), column(np.array([0.9, 0.8, 0.3, 0.2]))
    t = tune_thresholds(gold, scores, precision_floor=0.8, **POINT)
    assert not t.shipped[0] and t.status == [BELOW_FLOOR]
    assert t.thresholds[0] == pytest.approx(0.8)  # the cut closest to shipping (highest bound), for reports
    assert t.precision[0] == pytest.approx(0.5) and (t.tp[0], t.predicted[0]) == (1, 2)


def test_label_without_positives_is_not_shipped_and_needs_data():
    t = tune_thresholds(np.zeros((4, 1)), column(np.array([0.9, 0.8, 0.3, 0.2])))
    assert not t.shipped[0] and t.support[0] == 0 and t.f1[0] == 0 and t.status == [NEEDS_DATA]


def test_min_threshold_excludes_noise_level_cuts():
    # recall 1 needs a cut at 0.01; below min_threshold, so only the 0.9 cut is usable
    gold, scores = column(np.array([1, 0, 1])), column(np.array([0.9, 0.5, 0.01]))
    t = tune_thresholds(gold, scores, min_threshold=0.05, **POINT)
    assert t.thresholds[0] == pytest.approx(0.9) and t.recall[0] == pytest.approx(0.5) and t.shipped[0]


def test_f1_mode_picks_the_f1_optimal_cut():
    t = tune_thresholds(column(GOLD), column(SCORES), mode="f1", precision_floor=0.8, **POINT)
    assert t.thresholds[0] == pytest.approx(0.4)
    assert t.f1[0] == pytest.approx(0.8)
    assert not t.shipped[0]  # precision 4/6 < .8 at that cut
    t = tune_thresholds(column(GOLD), column(SCORES), mode="f1", precision_floor=0.6, **POINT)
    assert t.shipped[0]
    # with the bound, 4/6 is far from proving 0.6
    assert not tune_thresholds(column(GOLD), column(SCORES), mode="f1", precision_floor=0.6).shipped[0]


def label(right: int, wrong: int, missed: int = 0, negatives: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """One label whose best cut (0.9) predicts `right` + `wrong` items; the rest score 0.1."""
    gold = np.r_[np.ones(right), np.zeros(wrong), np.ones(missed), np.zeros(negatives)]
    scores = np.r_[np.full(right + wrong, 0.9), np.full(missed + negatives, 0.1)]
    return column(gold), column(scores)


def test_a_label_with_few_positives_is_not_shipped_however_precise_it_looks():
    # issue #14: 3/3 right on dev is no evidence of precision 0.8 — its 90 % lower bound is 0.46
    t = tune_thresholds(*label(3, 0), precision_floor=0.8, confidence=0.9)
    assert t.precision[0] == 1.0 and not t.shipped[0] and t.status == [NEEDS_DATA]
    assert (t.tp[0], t.predicted[0]) == (3, 3)
    assert t.lower[0] == pytest.approx(0.1 ** (1 / 3)) and t.upper[0] == 1.0
    assert not decide(np.array([[0.95]]), t).any()  # never predicted
    # 40 right of 45 predicted: precision .89, lower bound .804 ≥ .8 → shipped
    t = tune_thresholds(*label(40, 5, missed=10), precision_floor=0.8, confidence=0.9)
    assert t.shipped[0] and t.status == [SHIPPED] and (t.tp[0], t.predicted[0]) == (40, 45)
    assert 0.8 <= t.lower[0] < t.precision[0] < t.upper[0]
    # 20/22 is as precise, but from half the evidence
    assert tune_thresholds(*label(20, 2), precision_floor=0.8).status == [NEEDS_DATA]
    # the old rule (point precision) would have shipped 3/3
    assert tune_thresholds(*label(3, 0), precision_floor=0.8, confidence=0.0).shipped[0]


def test_more_confidence_ships_fewer_labels():
    counts = [(11, 0), (40, 5), (90, 12), (300, 50)]
    y, p = (np.hstack(c) for c in zip(*(label(r, w, negatives=400 - r - w) for r, w in counts)))
    shipped = [tune_thresholds(y, p, confidence=c).shipped.sum() for c in (0.0, 0.5, 0.9, 0.99)]
    assert shipped == sorted(shipped, reverse=True) and shipped[0] == 4 and shipped[-1] < 4


def test_the_bound_is_clopper_pearson_as_scipy_computes_it():
    tp, n = np.array([0, 1, 3, 40, 45, 7]), np.array([0, 4, 3, 45, 45, 20])
    lower, upper = precision_interval(tp, n, 0.9)
    for k, m, lo, hi in zip(tp[1:], n[1:], lower[1:], upper[1:]):
        # one-sided 90 % bounds = the ends of the two-sided 80 % exact interval
        ci = binomtest(int(k), int(m)).proportion_ci(confidence_level=0.8, method="exact")
        assert (lo, hi) == pytest.approx((ci.low, ci.high))
    assert (lower[0], upper[0]) == (0.0, 1.0)  # nothing predicted: nothing known
    assert precision_interval(tp, n, 0.0)[0][3] == pytest.approx(40 / 45)
    with pytest.raises(ValueError, match="confidence"):
        tune_thresholds(*label(3, 0), confidence=1.0)


def test_an_agreement_ships_what_its_members_allow_and_its_own_bound_reaches():
    y = np.array([[1, 1, 1]] * 45 + [[0, 0, 0]] * 5)
    fired = np.ones_like(y, dtype=bool)
    fired[:, 2] = False  # nothing fired: no evidence
    t = thresholds_of_decisions(y, fired, allowed=np.array([True, False, True]), precision_floor=0.8)
    assert t.shipped.tolist() == [True, False, False]
    assert t.status == [SHIPPED, NEEDS_DATA, BELOW_FLOOR] and t.mode == "agreement"
    assert (t.tp[0], t.predicted[0]) == (45, 50) and t.lower[0] >= 0.8


def test_columns_are_tuned_independently():
    y = np.stack([GOLD, 1 - GOLD], axis=1)
    p = np.stack([SCORES, 1 - SCORES], axis=1)
    t = tune_thresholds(y, p, mode="f1")
    assert t.thresholds.shape == (2,) and t.thresholds[0] == pytest.approx(0.4)
    single = tune_thresholds(column(1 - GOLD), column(1 - SCORES), mode="f1")
    assert t.thresholds[1] == pytest.approx(single.thresholds[0])


def make(thresholds, shipped) -> Thresholds:
    n = len(thresholds)
    z = np.zeros(n)
    return Thresholds(np.array(thresholds), np.array(shipped), z, z, z, np.zeros(n, dtype=int))


def test_decide_thresholds_shipping_and_top_k():
    probs = np.array([[0.9, 0.6, 0.7, 0.2], [0.1, 0.5, 0.4, 0.95], [0.5, 0.5, 0.5, 0.5]])
    t = make([0.5, 0.5, 0.5, 0.5], [True, True, True, False])
    assert decide(probs, t).tolist() == [
        [True, True, True, False],
        [False, True, False, False],  # 0.95 on an unshipped label stays off
        [True, True, True, False],
    ]
    assert decide(probs, t, only_shipped=False)[1].tolist() == [False, True, False, True]
    top2 = decide(probs, t, top_k=2)
    assert top2.tolist() == [
        [True, False, True, False],  # 0.9 and 0.7 kept, 0.6 dropped
        [False, True, False, False],
        [True, True, False, False],  # ties → earlier labels
    ]
    assert not decide(probs, t, top_k=0).any()
    assert decide(probs, t, top_k=10).tolist() == decide(probs, t).tolist()


def test_json_roundtrip_and_reordering():
    t = tune_thresholds(np.stack([GOLD, 1 - GOLD], axis=1), np.stack([SCORES, 1 - SCORES], axis=1), source="oof(5)+dev")
    data = json.loads(json.dumps(t.to_dict(["a/x", "b/y"]), allow_nan=False))
    back = Thresholds.from_dict(data)
    for field in ("thresholds", "shipped", "precision", "recall", "f1", "support", "tp", "predicted", "lower", "upper"):
        np.testing.assert_array_equal(getattr(back, field), getattr(t, field))
    assert back.mode == "precision_floor" and back.precision_floor == 0.8
    assert (back.status, back.confidence, back.source, back.tuning_rows) == (t.status, 0.9, "oof(5)+dev", 8)
    assert data["counts"] == {SHIPPED: 0, NEEDS_DATA: 2, BELOW_FLOOR: 0} and data["interval"] == "clopper_pearson"
    swapped = Thresholds.from_dict(data, ["b/y", "a/x"])
    assert swapped.thresholds.tolist() == t.thresholds[::-1].tolist()
    with pytest.raises(KeyError):
        Thresholds.from_dict(data, ["c/z"])


def test_thresholds_json_written_before_the_bound_rule_still_loads():
    old = {
        "mode": "precision_floor",
        "precision_floor": 0.8,
        "labels": [
            {
                "label": "a",
                "threshold": 0.7,
                "shipped": True,
                "precision": 0.75,
                "recall": 0.75,
                "f1": 0.75,
                "support": 4,
            },
            {
                "label": "b",
                "threshold": 1.0,
                "shipped": False,
                "precision": 0.0,
                "recall": 0.0,
                "f1": 0.0,
                "support": 0,
            },
        ],
    }
    t = Thresholds.from_dict(old)
    assert t.shipped.tolist() == [True, False] and t.status == [SHIPPED, BELOW_FLOOR]
    assert t.tp.tolist() == [3, 0] and t.predicted.tolist() == [4, 0]  # recovered from precision, recall, support
    assert np.isnan(t.lower).all() and t.confidence is None and t.source == "dev"
    assert decide(np.array([[0.8, 0.99]]), t).tolist() == [[True, False]]
    rows = json.loads(json.dumps(t.to_dict(["a", "b"]), allow_nan=False))["labels"]
    assert rows[0]["precision_lower"] is None  # unknown, not invented


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"confidence": 0.3}, "confidence must be 0"),
        ({"confidence": 1.0}, "confidence must be 0"),
        ({"threshold_folds": -1}, "threshold_folds and oof_max_rows must be ≥ 0"),
        ({"oof_max_rows": -5}, "threshold_folds and oof_max_rows must be ≥ 0"),
    ],
)
def test_training_options_out_of_range_are_refused(bad, message):
    from dagster_autotag.train.configs import TrainingOptions

    with pytest.raises(ValueError, match=message):
        TrainingOptions(**bad)
