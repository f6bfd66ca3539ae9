from collections import Counter

from dagster_autotag.ingest.tables import CONTENT_TAG_TYPE, TAG_DIM
from dagster_autotag.sample import taxonomy
from dagster_autotag.sample.generator import generate_day

EXPECTED_CHILDREN = {
    "新车资讯": ["谍照", "实车曝光", "配置曝光", "申报图", "预热", "新车上市", "预售", "发布亮相", "新车官图", "新车报价", "新车到店", "新车解析"],
    "导购": ["单车导购", "对比导购", "多车导购", "购车手册", "买车技巧"],
    "评测": ["评测导购", "试驾", "探店报价", "长测"],
    "用车": ["保养", "改装", "用车常识"],
    "技术": ["新能源技术", "智能驾驶", "动力总成"],
    "车展": ["北京车展", "上海车展", "广州车展", "成都车展"],
}  # fmt: skip


def _rows():
    return taxonomy.tag_dim_rows()


def test_rows_match_the_export_columns_and_ids_are_unique_integers():
    rows = _rows()
    assert all(len(r) == len(TAG_DIM.columns) for r in rows)
    assert all(isinstance(v, str) for r in rows for v in r)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))
    assert all(i.isdigit() for i in ids)
    assert {r[5] for r in rows} == {"0", "1"}


def test_paths_are_consistent_with_ids_names_and_parents():
    by_id = {r[0]: r for r in _rows()}
    for tid, name, _, path, path_name, _ in by_id.values():
        ids, names = path.split(","), path_name.split(",")
        assert ids[-1] == tid and names[-1] == name
        assert len(ids) == len(names) and 1 <= len(ids) <= 4
        for anc_id, anc_name in zip(ids, names):
            assert by_id[anc_id][1] == anc_name  # every ancestor is in the snapshot, same name
        if len(ids) > 1:
            parent = by_id[ids[-2]]
            assert parent[3] == ",".join(ids[:-1])


def test_level_one_content_tags_have_exactly_the_expected_children():
    rows = [r for r in _rows() if r[2] == CONTENT_TAG_TYPE and r[5] == "1"]
    children: dict[str, list[str]] = {}
    for _, name, _, _, path_name, _ in rows:
        parts = path_name.split(",")
        if len(parts) == 2:
            children.setdefault(parts[0], []).append(name)
    for level1, expected in EXPECTED_CHILDREN.items():
        assert children[level1] == expected
    assert tuple(EXPECTED_CHILDREN["新车资讯"]) == taxonomy.GATE_CHILDREN


def test_deeper_levels_inactive_tags_and_other_tag_types_exist():
    rows = _rows()
    levels = Counter(len(r[3].split(",")) for r in rows if r[2] == CONTENT_TAG_TYPE)
    assert levels[3] >= 3 and levels[4] >= 1
    by_name = {r[1]: r for r in rows}
    assert by_name["路试谍照"][4] == "新车资讯,谍照,路试谍照"
    assert by_name["国产新车上市"][4] == "新车资讯,新车上市,国产新车上市"
    assert by_name["进口新车上市"][4] == "新车资讯,新车上市,进口新车上市"
    assert any(r[5] == "0" and r[2] == CONTENT_TAG_TYPE for r in rows)
    assert {"车系标签", "品牌标签"} <= {r[2] for r in rows}
    assert by_name["宝马X5"][4] == "宝马,宝马X5" and by_name["宝马X5"][2] == "车系标签"
    # the example ids of the design notes
    assert by_name["谍照"][3] == "30100,30101" and by_name["新车上市"][0] == "30106"


def test_unknown_ids_are_absent_and_snapshot_is_identical_every_day():
    ids = {r[0] for r in _rows()}
    assert not ids & set(taxonomy.UNKNOWN_TAG_IDS)
    a = generate_day("2024-05-01", items=20, seed=1).rows["tag_dim"]
    b = generate_day("2024-09-30", items=20, seed=2).rows["tag_dim"]
    assert a == b == _rows()


def test_every_template_placeholder_is_defined():
    """A typo in a template would only fail on the day that template is drawn: check them all."""
    import random

    from dagster_autotag.sample import text, vocab

    templates = [*vocab.SHARED_TITLES, *vocab.SHARED_SENTENCES, *vocab.FEATURES, *vocab.SPEECH_OPENINGS,
                 *vocab.OCR_CAPTIONS, *vocab.SHOW_TITLE_PREFIXES, *vocab.SHOW_SENTENCES]  # fmt: skip
    for cues in vocab.LABEL_TEXT.values():
        templates += [*cues["titles"], *cues["sentences"]]
    for model in range(len(vocab.MODELS)):
        ctx = text.make_context(random.Random(model), model, (model + 1) % len(vocab.MODELS), 2024, "北京车展")
        for t in templates:
            filled = t.format_map(ctx)
            assert "{" not in filled and "}" not in filled
    labels_without_text = set(taxonomy.content_tag_ids()) - set(vocab.LABEL_TEXT)
    # level-1 tags and deeper variants are tagged, not written about; every leaf label has cues
    assert labels_without_text <= {"新车资讯", "导购", "评测", "用车", "技术", "车展", "行业资讯", "路试谍照",
                                   "国产新车上市", "进口新车上市", "新能源新车上市", "新能源试驾", "新能源保养"}  # fmt: skip
