import polars as pl
import pytest

from dagster_autotag.clean.text import normalise_columns, normalise_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<b>宝马X5</b>谍照曝光", "宝马X5谍照曝光"),  # inline tags vanish without splitting CJK
        ("第一段<br/>第二段<p class='x'>第三段</p>", "第一段 第二段 第三段"),  # block tags separate
        ("奔驰&amp;宝马&nbsp;对比", "奔驰&宝马 对比"),
        ("&#x4E2D;国&#26032;车", "中国新车"),
        ("&lt;b&gt;不是标签", "<b>不是标签"),  # escaped markup is text, not a tag
        ("ＢＭＷ　Ｘ５售价３０万，！", "BMW X5售价30万,!"),
        ("零\u200b宽\ufeff字符\u200d", "零宽字符"),
        ("控制\x07字符\x1b", "控制字符"),
        ("  多个   空白\t制表\n换行  ", "多个 空白 制表 换行"),
        ("a < b > c", "a < b > c"),
        ("   ", ""),
        (None, None),
    ],
)
def test_normalise_text(raw, expected):
    assert normalise_text(raw) == expected


def test_entities_decoded_only_where_present_and_other_rows_untouched():
    frame = pl.DataFrame({"t": ["a&amp;b", "plain", None, "x&unknownentity;y"]})
    out = normalise_columns(frame, ["t"])["t"].to_list()
    assert out == ["a&b", "plain", None, "x&unknownentity;y"]


def test_one_pass_fold_and_whitespace_runs_match_the_regex_definitions():
    # normalise_columns folds and removes characters in one Aho-Corasick pass and rewrites only
    # whitespace runs that are not a single space; both must equal the plain regex definitions.
    invisible = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
    chars = [chr(c) for c in range(0x00, 0x250)] + [chr(c) for c in range(0x2000, 0x2070)]
    chars += [chr(c) for c in range(0xFEFF, 0xFF70)] + ["\u3000", "\u1680", "汽", "车"]
    values = ["".join(chars), " ".join(chars), "a \t\u3000 b\u200b \u200b c  d\n", " x ", "y\u00a0 z"]
    fullwidth = [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"]
    halfwidth = [chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)] + [" "]
    expected = (
        pl.Series(values)
        .str.replace_many(fullwidth, halfwidth)
        .str.replace_all(invisible, "")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
    got = normalise_columns(pl.DataFrame({"t": values}), ["t"])["t"]
    assert got.to_list() == expected.to_list()
