"""The sample tag dimension: the taxonomy the generator snapshots every day (data, not logic).

Mirrors `ycrc_rc_eng.dwd_app_reco_tagm_new_tag_content_a`: content tags ('内容标签') in a tree of
levels 1–4, plus a few tags the export filters must remove (inactive ones, other tag types).
Ids are stable across days; `tag_path` / `tag_path_name` are derived from the parent links.
"""

from dataclasses import dataclass
from functools import cache

from dagster_autotag.sample import vocab

CONTENT = "内容标签"
SERIES = "车系标签"
BRAND = "品牌标签"

ACTIVE = "1"
INACTIVE = "0"

# The P0 gate and its twelve children (order = id order 30101..30112).
GATE = "新车资讯"
GATE_CHILDREN = (
    "谍照",
    "实车曝光",
    "配置曝光",
    "申报图",
    "预热",
    "新车上市",
    "预售",
    "发布亮相",
    "新车官图",
    "新车报价",
    "新车到店",
    "新车解析",
)

# (id, name, parent id, status); all of type 内容标签. Parents come before their children.
CONTENT_TAGS: tuple[tuple[str, str, str | None, str], ...] = (
    ("30100", "新车资讯", None, ACTIVE),
    ("30101", "谍照", "30100", ACTIVE),
    ("30102", "实车曝光", "30100", ACTIVE),
    ("30103", "配置曝光", "30100", ACTIVE),
    ("30104", "申报图", "30100", ACTIVE),
    ("30105", "预热", "30100", ACTIVE),
    ("30106", "新车上市", "30100", ACTIVE),
    ("30107", "预售", "30100", ACTIVE),
    ("30108", "发布亮相", "30100", ACTIVE),
    ("30109", "新车官图", "30100", ACTIVE),
    ("30110", "新车报价", "30100", ACTIVE),
    ("30111", "新车到店", "30100", ACTIVE),
    ("30112", "新车解析", "30100", ACTIVE),
    ("30113", "新车预告", "30100", INACTIVE),
    ("30151", "路试谍照", "30101", ACTIVE),
    ("30161", "国产新车上市", "30106", ACTIVE),
    ("30162", "进口新车上市", "30106", ACTIVE),
    ("30171", "新能源新车上市", "30161", ACTIVE),
    ("30200", "导购", None, ACTIVE),
    ("30201", "单车导购", "30200", ACTIVE),
    ("30202", "对比导购", "30200", ACTIVE),
    ("30203", "多车导购", "30200", ACTIVE),
    ("30204", "购车手册", "30200", ACTIVE),
    ("30205", "买车技巧", "30200", ACTIVE),
    ("30300", "评测", None, ACTIVE),
    ("30301", "评测导购", "30300", ACTIVE),
    ("30302", "试驾", "30300", ACTIVE),
    ("30303", "探店报价", "30300", ACTIVE),
    ("30304", "长测", "30300", ACTIVE),
    ("30351", "新能源试驾", "30302", ACTIVE),
    ("30400", "用车", None, ACTIVE),
    ("30401", "保养", "30400", ACTIVE),
    ("30402", "改装", "30400", ACTIVE),
    ("30403", "用车常识", "30400", ACTIVE),
    ("30404", "二手车", "30400", INACTIVE),
    ("30451", "新能源保养", "30401", ACTIVE),
    ("30500", "技术", None, ACTIVE),
    ("30501", "新能源技术", "30500", ACTIVE),
    ("30502", "智能驾驶", "30500", ACTIVE),
    ("30503", "动力总成", "30500", ACTIVE),
    ("30600", "车展", None, ACTIVE),
    ("30601", "北京车展", "30600", ACTIVE),
    ("30602", "上海车展", "30600", ACTIVE),
    ("30603", "广州车展", "30600", ACTIVE),
    ("30604", "成都车展", "30600", ACTIVE),
    ("30700", "行业资讯", None, ACTIVE),
    ("30701", "销量", "30700", ACTIVE),
    ("30702", "政策", "30700", ACTIVE),
    ("30800", "旧版分类", None, INACTIVE),
    ("30801", "杂谈", "30800", INACTIVE),
)

# 品牌标签 and 车系标签 come from the sample vocabulary (vocab.MODELS), numbered in its order:
# brands 50001.. by first appearance, series 40001.. (append to MODELS only, or ids move).
# The series path runs through its brand: tag_path "50001,40001", tag_path_name "宝马,宝马X5".
BRAND_TAGS: tuple[tuple[str, str], ...] = tuple(
    (str(50001 + i), brand) for i, brand in enumerate(dict.fromkeys(m[0] for m in vocab.MODELS))
)
_BRAND_ID = {name: tid for tid, name in BRAND_TAGS}
SERIES_TAGS: tuple[tuple[str, str, str], ...] = tuple(
    (str(40001 + i), m[1], _BRAND_ID[m[0]]) for i, m in enumerate(vocab.MODELS)
)
# A retired series tag: kept in the snapshot with status 0.
INACTIVE_SERIES_TAGS: tuple[tuple[str, str, str], ...] = (("40999", "宝马X6 M", _BRAND_ID["宝马"]),)

# Ids guaranteed absent from the snapshot (used for the "unknown tag" dirt).
UNKNOWN_TAG_IDS = ("30199", "30999", "31234", "99999")


@dataclass(frozen=True)
class Tag:
    id: str
    name: str
    tag_type: str
    parent: str | None
    status: str
    path: tuple[str, ...]  # ids from the level-1 tag down to this one
    path_names: tuple[str, ...]

    @property
    def level(self) -> int:
        return len(self.path)

    def row(self) -> tuple[str, str, str, str, str, str]:
        """The tag_dim export row: id, tag_name, tag_type_name, tag_path, tag_path_name, status."""
        return (self.id, self.name, self.tag_type, ",".join(self.path), ",".join(self.path_names), self.status)


@cache
def all_tags() -> tuple[Tag, ...]:
    """Every tag in the daily snapshot, in a fixed order."""
    raw: list[tuple[str, str, str | None, str, str]] = [
        (tid, name, parent, status, CONTENT) for tid, name, parent, status in CONTENT_TAGS
    ]
    raw += [(tid, name, None, ACTIVE, BRAND) for tid, name in BRAND_TAGS]
    raw += [(tid, name, brand, ACTIVE, SERIES) for tid, name, brand in SERIES_TAGS]
    raw += [(tid, name, brand, INACTIVE, SERIES) for tid, name, brand in INACTIVE_SERIES_TAGS]
    by_id: dict[str, Tag] = {}
    for tid, name, parent, status, kind in raw:
        if tid in by_id:
            raise ValueError(f"duplicate tag id {tid}")
        if parent is None:
            path, names = (tid,), (name,)
        else:
            up = by_id[parent]  # parents are listed first
            path, names = up.path + (tid,), up.path_names + (name,)
        by_id[tid] = Tag(tid, name, kind, parent, status, path, names)
    overlap = set(UNKNOWN_TAG_IDS) & set(by_id)
    if overlap:
        raise ValueError(f"UNKNOWN_TAG_IDS overlap the taxonomy: {sorted(overlap)}")
    return tuple(by_id.values())


@cache
def tags_by_id() -> dict[str, Tag]:
    return {t.id: t for t in all_tags()}


@cache
def content_tag_ids() -> dict[str, str]:
    """Active content tag name -> id (names are unique among active content tags)."""
    out: dict[str, str] = {}
    for t in all_tags():
        if t.tag_type == CONTENT and t.status == ACTIVE:
            if t.name in out:
                raise ValueError(f"duplicate content tag name {t.name}")
            out[t.name] = t.id
    return out


@cache
def series_tag_ids() -> dict[str, str]:
    return {t.name: t.id for t in all_tags() if t.tag_type == SERIES and t.status == ACTIVE}


@cache
def brand_tag_ids() -> dict[str, str]:
    return {t.name: t.id for t in all_tags() if t.tag_type == BRAND and t.status == ACTIVE}


def tag_dim_rows() -> list[tuple[str, str, str, str, str, str]]:
    """The tag_dim snapshot (identical every day)."""
    return [t.row() for t in all_tags()]
