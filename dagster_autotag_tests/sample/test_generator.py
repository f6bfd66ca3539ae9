"""generate_day: shape, determinism, label prevalence, text and media realism, row-level dirt."""

import json
import re
from collections import Counter
from datetime import datetime

import pytest

from dagster_autotag.ingest.tables import EXCLUDED_GC, EXPORT_TABLES, KEPT_DTYPES
from dagster_autotag.sample import taxonomy, vocab
from dagster_autotag.sample.generator import generate_day
from dagster_autotag_tests.sample.conftest import DT, ITEMS

TAGS = taxonomy.tags_by_id()


# ---- helpers -------------------------------------------------------------------------------------


def _items(day) -> dict[str, tuple]:
    return {r[0]: r for r in day.rows["news_pool"] if r[0]}


def _item_tags(day) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in day.rows["news_pool"]:
        out.setdefault(r[0], set()).update(t for t in (r[3] or "").split(",") if t)
    return out


def _content_names(tag_ids: set[str]) -> set[str]:
    """Active content labels an item carries, ancestors included (a deeper tag implies them)."""
    names: set[str] = set()
    for t in tag_ids:
        tag = TAGS.get(t)
        if tag and tag.tag_type == "内容标签" and tag.status == "1":
            names.update(tag.path_names)
    return names


def _parses_time(value) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        return True
    except (TypeError, ValueError):
        return False


def _media_texts(obj) -> list[str] | None:
    """Texts of a recognised ASR/OCR shape (a JSON array of …), None for an unknown shape."""
    return _texts_in(obj) if isinstance(obj, list) else None


def _texts_in(obj) -> list[str] | None:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, list):
        out: list[str] = []
        for e in obj:
            t = _texts_in(e)
            if t is None:
                return None
            out += t
        return out
    if isinstance(obj, dict):
        for key in ("text", "onebest"):
            if isinstance(obj.get(key), str):
                return [obj[key]]
        if isinstance(obj.get("texts"), list):
            return _texts_in(obj["texts"])
    return None


FULLWIDTH_ALNUM = re.compile("[Ａ-Ｚａ-ｚ０-９\u3000]")
HTML = re.compile(r"<[a-z/][^>]*>|&(amp|nbsp|#x[0-9A-Fa-f]+);")
CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")
ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\ufeff]")


def _texts(r):
    return [v for v in (r[1], r[2]) if v is not None]


def detect_news_dirt(day) -> Counter:
    """Row-level dirt found in news_pool by looking at the rows (not at what the generator says)."""
    rows = day.rows["news_pool"]
    found: Counter = Counter()
    found["duplicate_row"] = sum(c - 1 for c in Counter(rows).values() if c > 1)
    for r in rows:
        found["dtype_other"] += r[4] not in KEPT_DTYPES
        found["grade_z"] += r[5] == "Z"
        found["gc_excluded"] += r[6] in EXCLUDED_GC
        found["null_title"] += r[1] is None
        found["null_summary"] += r[2] is None
        found["tab_newline"] += any(c in v for v in _texts(r) for c in "\t\n\r")
        found["html"] += bool(r[1] and HTML.search(r[1]))
        found["fullwidth"] += bool(r[1] and FULLWIDTH_ALNUM.search(r[1]))
        found["zero_width"] += any(ZERO_WIDTH.search(v) for v in _texts(r))
        found["control_chars"] += any(CONTROL.search(v) for v in _texts(r))
        found["bad_create_time"] += not _parses_time(r[7])
        found["bad_itemid"] += not r[0]
        found["unknown_tag"] += any(t not in TAGS for t in (r[3] or "").split(",") if r[3])
    return found


def detect_media_dirt(day, table: str) -> Counter:
    rows = day.rows[table]
    pool = {r[0] for r in day.rows["news_pool"]}
    found: Counter = Counter()
    found["duplicate"] = sum(c - 1 for c in Counter(rows).values() if c > 1)
    found["orphan"] = len({r[0] for r in rows if r[0] not in pool})
    for _, payload in rows:
        if payload is None:
            continue
        try:
            parsed = json.loads(payload)
        except ValueError:
            found["malformed_json"] += 1
            continue
        found["unknown_shape"] += _media_texts(parsed) is None
    return found


# ---- shape and determinism -----------------------------------------------------------------------


def test_rows_have_export_column_order_and_string_or_null_values(dirty_day):
    assert dirty_day.dt == DT
    assert set(dirty_day.rows) == {"news_pool", "asr", "ocr", "tag_dim"}
    for name, rows in dirty_day.rows.items():
        ncols = len(EXPORT_TABLES[name].columns)
        assert rows, name
        for r in rows:
            assert isinstance(r, tuple) and len(r) == ncols
            assert all(v is None or isinstance(v, str) for v in r)
            assert not any(v is not None and "\0" in v for v in r)  # NUL would break tsv2


def test_same_seed_same_rows_other_seed_or_day_different():
    a = generate_day("2024-05-02", items=400, seed=5)
    b = generate_day("2024-05-02", items=400, seed=5)
    c = generate_day("2024-05-02", items=400, seed=6)
    d = generate_day("2024-05-03", items=400, seed=5)
    assert a.rows == b.rows and a.dirt == b.dirt
    assert a.rows["news_pool"] != c.rows["news_pool"] and a.rows["asr"] != c.rows["asr"]
    assert {r[0] for r in a.rows["news_pool"]}.isdisjoint({r[0] for r in d.rows["news_pool"]} - {None, ""})


def test_dirt_off_leaves_the_clean_data_unchanged(clean_day, dirty_day):
    """The dirt has its own random stream: switching it on only adds dirt."""
    clean = {r[0]: r for r in clean_day.rows["news_pool"]}
    dirty = _items(dirty_day)
    same = sum(1 for iid, r in dirty.items() if clean.get(iid) == r)
    assert same / len(clean) > 0.97


def test_itemids_are_numeric_unique_per_item_and_times_within_the_day(clean_day):
    items = _items(clean_day)
    assert len(items) == ITEMS
    assert all(i.isdigit() for i in items)
    for r in items.values():
        assert r[7].startswith(DT + " ") and _parses_time(r[7])
    # one row per (item, tag): rows of an item agree on everything but the tag
    by_item: dict[str, set] = {}
    for r in clean_day.rows["news_pool"]:
        by_item.setdefault(r[0], set()).add(r[:3] + r[4:])
    assert all(len(v) == 1 for v in by_item.values())
    assert 2.5 <= len(clean_day.rows["news_pool"]) / ITEMS <= 3.5


def test_item_attributes_follow_the_real_distributions(clean_day):
    items = list(_items(clean_day).values())
    dtypes = Counter(r[4] for r in items)
    assert set(dtypes) == set(KEPT_DTYPES)
    assert 0.25 <= dtypes["yichehao_video"] / len(items) <= 0.35
    assert {r[5] for r in items} == {"A", "B", "C", "D"}
    assert {r[6] for r in items} == {"AGC-NORMAL", "PGC", "UGC"}
    tags = [r[3] for r in clean_day.rows["news_pool"]]
    assert 0.05 < sum(t is None for t in tags) / len(items) < 0.15  # untagged items: one NULL row
    assert any(t and "," in t for t in tags)  # comma lists
    types = Counter(TAGS[t].tag_type for t in tags if t and "," not in t)
    assert types["车系标签"] and types["品牌标签"]  # for the tag-type filter to remove
    assert any(TAGS[t].status == "0" for t in tags if t and "," not in t)  # inactive tags too


# ---- labels ----------------------------------------------------------------------------------------


def test_label_prevalence_is_like_the_real_seed(clean_day):
    item_tags = _item_tags(clean_day)
    gate_items = [_content_names(t) for t in item_tags.values() if "新车资讯" in _content_names(t)]
    share = len(gate_items) / len(item_tags)
    assert 0.10 <= share <= 0.25
    child = Counter(c for names in gate_items for c in names if c in taxonomy.GATE_CHILDREN)
    assert set(child) == set(taxonomy.GATE_CHILDREN)
    ranked = [c for c, _ in child.most_common()]
    assert ranked[0] == "新车解析" and ranked[-1] == "新车到店"
    assert 0.55 <= child["新车解析"] / len(gate_items) <= 0.8
    assert child["新车到店"] / len(gate_items) <= 0.025
    assert 0.12 <= child["新车上市"] / len(gate_items) <= 0.3
    overlaps = sum(1 for names in gate_items if {"新车上市", "新车解析"} <= names)
    assert overlaps > 0
    # deeper tags are used (and imply their ancestors)
    used = {t for ts in item_tags.values() for t in ts}
    assert {"30151", "30161"} <= used


def test_text_carries_label_signal_but_is_not_trivially_separable(clean_day):
    items = _items(clean_day)
    tags = _item_tags(clean_day)
    spy = [items[i][1] for i, t in tags.items() if "谍照" in _content_names(t)]
    other = [items[i][1] for i, t in tags.items() if "新车资讯" not in _content_names(t)]
    spy_rate = sum("谍照" in t for t in spy) / len(spy)
    other_rate = sum("谍照" in t for t in other) / len(other)
    assert 0.3 < spy_rate < 0.95  # the cue is drawn with probability < 1
    assert other_rate < 0.05


def test_auto_show_items_name_the_show_in_the_title(clean_day):
    items = _items(clean_day)
    shows = [r for r in items.values() if re.search("(北京|上海|广州|成都)(国际)?车展", r[1])]
    assert 0.02 <= len(shows) / len(items) <= 0.12
    tags = _item_tags(clean_day)
    tagged = [r for r in shows if "车展" in _content_names(tags[r[0]])]
    assert 0 < len(tagged) < len(shows)  # sometimes tagged, sometimes only in the title


def test_titles_and_summaries_look_like_auto_news(clean_day):
    items = list(_items(clean_day).values())
    for r in items:
        assert 40 <= len(r[2]) <= 150
        assert 4 <= len(r[1]) <= 60
    text = "".join(r[1] + r[2] for r in items)
    for word in ("万元", "上市", "预售", "试驾", "官方", "解析", "曝光"):
        assert word in text
    assert len({r[1] for r in items}) > 0.8 * len(items)  # not a handful of titles repeated


# ---- media -------------------------------------------------------------------------------------------


def test_asr_rows_follow_the_videos_with_all_shapes(clean_day):
    items = _items(clean_day)
    videos = {i for i, r in items.items() if r[4] == "yichehao_video"}
    asr = clean_day.rows["asr"]
    ids = [r[0] for r in asr]
    assert len(ids) == len(set(ids)) and set(ids) <= videos
    assert 0.9 * len(videos) <= len(ids) < len(videos)  # a few videos have no ASR row
    shapes = Counter()
    for _vid, payload in asr:
        if payload is None:
            shapes["null"] += 1
            continue
        parsed = json.loads(payload)
        texts = _media_texts(parsed)
        assert texts is not None, payload[:100]
        if not parsed:
            shapes["empty"] += 1
            continue
        head = parsed[0]
        shape = "nested" if isinstance(head, list) else "strings" if isinstance(head, str) else tuple(sorted(head))
        shapes[shape] += 1
        assert 200 <= sum(map(len, texts)) <= 1500
        if shape == ("end", "start", "text"):
            assert all(isinstance(s["start"], float) and s["end"] > s["start"] for s in parsed)
        if shape == ("bg", "ed", "onebest"):
            assert all(isinstance(s["bg"], int) and s["ed"] > s["bg"] for s in parsed)
    assert set(shapes) == {"null", "empty", "nested", "strings", ("end", "start", "text"), ("bg", "ed", "onebest")}
    # sometimes listed out of time order
    starts = [[s["start"] for s in json.loads(p)] for _, p in asr if p and p.startswith('[{"text"')]
    assert any(s != sorted(s) for s in starts)


def test_asr_speech_is_about_the_items_car(clean_day):
    models = [m[1] for m in vocab.MODELS]
    items = _items(clean_day)
    shared = total = 0
    for vid, payload in clean_day.rows["asr"]:
        texts = _media_texts(json.loads(payload)) if payload else None
        if texts:
            speech = "".join(texts)
            item = items[vid][1] + items[vid][2]
            total += 1
            shared += any(m in speech and m in item for m in models)
    assert shared / total > 0.6


def test_ocr_captions_repeat_over_frames_with_all_shapes(clean_day):
    ocr = clean_day.rows["ocr"]
    shapes = Counter()
    repeats = 0
    for _, payload in ocr:
        if payload is None:
            shapes["null"] += 1
            continue
        parsed = json.loads(payload)
        texts = _media_texts(parsed)
        assert texts is not None
        if not parsed:
            shapes["empty"] += 1
            continue
        head = parsed[0]
        shapes["nested" if isinstance(head, list) else "strings" if isinstance(head, str) else tuple(sorted(head))] += 1
        repeats += len(texts) - len(set(texts))
    assert set(shapes) == {"null", "empty", "nested", "strings", ("frame", "text", "time"), ("texts", "time")}
    assert repeats > 10 * len(ocr)  # captions repeat across consecutive frames many times


# ---- row-level dirt ----------------------------------------------------------------------------------


NEWS_KINDS = (
    "dtype_other", "grade_z", "gc_excluded", "duplicate_row", "null_title", "null_summary", "tab_newline",
    "html", "fullwidth", "zero_width", "control_chars", "bad_create_time", "bad_itemid", "unknown_tag",
)  # fmt: skip
MEDIA_KINDS = ("duplicate", "orphan", "malformed_json", "unknown_shape")


def test_every_dirt_kind_is_present_when_enabled(dirty_day):
    found = detect_news_dirt(dirty_day)
    missing = [k for k in NEWS_KINDS if found[k] == 0]
    assert not missing, found
    for table in ("asr", "ocr"):
        found_media = detect_media_dirt(dirty_day, table)
        assert all(found_media[k] > 0 for k in MEDIA_KINDS), (table, found_media)
    # what the generator reports matches the kinds it injected
    assert {k.split(".", 1)[1] for k in dirty_day.dirt if k.startswith("news_pool.")} == set(NEWS_KINDS)


def test_no_dirt_when_disabled(clean_day):
    assert clean_day.dirt == {}
    assert sum(detect_news_dirt(clean_day).values()) == 0
    for table in ("asr", "ocr"):
        assert sum(detect_media_dirt(clean_day, table).values()) == 0


def test_dirt_is_a_small_share_of_rows(dirty_day):
    rows = len(dirty_day.rows["news_pool"])
    found = detect_news_dirt(dirty_day)
    assert 0.005 <= sum(found.values()) / rows <= 0.03  # ~1–2% of rows carry some dirt
    # what the ingest would have to quarantine (missing id, unparsable time) stays far below 1%
    assert (found["bad_itemid"] + found["bad_create_time"]) / rows < 0.003


def test_html_fullwidth_and_unknown_tags_look_real(dirty_day):
    titles = [r[1] for r in dirty_day.rows["news_pool"] if r[1]]
    assert any(HTML.search(t) for t in titles)
    assert any(re.search("[Ａ-Ｚ０-９]", t) for t in titles)
    unknown = {t for r in dirty_day.rows["news_pool"] if r[3] for t in r[3].split(",") if t not in TAGS}
    assert unknown and unknown <= set(taxonomy.UNKNOWN_TAG_IDS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dt": "2024-02-30"}, "valid date"),
        ({"dt": "20240501"}, "YYYY-MM-DD"),
        ({"dt": DT, "items": 0}, "items"),
        ({"dt": DT, "seed": -1}, "seed"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_day(**kwargs)


def test_small_days_get_no_forced_bad_payloads_so_they_stay_under_the_quarantine_limit():
    from dagster_autotag.sample.dirt import QUARANTINED_MEDIA_DIRT, media_dirt_counts

    small, large = media_dirt_counts(90), media_dirt_counts(1000)
    assert all(small[k] == 0 for k in QUARANTINED_MEDIA_DIRT)
    assert all(large[k] >= 1 for k in QUARANTINED_MEDIA_DIRT)
    assert sum(large[k] for k in QUARANTINED_MEDIA_DIRT) / 1000 < 0.01
