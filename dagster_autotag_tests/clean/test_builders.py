"""The clean builders on small raw frames shaped exactly like raw Parquet."""

from datetime import datetime

import polars as pl

from dagster_autotag.clean.news import build_news_items
from dagster_autotag.clean.tags import build_tags
from dagster_autotag.clean.video import build_video_asr, build_video_ocr


def provenance(n: int) -> dict:
    return {"_source": ["landing"] * n, "_file": ["f"] * n, "_line": list(range(1, n + 1))}


def test_news_items_merge_rows_and_comma_lists_into_one_deduplicated_tag_list():
    t = datetime(2024, 5, 1, 8)
    raw = pl.DataFrame(
        {
            "itemid": ["2", "1", "1", "1", "3"],
            "title": ["<i>乙</i>", None, "ＢＭＷ&amp;奔驰", "其他标题", "丙"],
            "summary": ["s", "摘要\u200b", None, None, None],
            "relate_app_tag_id": ["30101", "30110, 30102", "30102,30101", "", None],
            "dtype": ["news", "yichehao_video", "news", "news", "news"],
            "recommend_grade": ["A"] * 5,
            "gc": ["PGC"] * 5,
            "create_time": [t, None, t, t, t],
            **provenance(5),
        }
    )
    result = build_news_items(raw.lazy())
    items = {r["itemid"]: r for r in result.items.iter_rows(named=True)}
    assert list(result.items["itemid"]) == ["1", "2", "3"]
    one = items["1"]
    assert one["title"] == "BMW&奔驰"  # first non-null title in ingest order, normalised
    assert one["summary"] == "摘要"
    assert one["dtype"] == "yichehao_video"
    assert one["tag_ids"] == ["30101", "30102", "30110"]  # numeric order, de-duplicated
    assert one["source_rows"] == 3
    assert items["2"]["title"] == "乙"
    assert items["3"]["tag_ids"] == []
    assert result.stats["items_without_tags"] == 1
    assert result.stats["items_with_several_rows"] == 1


def test_video_asr_one_row_per_video_longest_text_wins_and_bad_json_quarantined():
    raw = pl.DataFrame(
        {
            "video_id": ["v1", "v1", "v2", "v3", "v4", "v5"],
            "result_asr": [
                '["短"]',
                '[{"text": "更长的 文本", "start": 1}, {"text": "开头", "start": 0}]',
                "[]",
                '[{"text": "截断',
                None,
                '{"code": 500}',
            ],
            **provenance(6),
        }
    )
    result = build_video_asr(raw.lazy())
    videos = {r["video_id"]: r for r in result.videos.iter_rows(named=True)}
    assert videos["v1"]["asr_text"] == "开头 更长的 文本" and videos["v1"]["source_rows"] == 2
    assert videos["v2"]["asr_text"] == "" and videos["v4"]["segments"] == 0
    assert set(videos) == {"v1", "v2", "v4"}
    assert result.quarantine["_line"].to_list() == [4, 6]
    assert result.quarantine["reason"].str.starts_with("unparsable JSON")[0]
    assert result.quarantine["raw"][1] == '{"code": 500}'
    assert result.stats == {
        "rows_in": 6,
        "rows_out": 3,
        "quarantined": 2,
        "duplicate_rows": 1,
        "videos_without_text": 2,
    }


def test_video_ocr_dedupes_frames():
    raw = pl.DataFrame(
        {"video_id": ["v1"], "ocr_info": ['[{"time": 0, "text": "Ａ"}, {"time": 1, "text": "A"}]'], **provenance(1)}
    )
    result = build_video_ocr(raw.lazy())
    assert result.videos["ocr_text"][0] == "A"  # the same caption in full and half width is one caption
    assert result.videos["frames"][0] == 2


def test_tags_hierarchy_orphans_and_bad_paths():
    raw = pl.DataFrame(
        {
            "id": ["30100", "30101", "30150", "30151", "40000", "30102", "30103", "30101"],
            "tag_name": ["新车资讯", "新车上市", "国产新车上市", "自主品牌", "孤儿", "坏路径", "长度不符", "新车上市"],
            "tag_type_name": ["内容标签"] * 8,
            "tag_path": [
                "30100",
                "30100,30101",
                "30100/30101/30150",
                "30100>30101>30150>30151",
                "39999,40000",
                "30100,30999",
                "30100,30103",
                "30100,30101",
            ],
            "tag_path_name": [
                "新车资讯",
                "新车资讯,新车上市",
                "新车资讯/新车上市/国产新车上市",
                "新车资讯>新车上市>国产新车上市>自主品牌",
                "已停用,孤儿",
                "新车资讯,坏路径",
                "新车资讯",
                "新车资讯,新车上市",
            ],
            "status": [1] * 8,
            **provenance(8),
        }
    )
    result = build_tags(raw.lazy())
    tags = {r["tag_id"]: r for r in result.tags.iter_rows(named=True)}
    assert tags["30151"]["level"] == 4 and tags["30151"]["parent_id"] == "30150"
    assert tags["30151"]["name_path"] == "新车资讯/新车上市/国产新车上市/自主品牌"
    assert tags["30150"]["id_path"] == ["30100", "30101", "30150"]
    assert tags["30100"]["parent_id"] is None and tags["30100"]["level"] == 1
    assert result.stats["tags_with_missing_parent"] == 1  # 40000's parent is not active
    assert sorted(result.quarantine["reason"].to_list()) == [
        "duplicate tag id",
        "tag_path and tag_path_name differ in length",
        "tag_path does not end with the tag's own id",
    ]
