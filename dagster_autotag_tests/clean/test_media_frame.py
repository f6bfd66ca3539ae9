"""The vectorised ASR/OCR parser must agree with the per-row reference parser, row for row."""

import polars as pl
import pytest

from dagster_autotag.clean import media_frame, media_json
from dagster_autotag.sample.generator import generate_day

EDGE_CASES = [
    None,
    "",
    "  ",
    "[]",
    "null",
    '[{"text": "b", "start": 2}, {"text": "a", "start": 1}]',
    '[{"text": "no time"}, {"text": "keeps order", "start": 0}]',
    '[{"onebest": "乙", "bg": 3400}, {"onebest": "甲", "bg": 1200}]',
    '[{"time": 1, "texts": ["x", "y"]}, {"time": 0, "texts": ["y", "z"]}]',
    '[{"ts": 1, "words": [{"text": "w1"}, {"text": "w2"}]}]',
    '[{"ts": 1, "words": [{"start": 1}]}]',  # word without text: quarantined
    '["a", null, "b"]',
    "[null]",
    '[[{"text": "x", "start": 1}], [{"text": "y", "start": 0}]]',
    '[["s1", "s2"], ["s2", "s3"]]',
    '[{"text": "a", "start": "1.5"}, {"text": "b", "start": "0.5"}]',  # string times: reference path
    '{"result": [{"text": "wrapped"}]}',
    '[[[{"text": "deep"}]]]',
    '[{"text": "truncated',
    '{"code": 500}',
    "[1, 2, 3]",
    '[{"start": 1.0}]',
    '"a string"',
    '[{"text": "ＢＭＷ　Ｘ５"}, {"text": "BMW X5"}, {"text": "综合来看"}, {"text": "综合来看,推荐"}]',
    # decoded with only the fields a row names: keys that appear late, escaped or inside values
    '[{"text": "a", "start": 2}, {"onebest": "b", "bg": 1}]',
    '[{"text": "a", "start": 2}' + ', {"text": "pad"}' * 40 + ', {"text": "late", "start": "x"}]',
    '[{"\\u0074ext": "escaped key", "start": 1}, {"text": "plain", "start": 0}]',
    '[{"caption": "the word \\"texts\\" inside", "time": 1}, {"caption": "c", "time": 0}]',
    '[[{"txt": "n1", "st": 2}], [{"txt": "n2", "st": 1}, {"content": "n3"}]]',
]


# Odd shapes: text where only a JSON string may be text (both parsers quarantine a number or
# boolean there), strings where a list belongs, and lookalikes that must stay valid.
ODD_SHAPES = [
    '[{"text": 5}]',
    '[{"text": 5.5, "start": 1}]',
    '[{"text": -0.0}]',
    '[{"text": 12345678901234567890}]',
    '[{"text": true}]',
    '[{"text": null}]',
    '[{"text": 5, "onebest": "hi"}]',  # the first text key that is a string wins
    '[{"texts": ["a"], "text": 5}]',
    '[{"text": ["a"]}]',
    '[{"text": {"a": 1}}]',
    '["a", 5]',
    '["a", true]',
    '[["a", 5]]',
    '[["a"], 5]',
    '[{"texts": ["a", 5]}]',
    '[{"texts": [1]}]',
    '[{"texts": "abc"}]',
    '[{"texts": [null]}]',
    '[{"words": [{"text": 5}]}]',
    '[{"words": ["w"]}]',
    '[{"words": [5]}]',
    '[{"text": "a", "start": true}]',
    '[{"text": "a", "start": "x", "bg": 3}, {"text": "b", "bg": 1}]',
    '[{"text": "a", "start": "1e3"}, {"text": "b", "start": 5}]',
    '[{"text": "a", "start": null, "bg": 2}, {"text": "b", "bg": 1}]',
    '[{"text": "a", "start": [1]}]',
    '[{"text": "a"}, "b"]',
    '["b", {"text": "a"}]',
    '[{"text": "a"}, 3]',
    '[{"text": "a", "start": 1e400}]',
    '[{"text": "a"},]',
    '[{"TEXT": "a"}]',
    "[{}]",
    "[[]]",
    "[[null]]",
    '[{"text": ""}]',
    '[{"text": "5"}, {"text": "true"}]',  # strings that look like scalars are text
    '["12", "-3.5", "false"]',
    '[{"text": "1,2 [3, 4]"}]',
]


def both(values: list[str | None], kind: str) -> tuple[list[tuple], list[tuple]]:
    frame = (media_frame.parse_asr_column if kind == "asr" else media_frame.parse_ocr_column)(
        pl.Series(values, dtype=pl.String)
    )
    reference = media_json.asr_text if kind == "asr" else media_json.ocr_text
    expected = []
    for value in values:
        try:
            expected.append((*reference(value), None))
        except media_json.MediaShapeError as err:
            expected.append((None, *([None] * (frame.width - 2)), str(err)))
    return [tuple(r) for r in frame.iter_rows()], expected


@pytest.mark.parametrize("kind", ["asr", "ocr"])
def test_edge_cases_agree_with_the_reference(kind):
    got, expected = both(EDGE_CASES, kind)
    assert got == expected


@pytest.mark.parametrize("kind", ["asr", "ocr"])
def test_a_generated_day_agrees_with_the_reference(kind, monkeypatch):
    monkeypatch.setattr(media_frame, "CHUNK_ROWS", 64)  # many chunks, so the bisection path runs too
    day = generate_day("2024-05-01", items=3000, seed=5)
    values = [row[1] for row in day.rows[kind]]
    got, expected = both(values, kind)
    assert len(got) == len(values) > 500
    mismatches = [(v, g, e) for v, g, e in zip(values, got, expected) if g != e]
    assert mismatches == []
    assert sum(1 for g in got if g[-1] is not None) >= 2  # the day's malformed payloads were caught


@pytest.mark.parametrize("kind", ["asr", "ocr"])
def test_odd_shapes_agree_with_the_reference(kind):
    got, expected = both(ODD_SHAPES, kind)
    assert [(v, g) for v, g, e in zip(ODD_SHAPES, got, expected) if g != e] == []
    # the rule itself: text only from JSON strings
    by_shape = dict(zip(ODD_SHAPES, got))
    assert by_shape['[{"text": 5}]'][-1] == "unknown shape: object without a text field (keys ['text'])"
    assert by_shape['["a", true]'][-1] == "unknown shape: array element of type bool"
    assert by_shape['[{"text": 5, "onebest": "hi"}]'][0] == "hi"
    assert by_shape['[{"text": "5"}, {"text": "true"}]'][0] == "5 true"
