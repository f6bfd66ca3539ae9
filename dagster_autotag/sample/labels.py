"""Which labels (content tags) each sample item carries, and which tag ids its rows reference.

Prevalence follows the real seed: ~17% of items are 新车资讯 (gate), among them 新车解析 ~67% down to
新车到店 ~1%; other items get 导购/评测/用车/技术/行业资讯 tags or none; auto-show items mention the
show in the title and sometimes carry its tag. numpy draws the per-item decisions in bulk.
"""

import bisect
import itertools
import random
from dataclasses import dataclass

import numpy as np

from dagster_autotag.sample import taxonomy, vocab

GATE_SHARE = 0.172
PARENT_ONLY_SHARE = 0.02  # gate items tagged with the level-1 tag only
# Target share of each child among gate items (the generator lands within a few points of these).
CHILD_SHARE = {
    "谍照": 0.12,
    "实车曝光": 0.05,
    "配置曝光": 0.04,
    "申报图": 0.03,
    "预热": 0.035,
    "新车上市": 0.20,
    "预售": 0.06,
    "发布亮相": 0.05,
    "新车官图": 0.045,
    "新车报价": 0.10,
    "新车到店": 0.01,
    "新车解析": 0.67,
}
assert tuple(CHILD_SHARE) == taxonomy.GATE_CHILDREN
# Independent draws leave ~18% of gate items childless; those get one non-解析 child by weight,
# so the independent probabilities of the others are scaled down to land on CHILD_SHARE.
_OTHERS_SCALE = 0.78

# Non-gate items: topic -> (share, {child: weight}); None = untagged.
TOPICS: dict[str | None, tuple[float, dict[str, float]]] = {
    "导购": (0.30, {"单车导购": 0.32, "对比导购": 0.25, "多车导购": 0.18, "购车手册": 0.15, "买车技巧": 0.10}),
    "评测": (0.20, {"评测导购": 0.30, "试驾": 0.40, "探店报价": 0.20, "长测": 0.10}),
    "用车": (0.16, {"保养": 0.40, "改装": 0.25, "用车常识": 0.35}),
    "技术": (0.12, {"新能源技术": 0.45, "智能驾驶": 0.35, "动力总成": 0.20}),
    "行业资讯": (0.08, {"销量": 0.6, "政策": 0.4}),
    "车展": (0.03, {}),  # the show of the day
    None: (0.11, {}),
}
SHOW_CHILDREN = ("新车上市", "预售", "发布亮相", "新车官图")
LABEL_NOISE = 0.05  # items whose tags belong to another item (tags not matching the text)
COMMA_SHARE = 0.08  # tagged items whose tags come as comma lists ("30101,30106") in fewer rows


@dataclass
class ItemLabels:
    labels: list[list[str]]  # per item: the content labels the text is written from
    tags: list[list[str]]  # per item: tag id strings, one per news_pool row (a row may hold a comma list)
    model: list[int]
    rival: list[int]
    show: list[str]  # "" when the item is not about an auto show
    gate: np.ndarray  # bool, item carries a 新车资讯 tag (before label noise)


def show_of_month(month: int, year: int) -> tuple[str, ...]:
    """The auto shows plausibly in the news in a given month (Beijing and Shanghai alternate)."""
    spring = "北京车展" if year % 2 == 0 else "上海车展"
    if month in (3, 4, 5):
        return (spring,)
    if month in (8, 9):
        return ("成都车展",)
    if month in (11, 12):
        return ("广州车展",)
    return vocab.AUTO_SHOWS


def _model_weights() -> np.ndarray:
    w = 1.0 / (np.arange(len(vocab.MODELS)) % 9 + 2.0)  # a few popular models per brand block
    return w / w.sum()


def assign_labels(rng: np.random.Generator, rnd: random.Random, n: int, year: int, month: int) -> ItemLabels:
    children = taxonomy.GATE_CHILDREN
    ids = taxonomy.content_tag_ids()
    q = np.array([CHILD_SHARE[c] * (1.0 if c == "新车解析" else _OTHERS_SCALE) for c in children])
    other_w = np.array([0.0 if c == "新车解析" else CHILD_SHARE[c] for c in children])
    other_w /= other_w.sum()

    gate = rng.random(n) < GATE_SHARE
    child = rng.random((n, len(children))) < q
    none = gate & ~child.any(axis=1)
    child[np.flatnonzero(none), rng.choice(len(children), size=int(none.sum()), p=other_w)] = True
    child &= gate[:, None]
    parent_only = gate & (rng.random(n) < PARENT_ONLY_SHARE)

    topic_names = list(TOPICS)
    topic_p = np.array([TOPICS[t][0] for t in topic_names])
    topic = rng.choice(len(topic_names), size=n, p=topic_p / topic_p.sum())
    model = rng.choice(len(vocab.MODELS), size=n, p=_model_weights())
    rival = (model + rng.integers(1, len(vocab.MODELS), size=n)) % len(vocab.MODELS)
    shows = show_of_month(month, year)
    show_pick = rng.integers(0, len(shows), size=n)
    show_child = child[:, [children.index(c) for c in SHOW_CHILDREN]].any(axis=1)
    show_flag = np.where(show_child, rng.random(n) < 0.15, rng.random(n) < 0.02)
    u = rng.random((n, 8))

    series_ids = taxonomy.series_tag_ids()
    brand_ids = taxonomy.brand_tag_ids()
    model_series = [series_ids.get(m[1]) for m in vocab.MODELS]
    model_brand = [brand_ids.get(m[0]) for m in vocab.MODELS]
    model_energy = [m[3] for m in vocab.MODELS]
    topic_children = {t: (list(TOPICS[t][1]), list(itertools.accumulate(TOPICS[t][1].values()))) for t in topic_names}
    main_topics = [t for t in topic_names if t is not None and TOPICS[t][1]]

    labels_out: list[list[str]] = []
    tags_out: list[list[str]] = []
    show_out: list[str] = []
    child_rows = child.tolist()
    gate_l, parent_only_l, topic_l = gate.tolist(), parent_only.tolist(), topic.tolist()
    model_l, rival_l, show_flag_l, show_pick_l, u_l = (
        model.tolist(), rival.tolist(), show_flag.tolist(), show_pick.tolist(), u.tolist(),
    )  # fmt: skip
    for i in range(n):
        ui = u_l[i]
        mi = model_l[i]
        show = ""
        labels: list[str] = []
        tags: list[str] = []
        if gate_l[i]:
            labels = [c for c, on in zip(children, child_rows[i]) if on]
            if show_flag_l[i]:
                show = shows[show_pick_l[i]]
            if parent_only_l[i]:
                tags = [ids["新车资讯"]]
            else:
                for lab in labels:
                    tags.append(_deep_tag(lab, ids, model_energy[mi], rnd))
                if ui[0] < 0.06:
                    tags.append(ids["新车资讯"])
                if ui[1] < 0.01:
                    tags.append("30113")  # inactive 新车预告
        else:
            t = topic_names[topic_l[i]]
            if t == "车展":
                show = shows[show_pick_l[i]]
                labels = [show]
            elif t is not None:
                names, w = topic_children[t]
                labels = [names[_weighted(ui[2], w)]]
                if ui[3] < 0.3:
                    second = names[_weighted(rnd.random(), w)]
                    if second not in labels:
                        labels.append(second)
                if ui[4] < 0.08:
                    other = main_topics[int(rnd.random() * len(main_topics))]
                    if other != t:
                        names2, w2 = topic_children[other]
                        labels.append(names2[_weighted(rnd.random(), w2)])
                if show_flag_l[i]:
                    show = shows[show_pick_l[i]]
            for lab in labels:
                tags.append(_deep_tag(lab, ids, model_energy[mi], rnd))
            if t is not None and t != "车展" and ui[0] < 0.04:
                tags.append(ids[t])
            if t is not None and ui[1] < 0.01:
                tags.append("30404" if rnd.random() < 0.5 else "30801")  # inactive tags
        if show and show not in labels and ui[5] < 0.4:
            tags.append(ids[show])
        if tags:  # series / brand tags (other tag types, removed by the export filter downstream)
            if model_series[mi] and ui[6] < 0.9:
                tags.append(model_series[mi])
            if ui[7] < 0.75 and model_brand[mi]:
                tags.append(model_brand[mi])
            if rnd.random() < 0.45 and model_series[rival_l[i]]:
                tags.append(model_series[rival_l[i]])
        labels_out.append(labels)
        tags_out.append(tags)
        show_out.append(show)

    _label_noise(rng, tags_out)
    _comma_lists(rng, tags_out)
    return ItemLabels(labels_out, tags_out, model_l, rival_l, show_out, gate)


def _weighted(u: float, cum: list[float]) -> int:
    """Index drawn by a uniform u from cumulative weights."""
    return min(bisect.bisect_right(cum, u * cum[-1]), len(cum) - 1)


def _deep_tag(label: str, ids: dict[str, str], energy: str, rnd: random.Random) -> str:
    """The tag an editor picked for a label: sometimes a deeper one (which implies the label)."""
    u = rnd.random()
    if label == "谍照" and u < 0.35:
        return ids["路试谍照"]
    if label == "新车上市":
        if u < 0.35:
            return ids["新能源新车上市"] if energy != "ice" and rnd.random() < 0.4 else ids["国产新车上市"]
        if u < 0.47:
            return ids["进口新车上市"]
    if label == "试驾" and energy == "ev" and u < 0.3:
        return ids["新能源试驾"]
    if label == "保养" and energy != "ice" and u < 0.3:
        return ids["新能源保养"]
    return ids[label]


def _label_noise(rng: np.random.Generator, tags: list[list[str]]) -> None:
    """~5% of items get the tags of another noisy item: tags that do not match the text."""
    noisy = np.flatnonzero(rng.random(len(tags)) < LABEL_NOISE)
    if len(noisy) < 2:
        return
    donors = noisy[rng.permutation(len(noisy))]
    swapped = [tags[j] for j in donors.tolist()]
    for i, t in zip(noisy.tolist(), swapped):
        tags[i] = t


def _comma_lists(rng: np.random.Generator, tags: list[list[str]]) -> None:
    """Some items list several tags in one row: relate_app_tag_id = "30101,30106"."""
    pick = np.flatnonzero(rng.random(len(tags)) < COMMA_SHARE)
    sizes = rng.integers(2, 4, size=len(pick)).tolist()
    for i, k in zip(pick.tolist(), sizes):
        t = tags[i]
        if len(t) > 1:
            tags[i] = [",".join(t[j : j + k]) for j in range(0, len(t), k)]
