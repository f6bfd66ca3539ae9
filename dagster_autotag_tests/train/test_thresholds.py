import json

import numpy as np
import pytest

from dagster_autotag.train.thresholds import Thresholds, decide, tune_thresholds

# one label, scores sorted high → low: gold  1    1    0    1    0    1    0    0
SCORES = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.1])
GOLD = np.array([1, 1, 0, 1, 0, 1, 0, 0])
# cut at s: precision / recall (4 positives)
#   0.95: 1/1 .25   0.9: 2/2 .5   0.8: 2/3 .5   0.7: 3/4 .75   0.6: 3/5 .75   0.4: 4/6 1.0   0.3: 4/7   0.1: 4/8
# F1: 0.95 .4, 0.9 .667, 0.8 .571, 0.7 .75, 0.6 .667, 0.4 .8, 0.3 .727, 0.1 .667


def column(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1)


def test_precision_floor_takes_highest_recall_above_floor():
    t = tune_thresholds(column(GOLD), column(SCORES), mode="precision_floor", precision_floor=0.75)
    assert t.thresholds[0] == pytest.approx(0.7)  # 3/4 = .75 reaches the floor, recall .75
    assert t.shipped[0]
    assert (t.precision[0], t.recall[0]) == pytest.approx((0.75, 0.75))
    assert t.support[0] == 4


def test_precision_floor_ties_go_to_the_higher_threshold():
    # gold 1 1 0 at .95 .9 .8: recall 1 at 0.9 (2/2) and at 0.8 (2/3 ≥ .6) → the higher cut, 0.9
    t = tune_thresholds(column(GOLD[:3]), column(SCORES[:3]), precision_floor=0.6)
    assert t.thresholds[0] == pytest.approx(0.9) and t.precision[0] == 1.0
    t = tune_thresholds(column(np.array([1, 0, 1])), column(np.array([0.9, 0.8, 0.8])), precision_floor=0.5)
    # cuts 0.9 (1/1, r .5) and 0.8 (2/3, r 1): highest recall wins
    assert t.thresholds[0] == pytest.approx(0.8)
    t = tune_thresholds(column(np.array([1, 0, 0])), column(np.array([0.9, 0.8, 0.7])), precision_floor=0.3)
    # recall 1 at every cut; precision 1, .5, .33 all ≥ .3 → the highest threshold
    assert t.thresholds[0] == pytest.approx(0.9)


def test_floor_out_of_reach_is_not_shipped():
    # the best precision with a true positive is 1/2
    t = tune_thresholds(column(np.array([0, 1, 0, 0])), column(np.array([0.9, 0.8, 0.3, 0.2])), precision_floor=0.8)
    assert not t.shipped[0]
    assert t.thresholds[0] == pytest.approx(0.8)  # still the F1-best cut, for reports
    assert t.precision[0] == pytest.approx(0.5)


def test_label_without_dev_positives_is_not_shipped():
    t = tune_thresholds(np.zeros((4, 1)), column(np.array([0.9, 0.8, 0.3, 0.2])))
    assert not t.shipped[0] and t.support[0] == 0 and t.f1[0] == 0


def test_min_threshold_excludes_noise_level_cuts():
    # recall 1 needs a cut at 0.01; below min_threshold, so only the 0.9 cut is usable
    t = tune_thresholds(column(np.array([1, 0, 1])), column(np.array([0.9, 0.5, 0.01])), min_threshold=0.05)
    assert t.thresholds[0] == pytest.approx(0.9) and t.recall[0] == pytest.approx(0.5)


def test_f1_mode_picks_the_f1_optimal_cut():
    t = tune_thresholds(column(GOLD), column(SCORES), mode="f1", precision_floor=0.8)
    assert t.thresholds[0] == pytest.approx(0.4)
    assert t.f1[0] == pytest.approx(0.8)
    assert not t.shipped[0]  # precision 4/6 < .8 at that cut
    t = tune_thresholds(column(GOLD), column(SCORES), mode="f1", precision_floor=0.6)
    assert t.shipped[0]


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
    t = tune_thresholds(np.stack([GOLD, 1 - GOLD], axis=1), np.stack([SCORES, 1 - SCORES], axis=1))
    data = json.loads(json.dumps(t.to_dict(["a/x", "b/y"])))
    back = Thresholds.from_dict(data)
    for field in ("thresholds", "shipped", "precision", "recall", "f1", "support"):
        np.testing.assert_array_equal(getattr(back, field), getattr(t, field))
    assert back.mode == "precision_floor" and back.precision_floor == 0.8
    swapped = Thresholds.from_dict(data, ["b/y", "a/x"])
    assert swapped.thresholds.tolist() == t.thresholds[::-1].tolist()
    with pytest.raises(KeyError):
        Thresholds.from_dict(data, ["c/z"])
