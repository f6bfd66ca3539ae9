"""Titles, summaries, speech and captions from templates (pure Python, no numpy, no I/O).

Every function takes a `random.Random` seeded by the caller from numpy (so output is deterministic
per seed) and only uses `rnd.random()`, whose sequence is stable across Python versions.
Label cues are drawn with probability < 1, shared sentences dominate, and cues of other labels
leak in now and then: learnable, not trivially separable.
"""

import random
from dataclasses import dataclass

from dagster_autotag.sample import vocab

SUMMARY_MIN = 40
SUMMARY_MAX = 150
SPEECH_MIN = 200
SPEECH_MAX = 1500

_SHOW_LABELS = frozenset(vocab.AUTO_SHOWS)
_LABELS = tuple(lab for lab in vocab.LABEL_TEXT if lab not in _SHOW_LABELS)  # confusers


def _pick(rnd: random.Random, pool):
    return pool[int(rnd.random() * len(pool))]


class Context(dict):
    """Template values for one item (one car, one rival, consistent numbers).

    Filled lazily: a placeholder's value is drawn the first time a template uses it (most templates
    use a handful of the ~30 fields), then kept, so every later mention agrees.
    """

    __slots__ = ("rnd", "energy", "base")

    def __missing__(self, key: str) -> str:
        value = _FIELDS[key](self, self.rnd.random)
        self[key] = value
        return value


_FIELDS = {
    "pw": lambda c, r: vocab.POWERTRAINS[c.energy][int(r() * len(vocab.POWERTRAINS[c.energy]))],
    "cfg": lambda c, r: vocab.EQUIPMENT[int(r() * len(vocab.EQUIPMENT))],
    "cfg2": lambda c, r: vocab.EQUIPMENT[int(r() * len(vocab.EQUIPMENT))],
    "p": lambda c, r: f"{c.base * (0.92 + 0.16 * r()):.2f}",
    "p2": lambda c, r: f"{float(c['p']) * (1.12 + 0.3 * r()):.2f}",
    "dep": lambda c, r: vocab.DEPOSITS[int(r() * len(vocab.DEPOSITS))],
    "disc": lambda c, r: f"{0.3 + 4.5 * r():.1f}",
    "c": lambda c, r: vocab.CITIES[int(r() * len(vocab.CITIES))],
    "d": lambda c, r: vocab.MONTHS[int(r() * len(vocab.MONTHS))],
    "n": lambda c, r: str(2 + int(r() * 8)),
    "color": lambda c, r: vocab.COLORS[int(r() * len(vocab.COLORS))],
    "_len": lambda c, r: str(4400 + int(r() * 900)),
    "dim": lambda c, r: f"{c['_len']}/{1820 + int(r() * 180)}/{1440 + int(r() * 400)}mm",
    "gift": lambda c, r: vocab.GIFTS[int(r() * len(vocab.GIFTS))],
    "sell": lambda c, r: vocab.SELLING_POINTS[int(r() * len(vocab.SELLING_POINTS))],
    "ver": lambda c, r: vocab.TRIMS[int(r() * len(vocab.TRIMS))],
    "acc": lambda c, r: f"{3.2 + 6.5 * r():.1f}",
    "km": lambda c, r: str(5000 + 1000 * int(r() * 16)),
    "fuel": lambda c, r: f"{12 + 6 * r():.1f}kWh/100km" if c.energy == "ev" else f"{4.5 + 4 * r():.1f}L/100km",
    "cost": lambda c, r: str(2000 + 500 * int(r() * 60)),
    "mcost": lambda c, r: str(300 + 50 * int(r() * 30)),
    "pct": lambda c, r: str(5 + int(r() * 55)),
    "kw": lambda c, r: str((80 if c.energy == "ice" else 120) + 10 * int(r() * 25)),
    "gear": lambda c, r: vocab.GEARBOXES[int(r() * len(vocab.GEARBOXES))],
    "rng": lambda c, r: str(400 + 10 * int(r() * 50)),
    "wb": lambda c, r: str(int(c["_len"]) - 1800 + int(r() * 200)),
    "sales": lambda c, r: str(1000 + int(r() * 49000)),
    "host": lambda c, r: vocab.HOSTS[int(r() * len(vocab.HOSTS))],
    "nick": lambda c, r: vocab.NICKS[int(r() * len(vocab.NICKS))],
    "feat": lambda c, r: vocab.FEATURES[int(r() * len(vocab.FEATURES))].format_map(c),
}


def make_context(rnd: random.Random, model: int, rival: int, year: int, show: str) -> Context:
    brand, name, seg, energy, base = vocab.MODELS[model]
    ctx = Context(m=name, m2=vocab.MODELS[rival][1], b=brand, seg=seg, y=str(year), show=show)
    ctx.rnd, ctx.energy, ctx.base = rnd, energy, base
    return ctx


def primary_label(labels: list[str]) -> str | None:
    """The label the title is about: the first specific one (新车解析 and shows are generic)."""
    for lab in labels:
        if lab != "新车解析" and lab not in _SHOW_LABELS:
            return lab
    return labels[0] if labels else None


_TITLES = {lab: t["titles"] for lab, t in vocab.LABEL_TEXT.items()}
_SENTENCES = {lab: t["sentences"] for lab, t in vocab.LABEL_TEXT.items()}
_SHARED = vocab.SHARED_SENTENCES
_N_SHARED = len(_SHARED)
_N_LABELS = len(_LABELS)


def _other_label(rnd: random.Random, labels: list[str]) -> str:
    lab = _LABELS[int(rnd.random() * _N_LABELS)]
    return lab if lab not in labels else _LABELS[int(rnd.random() * _N_LABELS)]


def make_title(rnd: random.Random, labels: list[str], ctx: Context) -> str:
    primary = primary_label(labels)
    u = rnd.random()
    if primary is not None and u < 0.72:
        template = _pick(rnd, _TITLES[primary])
    elif u < 0.96:
        template = _pick(rnd, vocab.SHARED_TITLES)
    else:  # a cue of another label in this item's title
        template = _pick(rnd, _TITLES[_other_label(rnd, labels)])
    title = template.format_map(ctx)
    show = ctx["show"]
    if show and show not in title:
        title = _pick(rnd, vocab.SHOW_TITLE_PREFIXES).format_map(ctx) + title
    return title


def sentence(rnd: random.Random, labels: list[str], ctx: Context, own_share: float) -> str:
    """One sentence: the item's own label cues (own_share), shared, show or another label's cues."""
    r = rnd.random
    u = r()
    if labels and u < own_share:
        pool = _SENTENCES[labels[int(r() * len(labels))]]
    elif u < 0.9:
        return _SHARED[int(r() * _N_SHARED)].format_map(ctx)
    elif ctx["show"] and u < 0.95:
        pool = vocab.SHOW_SENTENCES
    else:
        pool = _SENTENCES[_other_label(rnd, labels)]
    return pool[int(r() * len(pool))].format_map(ctx)


def make_summary(rnd: random.Random, labels: list[str], ctx: Context) -> str:
    """2–5 sentences, SUMMARY_MIN..SUMMARY_MAX characters."""
    k = 2 + int(rnd.random() * 4)
    parts: list[str] = []
    for _ in range(k):
        s = sentence(rnd, labels, ctx, 0.45)
        if s in parts:  # one retry, then give up on this slot
            s = sentence(rnd, labels, ctx, 0.45)
            if s in parts:
                continue
        parts.append(s)
    text = "。".join(parts) + "。"
    while len(text) < SUMMARY_MIN:
        text += _SHARED[int(rnd.random() * _N_SHARED)].format_map(ctx) + "。"
    while len(text) > SUMMARY_MAX and len(parts) > 1:
        parts.pop()
        text = "。".join(parts) + "。"
        if len(text) < SUMMARY_MIN:
            text += _SHARED[int(rnd.random() * _N_SHARED)].format_map(ctx) + "。"
    if len(text) > SUMMARY_MAX:
        text = text[: SUMMARY_MAX - 1] + "…"
    return text


def make_item_text(
    rnd: random.Random, labels: list[str], model: int, rival: int, year: int, show: str
) -> tuple[str, str, Context]:
    """(title, summary, context) of one item; the context is reused for its video's speech."""
    ctx = make_context(rnd, model, rival, year, show)
    return make_title(rnd, labels, ctx), make_summary(rnd, labels, ctx), ctx


@dataclass
class SpeechPool:
    """What one video's narrator says, before it is cut into ASR segments (see media.asr_payloads).

    sentences = own-label cues (n_own) + shared sentences (n_shared) + another label's cues (rest).
    """

    opening: str
    sentences: list[str]
    n_own: int
    n_shared: int
    closing: str


def speech_pool(rnd: random.Random, labels: list[str], ctx: Context) -> SpeechPool:
    """Sentences about the item's car and topic (formatted once; the speech draws from them)."""
    own = [s.format_map(ctx) for lab in labels[:2] for s in _SENTENCES[lab]][:6]
    shared = [_SHARED[int(rnd.random() * _N_SHARED)].format_map(ctx) for _ in range(5)]
    pool = _SENTENCES[_other_label(rnd, labels)]
    other = [pool[int(rnd.random() * len(pool))].format_map(ctx) for _ in range(2)]
    if ctx["show"]:
        other.append(vocab.SHOW_SENTENCES[int(rnd.random() * len(vocab.SHOW_SENTENCES))].format_map(ctx))
    return SpeechPool(
        opening=_pick(rnd, vocab.SPEECH_OPENINGS).format_map(ctx),
        sentences=own + shared + other,
        n_own=len(own),
        n_shared=len(shared),
        closing=_pick(rnd, vocab.SPEECH_CLOSINGS),
    )


def make_captions(rnd: random.Random, title: str, labels: list[str], ctx: Context) -> list[str]:
    """Distinct on-screen captions of a video, in display order (short: at most 18 characters)."""
    captions = [title[:16]]
    for _ in range(1 + int(rnd.random() * 3)):
        captions.append(sentence(rnd, labels, ctx, 0.6)[:18])
    for _ in range(1 + int(rnd.random() * 2)):
        captions.append(_pick(rnd, vocab.OCR_CAPTIONS).format_map(ctx))
    return captions
