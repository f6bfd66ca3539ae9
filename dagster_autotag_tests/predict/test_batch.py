"""predict_items on hand-made models: shipped labels only, the gate rule, batching, rule labels."""

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from dagster_autotag.predict.batch import MODEL_SCHEMA, PREDICTION_SCHEMA, predict_items, with_model_columns
from dagster_autotag.train.ensemble import EnsembleModel
from dagster_autotag.train.scheme_model import SchemeModel
from dagster_autotag.train.thresholds import Thresholds

GATE, SPY, LAUNCH, PRICE = "新车资讯", "新车资讯/谍照", "新车资讯/新车上市", "新车资讯/新车报价"


class KeywordModel:
    """P = 0.9 when the text holds the column's keyword, else 0.1; records the batch sizes it saw."""

    def __init__(self, keywords: list[str]) -> None:
        self.keywords, self.batches = keywords, []

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        return np.array([[0.9 if k in t else 0.1 for k in self.keywords] for t in texts], dtype=np.float32)


def thresholds(cuts: list[float], shipped: list[bool]) -> Thresholds:
    n = len(cuts)
    return Thresholds(np.array(cuts), np.array(shipped), *(np.zeros(n),) * 3, np.ones(n, dtype=np.int64))


def scheme_model(shipped=(True, True, True, False), cuts=(0.5, 0.5, 0.5, 0.5)) -> SchemeModel:
    """Gate on "新车"; sub-labels 谍照 / 上市 / 报价 on "谍照" / "上市" / "报价"; 报价 not shipped."""
    return SchemeModel(
        "linear",
        GATE,
        [SPY, LAUNCH, PRICE],
        KeywordModel(["新车"]),
        KeywordModel(["谍照", "上市", "报价"]),
        thresholds(list(cuts), list(shipped)),
    )


def items(texts: list[str], rules: list[list[str]] | None = None) -> pl.DataFrame:
    frame = pl.DataFrame({"itemid": [f"i{k}" for k in range(len(texts))], "dtype": "news", "text": texts})
    return frame.with_columns(pl.Series("rule_labels", rules, dtype=pl.List(pl.String))) if rules else frame


def test_only_shipped_labels_fire_and_are_scored_and_the_gate_is_a_label():
    out = predict_items(items(["新车谍照上市报价", "用车保养"]), scheme_model())
    assert out.schema == pl.Schema(PREDICTION_SCHEMA)
    first, second = out.row(0, named=True), out.row(1, named=True)
    assert first["labels"] == [GATE, SPY, LAUNCH]  # 报价 is over its threshold but not shipped
    assert [s["label"] for s in first["scores"]] == [GATE, SPY, LAUNCH]
    assert first["gate"] is True and first["gate_score"] == pytest.approx(0.9)
    assert first["scores"][1]["score"] == pytest.approx(0.81)  # joint: P(gate) · P(谍照 | gate)
    assert second["labels"] == [] and second["gate"] is False
    assert PRICE not in out["scores"].explode().struct.field("label").to_list()


def test_sub_labels_never_fire_without_the_gate():
    # Sub-label cut 0.05 < P(gate)=0.1 · P(谍照|gate)=0.9: over its own threshold, but the gate is not.
    model = scheme_model(cuts=(0.5, 0.05, 0.05, 0.05))
    out = predict_items(items(["谍照上市"]), model)
    assert out["labels"].to_list() == [[]] and out["gate"].to_list() == [False]


class UngatedModel:
    """A model whose decide() forgets the gate rule: predict_items must still apply it."""

    targets = [GATE, SPY]

    def predict_proba(self, texts):
        return np.full((len(texts), 2), 0.6, dtype=np.float32)

    def shipped_targets(self):
        return [GATE, SPY]

    def decide(self, probs, top_k=None, texts=None):
        return np.array([[False, True]] * len(probs))


def test_the_table_applies_the_gate_rule_even_when_a_model_does_not():
    assert predict_items(items(["x", "y"]), UngatedModel())["labels"].to_list() == [[], []]


def test_an_unshipped_gate_means_no_labels_at_all():
    out = predict_items(items(["新车谍照"]), scheme_model(shipped=(False, True, True, True)))
    assert out["labels"].to_list() == [[]]
    assert [s["label"] for s in out["scores"][0]] == [SPY, LAUNCH, PRICE]


def test_batches_report_progress_and_give_the_same_rows_as_one_batch():
    texts = [f"新车谍照 {k}" if k % 2 else f"新车上市 {k}" for k in range(10)]
    model, calls = scheme_model(), []
    batched = predict_items(items(texts), model, batch_size=3, on_batch=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 10), (6, 10), (9, 10), (10, 10)]
    assert model.gate_model.batches == [3, 3, 3, 1]
    assert batched.equals(predict_items(items(texts), scheme_model(), batch_size=4096))
    with pytest.raises(ValueError, match="batch_size"):
        predict_items(items(texts), model, batch_size=0)


def test_rule_labels_are_kept_and_merged_after_the_model_labels():
    rules = [["车展/北京车展"], [], [SPY]]
    out = predict_items(items(["新车谍照 北京车展", "用车", "新车谍照"], rules), scheme_model())
    assert out["rule_labels"].to_list() == rules
    assert out["labels_all"].to_list() == [[GATE, SPY, "车展/北京车展"], [], [GATE, SPY]]  # no duplicate 谍照
    without = predict_items(items(["新车谍照"]), scheme_model())  # datasets have no rule_labels column
    assert without["rule_labels"].to_list() == [[]] and without["labels_all"].to_list() == [[GATE, SPY]]


def test_null_text_and_no_items():
    frame = items(["新车谍照", "x"]).with_columns(pl.Series("text", [None, "新车"], dtype=pl.String))
    assert predict_items(frame, scheme_model())["labels"].to_list() == [[], [GATE]]
    empty = predict_items(items([]), scheme_model())
    assert empty.height == 0 and empty.schema == pl.Schema(PREDICTION_SCHEMA)


def test_agreement_ensemble_fires_only_where_both_members_do_and_predicts_once_per_member():
    strict = scheme_model(cuts=(0.5, 0.5, 0.95, 0.5))  # 上市 never reaches 0.95
    ensemble = EnsembleModel([scheme_model(), strict], method="agreement")
    texts = ["新车谍照上市", "用车"]
    out = predict_items(items(texts), ensemble)
    assert out["labels"].to_list() == [[GATE, SPY], []]
    assert [m.gate_model.batches for m in ensemble.members] == [[2], [2]]  # decide() did not predict again
    probs = ensemble.predict_proba(texts)
    assert ensemble.decide(probs, texts=texts)[0].tolist() == [True, True, False, False]


def test_an_agreement_ensemble_predicts_only_what_its_own_bound_ships():
    members = [scheme_model(shipped=(True, True, True, True)) for _ in range(2)]
    # every member ships 上市, but the agreement's own precision bound does not reach the floor
    ensemble = EnsembleModel(members, "agreement", thresholds([0.0] * 4, [True, True, False, True]))
    texts = ["新车谍照上市报价"]
    out = predict_items(items(texts, [["新车资讯/新车到店"]]), ensemble)
    assert out["labels"].to_list() == [[GATE, SPY, PRICE]]
    assert [s["label"] for s in out["scores"][0]] == [GATE, SPY, PRICE]
    assert ensemble.decide(ensemble.predict_proba(texts), texts=texts)[0].tolist() == [True, True, False, True]
    # a label the model was not trained on (here a rule label) is never a model label, only in labels_all
    assert out["labels_all"].to_list() == [[GATE, SPY, PRICE, "新车资讯/新车到店"]]


def test_model_columns_name_the_version_and_store_utc():
    frame = with_model_columns(
        predict_items(items(["新车"]), scheme_model()), "autotag.p0_newcar.linear", 3, "abc", datetime(2024, 5, 1, 2)
    )
    assert {c: frame.schema[c] for c in MODEL_SCHEMA} == MODEL_SCHEMA
    row = frame.row(0, named=True)
    assert (row["model_name"], row["model_version"], row["model_run_id"]) == ("autotag.p0_newcar.linear", "3", "abc")
    assert row["predicted_at"] == datetime(2024, 5, 1, 2, tzinfo=UTC)
