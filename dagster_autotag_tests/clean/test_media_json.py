import json

import pytest

from dagster_autotag.clean.media_json import MediaShapeError, asr_text, ocr_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            '[{"text": "第二句", "start": 2.0, "end": 3.1}, {"text": "第一句", "start": 0.5, "end": 1.9}]',
            ("第一句 第二句", 2),
        ),
        ('[{"onebest": "乙", "bg": 3400, "ed": 5000}, {"onebest": "甲", "bg": 1200, "ed": 3300}]', ("甲 乙", 2)),
        ('["句子一", "句子二"]', ("句子一 句子二", 2)),
        ('[[{"text": "后", "start": 5}], [{"text": "前", "start": 1}]]', ("前 后", 2)),
        ('{"result": [{"text": "包装", "start": 0}]}', ("包装", 1)),
        ('[{"text": "无时间"}, {"text": "按数组顺序"}]', ("无时间 按数组顺序", 2)),
        ('[{"text": "a", "start": "1.5"}, {"text": "b", "start": "0.2"}]', ("b a", 2)),
        ("[]", ("", 0)),
        ("", ("", 0)),
        ("null", ("", 0)),
        (None, ("", 0)),
    ],
)
def test_asr_shapes(raw, expected):
    assert asr_text(raw) == expected


def test_ocr_removes_captions_repeated_across_frames_in_time_order():
    frames = [
        {"frame": i, "time": 0.04 * (i + 1), "text": "宝马X5 售价30万" if i < 40 else "全新 设计"} for i in range(60)
    ]
    frames.append({"frame": 99, "time": 0.0, "text": "片头"})
    assert ocr_text(json.dumps(frames, ensure_ascii=False)) == ("片头 宝马X5 售价30万 全新 设计", 61, 3)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            '[{"time": 1.0, "texts": ["车型", "售价"]}, {"time": 2.0, "texts": ["售价", "新字幕"]}]',
            ("车型 售价 新字幕", 2, 3),
        ),
        ('[{"ts": 1, "words": [{"text": "词一"}, {"text": "词二"}]}]', ("词一 词二", 1, 2)),
        ('[["甲", "乙"], ["乙", "丙"]]', ("甲 乙 丙", 4, 3)),
        ('["  空白   不同 ", "空白 不同"]', ("空白 不同", 2, 1)),
    ],
)
def test_ocr_shapes(raw, expected):
    assert ocr_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('[{"text": "截断', "unparsable JSON"),
        ('{"code": 500, "msg": "timeout"}', "unknown shape: object with keys"),
        ("[1, 2, 3]", "array element of type int"),
        ('"just a string"', "top level is str"),
        ('[{"start": 1.0}]', "without a text field"),
        ("[" * 10 + "]" * 10, "nested deeper"),
    ],
)
def test_unknown_shapes_raise_with_a_reason(raw, reason):
    with pytest.raises(MediaShapeError, match=reason):
        asr_text(raw)


def test_ocr_keeps_the_longest_of_captions_revealed_or_truncated_over_consecutive_frames():
    frames = [
        "综合来看",
        "综合来看,我们更推荐",
        "综合来看,我们更推荐次顶配车型",
        "综合来看,我们更推荐次顶配车",
        "新的字幕",
        "来看",
    ]
    assert ocr_text(json.dumps(frames, ensure_ascii=False)) == ("综合来看,我们更推荐次顶配车型 新的字幕 来看", 6, 3)
