"""Taxonomy → labels, schemes, rule labels, and the corpus config that defines them."""

import polars as pl
import pytest

from dagster_autotag.corpus.config import (
    CorpusConfigError,
    Rule,
    Scheme,
    load_corpus_config,
    parse_corpus_config,
)
from dagster_autotag.corpus.rules import rule_hits, rule_label_column
from dagster_autotag.corpus.schemes import scheme_columns, scheme_label_set
from dagster_autotag.corpus.taxonomy import ancestor_paths, item_content_labels

# clean/tags as build_tags writes it: active content tags only (30113 新车预告 and 30800 旧版分类 are
# inactive, so absent); 30171 is level 4 under 新车上市; 30901's parent 30900 is missing from the
# snapshot but its own path still names it.
TAG_ROWS = [
    ("30100", "新车资讯", ["30100"], "新车资讯"),
    ("30101", "谍照", ["30100", "30101"], "新车资讯/谍照"),
    ("30106", "新车上市", ["30100", "30106"], "新车资讯/新车上市"),
    ("30161", "国产新车上市", ["30100", "30106", "30161"], "新车资讯/新车上市/国产新车上市"),
    ("30171", "新能源新车上市", ["30100", "30106", "30161", "30171"], "新车资讯/新车上市/国产新车上市/新能源新车上市"),
    ("30200", "导购", ["30200"], "导购"),
    ("30201", "单车导购", ["30200", "30201"], "导购/单车导购"),
    ("30300", "评测", ["30300"], "评测"),
    ("30302", "试驾", ["30300", "30302"], "评测/试驾"),
    ("30901", "孤儿标签", ["30900", "30901"], "旧栏目/孤儿标签"),
]


def tags_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "tag_id": [r[0] for r in TAG_ROWS],
            "tag_name": [r[1] for r in TAG_ROWS],
            "level": [len(r[2]) for r in TAG_ROWS],
            "parent_id": [r[2][-2] if len(r[2]) > 1 else None for r in TAG_ROWS],
            "id_path": [r[2] for r in TAG_ROWS],
            "name_path": [r[3] for r in TAG_ROWS],
        },
        schema_overrides={"level": pl.Int8},
    )


def items_frame(tag_ids: dict[str, list[str]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"itemid": list(tag_ids), "tag_ids": list(tag_ids.values())},
        schema={"itemid": pl.String, "tag_ids": pl.List(pl.String)},
    )


P0 = Scheme("p0_newcar", ("新车资讯",), 2)
P1 = Scheme("p1_guide", ("导购", "评测"), 2)


def labelled(tag_ids: dict[str, list[str]], *schemes: Scheme) -> pl.DataFrame:
    tags = tags_frame()
    frame = item_content_labels(items_frame(tag_ids), tags).frame
    exprs = [e for s in schemes for e in scheme_columns(s, scheme_label_set(s, tags))]
    return frame.with_columns(exprs).sort("itemid")


def row(frame: pl.DataFrame, itemid: str) -> dict:
    return frame.filter(pl.col("itemid") == itemid).row(0, named=True)


def test_ancestor_paths_name_every_level():
    assert ancestor_paths("新车资讯/新车上市/国产新车上市") == [
        "新车资讯",
        "新车资讯/新车上市",
        "新车资讯/新车上市/国产新车上市",
    ]


def test_a_deep_tag_implies_all_its_ancestors():
    frame = labelled({"a": ["30171"]}, P0)
    a = row(frame, "a")
    assert a["content_labels"] == [
        "新车资讯",
        "新车资讯/新车上市",
        "新车资讯/新车上市/国产新车上市",
        "新车资讯/新车上市/国产新车上市/新能源新车上市",
    ]
    assert a["p0_newcar_gate"] is True
    assert a["p0_newcar_labels"] == ["新车资讯/新车上市"]  # level-2 label of the level-4 tag


def test_ancestors_come_from_the_path_even_when_the_parent_row_is_missing():
    a = row(labelled({"a": ["30901"]}), "a")
    assert a["content_labels"] == ["旧栏目", "旧栏目/孤儿标签"]


def test_unknown_and_inactive_tag_ids_are_kept_per_item_and_counted():
    result = item_content_labels(
        items_frame({"a": ["30101", "30113", "99999"], "b": ["99999"], "c": ["30200"]}), tags_frame()
    )
    frame = result.frame.sort("itemid")
    assert frame["unknown_tag_ids"].to_list() == [["30113", "99999"], ["99999"], []]
    assert frame["content_labels"].to_list()[1] == []  # b: nothing known
    assert result.stats["items_with_unknown_tag_ids"] == 2
    assert result.stats["unknown_tag_id_occurrences"] == 3
    assert result.stats["distinct_unknown_tag_ids"] == 2
    assert result.stats["items_without_content_labels"] == 1
    assert result.top_unknown == {"99999": 2, "30113": 1}


def test_gate_positive_negative_and_out_of_scope():
    frame = labelled(
        {
            "pos": ["30101", "30106"],
            "parent_only": ["30100"],
            "neg": ["30201"],
            "no_tags": [],
            "unknown_only": ["99999"],
        },
        P0,
    )
    assert row(frame, "pos")["p0_newcar_labels"] == ["新车资讯/新车上市", "新车资讯/谍照"]
    assert row(frame, "parent_only")["p0_newcar_gate"] is True
    assert row(frame, "parent_only")["p0_newcar_labels"] == []
    assert row(frame, "neg")["p0_newcar_gate"] is False
    # no known content tag: not a verified negative, so out of scope (null)
    assert row(frame, "no_tags")["p0_newcar_gate"] is None
    assert row(frame, "unknown_only")["p0_newcar_gate"] is None


def test_a_gate_over_two_subtrees():
    frame = labelled({"guide": ["30201"], "test": ["30302"], "news": ["30101"]}, P1)
    assert row(frame, "guide")["p1_guide_labels"] == ["导购/单车导购"]
    assert row(frame, "test")["p1_guide_labels"] == ["评测/试驾"]
    assert row(frame, "news")["p1_guide_gate"] is False


def test_label_set_follows_the_taxonomy_or_the_pinned_list():
    tags = tags_frame()
    assert scheme_label_set(P0, tags) == ["新车资讯/谍照", "新车资讯/新车上市"]
    assert scheme_label_set(Scheme("deep", ("新车资讯/新车上市",), 3), tags) == ["新车资讯/新车上市/国产新车上市"]
    pinned = Scheme("p", ("新车资讯",), 2, labels=("新车资讯/谍照", "新车资讯/新车到店"))
    assert scheme_label_set(pinned, tags) == ["新车资讯/谍照", "新车资讯/新车到店"]


def test_rule_labels_and_hit_counts():
    rules = (Rule("车展/北京车展", "北京(国际)?车展"), Rule("车展/广州车展", "广州车展"))
    frame = pl.DataFrame(
        {
            "text": ["2024北京国际车展:新车", "广州车展探馆 | 北京车展回顾", "日常用车", ""],
            "content_labels": [["车展", "车展/北京车展"], [], ["车展", "车展/广州车展"], []],
        }
    ).with_columns(rule_label_column(rules))
    assert frame["rule_labels"].to_list() == [["车展/北京车展"], ["车展/北京车展", "车展/广州车展"], [], []]
    hits = rule_hits(frame, rules)
    assert hits.rows() == [("车展/北京车展", 2, 1, 1), ("车展/广州车展", 1, 1, 0)]
    assert pl.DataFrame({"text": ["x"]}).with_columns(rule_label_column(()))["rule_labels"].to_list() == [[]]


def test_packaged_config_defines_p0_and_p1():
    config = load_corpus_config()
    assert config.scheme("p0_newcar").gate == ("新车资讯",)
    assert config.scheme("p1_guide").gate == ("导购", "评测")
    assert [f.name for f in config.input_text.fields][0] == "title"
    assert any(r.label == "车展/北京车展" for r in config.rules)
    assert config.scheme("p0_newcar").inference_budget_s_per_100k == 3600.0  # the default


def test_a_scheme_sets_its_inference_budget_or_none():
    raw = {
        "schemes": {
            "fast": {"gate": ["a"], "label_level": 2, "inference_budget_s_per_100k": 60},
            "any": {"gate": ["a"], "label_level": 2, "inference_budget_s_per_100k": None},
        }
    }
    schemes = parse_corpus_config(raw).schemes
    assert schemes["fast"].inference_budget_s_per_100k == 60.0 and schemes["any"].inference_budget_s_per_100k is None
    assert not schemes["fast"].exclusive  # multi-label unless declared


def test_a_scheme_declares_itself_exclusive():
    raw = {"schemes": {"topics": {"gate": ["a"], "label_level": 2, "exclusive": True}}}
    assert parse_corpus_config(raw).scheme("topics").exclusive


def test_config_override_by_environment(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text("schemes:\n  autoshow:\n    gate: 车展\n    label_level: 2\n", encoding="utf-8")
    monkeypatch.setenv("AUTOTAG_CORPUS_CONFIG", str(path))
    config = load_corpus_config()
    assert list(config.schemes) == ["autoshow"] and config.source == str(path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"schemes": {"Bad-Name": {"gate": ["a"], "label_level": 2}}}, "must match"),
        ({"schemes": {"s": {"gate": [], "label_level": 2}}}, "gate must name"),
        ({"schemes": {"s": {"gate": ["a/b"], "label_level": 2}}}, "label_level must be an integer ≥ 3"),
        ({"schemes": {"s": {"gate": ["a"], "label_level": 2, "labels": ["b/c"]}}}, "outside the gate"),
        ({"schemes": {"s": {"gate": ["a"], "label_level": 2, "lables": []}}}, "unknown keys"),
        ({"schemes": {"s": {"gate": ["a"], "label_level": 2, "inference_budget_s_per_100k": 0}}}, "positive number"),
        ({"schemes": {"s": {"gate": ["a"], "label_level": 2, "exclusive": "yes"}}}, "exclusive must be true or false"),
        ({"rules": [{"label": "x", "pattern": "(?<=a)b"}]}, "does not compile"),
        ({"rules": [{"label": "x"}]}, "needs a label and a pattern"),
        ({"input_text": {"fields": [{"name": "body", "max_chars": 10}]}}, "must be one of"),
        ({"input_text": {"fields": [{"name": "title", "max_chars": 0}]}}, "positive integer"),
        ({"scheme": {}}, "unknown top-level keys"),
    ],
)
def test_config_errors_name_the_problem(raw, message):
    with pytest.raises(CorpusConfigError, match=message):
        parse_corpus_config(raw, source="test.yaml")


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusConfigError, match="does not exist"):
        load_corpus_config(tmp_path / "nope.yaml")
