"""corpus/items: video text joins, the input-text template, distributions and the chart."""

import io
from datetime import datetime

import polars as pl
import pytest
from PIL import Image

from dagster_autotag import charts
from dagster_autotag.charts import CJK_FAMILIES, CJKFont
from dagster_autotag.clean.video import build_video_asr
from dagster_autotag.corpus.chart import distribution_chart
from dagster_autotag.corpus.config import CorpusConfig, InputText, Rule, Scheme, TextField
from dagster_autotag.corpus.distribution import distribution_markdown, label_distribution
from dagster_autotag.corpus.input_text import input_text_column, text_hash
from dagster_autotag.corpus.items import build_corpus_items
from dagster_autotag_tests.corpus.test_labels import tags_frame

CONFIG = CorpusConfig(
    input_text=InputText(
        (TextField("title", 10), TextField("summary", 8), TextField("ocr_text", 6), TextField("asr_text", 6)), " | "
    ),
    schemes={"p0_newcar": Scheme("p0_newcar", ("新车资讯",), 2)},
    rules=(Rule("车展/北京车展", "北京车展"),),
)


def news(rows: list[tuple[str, str, str, list[str]]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "itemid": [r[0] for r in rows],
            "title": [r[1] for r in rows],
            "summary": ["摘要" + r[0] for r in rows],
            "dtype": [r[2] for r in rows],
            "create_time": [datetime(2024, 5, 1, 8)] * len(rows),
            "source_rows": [1] * len(rows),
            "tag_ids": [r[3] for r in rows],
        },
        schema_overrides={"tag_ids": pl.List(pl.String)},
    )


def asr(rows: dict[str, str]) -> pl.LazyFrame:
    return pl.LazyFrame({"video_id": list(rows), "asr_text": list(rows.values()), "segments": [1] * len(rows)})


def ocr(rows: dict[str, str]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"video_id": list(rows), "ocr_text": list(rows.values()), "frames": [1] * len(rows)},
        schema={"video_id": pl.String, "ocr_text": pl.String, "frames": pl.Int64},
    )


@pytest.fixture
def corpus():
    items = news(
        [
            ("v1", "北京车展新车", "yichehao_video", ["30101"]),  # both ASR and OCR
            ("v2", "视频二", "yichehao_video", ["30201"]),  # OCR only
            ("v3", "视频三", "yichehao_video", []),  # neither
            ("a1", "文章一", "news", ["30106"]),  # an article whose id also appears in the ASR export
        ]
    )
    return build_corpus_items(
        items,
        asr({"v1": "大家好今天看看这台车", "a1": "不该出现", "orphan": "池外视频"}),
        ocr({"v1": "售价30万", "v2": "字幕二"}),
        tags_frame(),
        CONFIG,
    )


def by_id(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["itemid"]: r for r in frame.iter_rows(named=True)}


def test_video_text_is_left_joined_with_presence_flags(corpus):
    rows = by_id(corpus.items)
    assert corpus.items.height == 4  # left join: nothing lost, nothing duplicated
    assert (rows["v1"]["has_asr"], rows["v1"]["has_ocr"]) == (True, True)
    assert (rows["v2"]["has_asr"], rows["v2"]["has_ocr"]) == (False, True)
    assert (rows["v3"]["has_asr"], rows["v3"]["has_ocr"]) == (False, False)
    assert rows["v3"]["asr_text"] is None and rows["v3"]["ocr_text"] is None
    # an article never takes a video's text even if the ids collide
    assert rows["a1"]["has_asr"] is False and rows["a1"]["asr_text"] is None
    assert corpus.stats["asr_videos_not_in_pool"] == 2  # orphan, and a1 (not a video)
    assert corpus.stats["ocr_videos_not_in_pool"] == 0
    coverage = {r["dtype"]: r for r in corpus.coverage.iter_rows(named=True)}
    assert coverage["yichehao_video"] == {
        "dtype": "yichehao_video",
        "items": 3,
        "with_asr": 1,
        "with_ocr": 2,
        "with_both": 1,
    }
    assert coverage["news"]["with_asr"] == 0


def test_fields_stay_separate_and_the_input_text_follows_the_template(corpus):
    rows = by_id(corpus.items)
    v1 = rows["v1"]
    assert v1["title"] == "北京车展新车" and v1["asr_text"] == "大家好今天看看这台车"
    # title ≤ 10, summary ≤ 8, OCR ≤ 6, ASR ≤ 6 characters, in that order, " | " between
    assert v1["text"] == "北京车展新车 | 摘要v1 | 售价30万 | 大家好今天看"
    assert rows["v3"]["text"] == "视频三 | 摘要v3"  # missing parts are skipped, no empty separators
    assert v1["rule_labels"] == ["车展/北京车展"]
    assert v1["p0_newcar_gate"] is True and v1["p0_newcar_labels"] == ["新车资讯/谍照"]
    assert rows["v3"]["p0_newcar_gate"] is None


def test_input_text_budget_counts_characters_not_bytes():
    spec = InputText((TextField("title", 3), TextField("summary", 2)), "。")
    frame = pl.DataFrame({"title": ["新车上市了", "  ", None], "summary": ["很好", "正文", None]})
    assert frame.select(input_text_column(spec))["text"].to_list() == ["新车上。很好", "正文", ""]


def test_text_hash_ignores_case_spacing_and_punctuation_but_not_words():
    hashes = text_hash(pl.Series(["宝马X5 上市！", "宝马x5上市", "宝马X6上市"])).to_list()
    assert hashes[0] == hashes[1] != hashes[2]
    assert all(len(h) == 16 for h in hashes)


def test_media_rows_quarantined_upstream_leave_the_video_without_that_part():
    raw = pl.LazyFrame(
        {
            "video_id": ["v1", "v2"],
            "result_asr": ['[{"text": "正常识别", "start": 0.0}]', '{"unexpected": "shape"'],
            "_source": ["landing"] * 2,
            "_file": ["f"] * 2,
            "_line": [1, 2],
        }
    )
    clean = build_video_asr(raw)
    assert clean.stats["quarantined"] == 1 and clean.quarantine["reason"].len() == 1
    result = build_corpus_items(
        news([("v1", "一", "yichehao_video", []), ("v2", "二", "yichehao_video", [])]),
        clean.videos.lazy(),
        ocr({}),
        tags_frame(),
        CONFIG,
    )
    rows = by_id(result.items)
    assert rows["v1"]["has_asr"] is True and rows["v2"]["has_asr"] is False


def test_distribution_counts_shares_and_markdown(corpus):
    dist = label_distribution(corpus.items, CONFIG, corpus.label_sets)
    p0 = {(r["metric"], r["key"]): r for r in dist.filter(pl.col("scheme") == "p0_newcar").iter_rows(named=True)}
    assert p0[("in_scope", "")]["count"] == 3  # v3 has no tags
    assert p0[("gate", "新车资讯")]["count"] == 2 and p0[("gate", "新车资讯")]["denominator"] == 3
    assert p0[("label", "新车资讯/谍照")]["share"] == pytest.approx(0.5)  # of the 2 gate positives
    assert p0[("all_zero", "")]["count"] == 1  # v2 (导购 only)
    assert p0[("labels_per_item", "1")]["count"] == 2
    rules = dist.filter(pl.col("scheme") == "rules")
    assert rules.filter(pl.col("key") == "车展/北京车展")["count"].item() == 1
    md = distribution_markdown(dist)
    assert "| 新车资讯/谍照 | 1 | 50.00% |" in md and "全0样本" in md


def test_chart_renders_chinese_labels_without_missing_glyphs(corpus):
    dist = label_distribution(corpus.items, CONFIG, corpus.label_sets)
    chart = distribution_chart(dist, "corpus/items 2024-05-01 新车资讯")
    assert chart.missing_glyphs == [], chart.missing_glyphs
    assert chart.font is not None and chart.font.family in CJK_FAMILIES
    image = Image.open(io.BytesIO(chart.png))
    assert image.format == "PNG" and image.size[0] > 500
    assert chart.markdown("label distribution").startswith("![label distribution](data:image/png;base64,")


def test_a_font_without_chinese_glyphs_is_reported_not_hidden(corpus, monkeypatch):
    from matplotlib import font_manager

    dejavu = font_manager.findfont("DejaVu Sans", fallback_to_default=False)
    monkeypatch.setattr(charts, "_found", CJKFont("DejaVu Sans", str(dejavu), 0, "test"))
    dist = label_distribution(corpus.items, CONFIG, corpus.label_sets)
    chart = distribution_chart(dist, "新车")
    assert chart.png is not None and chart.missing_glyphs
    assert "glyph(s) missing from the font" in chart.note and chart.summary()["chart_missing_glyphs"] > 0
