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
