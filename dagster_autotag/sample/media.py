"""ASR / OCR JSON payloads in the mixed shapes the real tables hold.

ASR (`result_asr`) shapes:
  seconds  [{"text": "…", "start": 0.0, "end": 2.4}, …]   (sometimes listed out of time order)
  millis   [{"onebest": "…", "bg": 1200, "ed": 3400}, …]
  strings  ["句子一", "句子二"]
  nested   [[{"text": …, "start": …, "end": …}, …], […]]
  empty    "[]"        null  None (Hive NULL)
OCR (`ocr_info`) shapes — captions repeat over consecutive frames:
  frames   [{"frame": 12, "time": 0.48, "text": "…"}, …]
  texts    [{"time": 1.0, "texts": ["…", "…"]}, …]
  strings  ["…", "…", …]
  nested   [["…", "…"], ["…"], …]
  empty / null as for ASR
Dirt (only when asked): truncated JSON and shapes nobody recognises.

A day holds ~100k videos with ~20 ASR segments and ~35 OCR frames each, so the random draws,
timelines and lengths are computed for all videos at once with numpy, and the JSON is assembled as
strings (json.dumps over millions of small dicts was the bottleneck); the tests parse it back.
"""

import json
import random
import re

import numpy as np

from dagster_autotag.sample.text import SPEECH_MAX, SPEECH_MIN, SpeechPool
from dagster_autotag.sample.vocab import SPEECH_FILLERS

ASR_SHAPES = ("seconds", "millis", "strings", "nested", "empty", "null")
ASR_SHAPE_WEIGHTS = (0.38, 0.25, 0.15, 0.12, 0.05, 0.05)
OCR_SHAPES = ("frames", "texts", "strings", "nested", "empty", "null")
OCR_SHAPE_WEIGHTS = (0.38, 0.22, 0.17, 0.13, 0.05, 0.05)

UNKNOWN_SHAPES = (
    '{"code": 500, "msg": "internal error"}',
    "[1, 2, 3]",
    '{"data": null}',
    '"ok"',
    '[{"foo": "bar"}]',
)
FPS = 25
CHUNK = 8192  # videos per bulk step
SPEECH_TARGET_MAX = SPEECH_MAX - 150  # room for the last segment and the closing line
OUT_OF_ORDER = 0.15  # share of "seconds" payloads listed out of time order
JOIN_SHARE = 0.35  # segments holding two sentences ("…，…")
FILLER_SHARE = 0.2  # segments starting with a spoken filler ("说实话，…")

_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_FILLERS = tuple(f + "，" for f in SPEECH_FILLERS) + ("",)  # last: no filler


def _body(text: str) -> str:
    """The inside of a JSON string literal (as json.dumps(ensure_ascii=False) writes it)."""
    return json.dumps(text, ensure_ascii=False)[1:-1] if _NEEDS_ESCAPE.search(text) else text


def _bodies(texts: list[str]) -> list[str]:
    if _NEEDS_ESCAPE.search("".join(texts)):
        return [_body(t) for t in texts]
    return texts


class _TimeStrings:
    """Centiseconds -> "12.34" via a lookup table (formatting millions of floats is slow)."""

    def __init__(self) -> None:
        self.table: list[str] = []

    def get(self, cs: np.ndarray) -> list[str]:
        top = int(cs.max()) if len(cs) else 0
        if top >= len(self.table):
            self.table.extend(f"{i // 100}.{i % 100:02d}" for i in range(len(self.table), top + 1))
        t = self.table
        return [t[i] for i in cs.tolist()]


def _within(group_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups laid out back to back: (group id, position within group) of every element."""
    group = np.repeat(np.arange(len(group_sizes)), group_sizes)
    starts = np.cumsum(group_sizes) - group_sizes
    return group, np.arange(int(group_sizes.sum())) - starts[group]


def _exclusive_cumsum(values: np.ndarray, group: np.ndarray, group_sizes: np.ndarray) -> np.ndarray:
    """Per group, the sum of the values before each element."""
    cs = np.cumsum(values)
    starts = np.cumsum(group_sizes) - group_sizes
    before = np.zeros(len(group_sizes), dtype=cs.dtype)
    nonempty = group_sizes > 0
    before[nonempty] = cs[starts[nonempty]] - values[starts[nonempty]]
    return cs - values - before[group]


def asr_payloads(rng: np.random.Generator, pools: list[SpeechPool | None], shapes: list[str]) -> list[str | None]:
    """result_asr per video: speech SPEECH_MIN..SPEECH_MAX characters drawn from its pool
    (pools[k] may be None where shapes[k] is "null" or "empty")."""
    out: list[str | None] = []
    for a in range(0, len(shapes), CHUNK):  # chunks bound the memory of the bulk arrays
        out.extend(_asr_chunk(rng, pools[a : a + CHUNK], shapes[a : a + CHUNK]))
    return out


def _asr_chunk(rng: np.random.Generator, pools: list[SpeechPool | None], shapes: list[str]) -> list[str | None]:
    out: list[str | None] = [None if s == "null" else "[]" if s == "empty" else "" for s in shapes]
    idx = [k for k, s in enumerate(shapes) if s not in ("null", "empty")]
    nv = len(idx)
    if nv == 0:
        return out
    # Pass 1: every video's entries [opening, closing, *sentences] in one global table.
    bodies: list[str] = []
    lens: list[int] = []
    off = np.empty(nv, dtype=np.int64)
    n_sent = np.empty(nv, dtype=np.int64)
    n_own = np.empty(nv, dtype=np.int64)
    n_shared = np.empty(nv, dtype=np.int64)
    for v, k in enumerate(idx):
        p = pools[k]
        entries = [p.opening, p.closing, *p.sentences]
        off[v] = len(bodies)
        n_sent[v] = len(p.sentences)
        n_own[v] = p.n_own
        n_shared[v] = p.n_shared
        bodies.extend(_bodies(entries))
        lens.extend(map(len, entries))
    glen = np.asarray(lens, dtype=np.int64)
    n_other = n_sent - n_own - n_shared
    open_len = glen[off]
    close_len = glen[off + 1]
    is_sentence = np.ones(len(glen), dtype=bool)
    is_sentence[off] = is_sentence[off + 1] = False
    min_len = max(1, int(glen[is_sentence].min()))  # every segment holds at least one sentence

    # Candidate segments per video: more than enough to reach the target length.
    u = rng.random((3, nv))
    target = np.clip(SPEECH_MIN + 900 * u[0] * u[1] + 250 * u[2], SPEECH_MIN, SPEECH_TARGET_MAX).astype(np.int64)
    n_cand = np.maximum(target - open_len, 0) // min_len + 2
    vid, _ = _within(n_cand)
    m = len(vid)
    own_thr = np.where(n_own > 0, 0.5, 0.0)[vid]
    shared_thr = own_thr + np.where(n_own > 0, 0.38, 0.88)[vid]
    r = rng.random((5, m))
    cat = (r[0] >= own_thr).astype(np.int64) + (r[0] >= shared_thr)
    size = np.choose(cat, [n_own[vid], n_shared[vid], n_other[vid]])
    base = np.choose(cat, [0, n_own[vid], (n_own + n_shared)[vid]])
    first = off[vid] + 2 + base + (r[1] * size).astype(np.int64)
    second = np.where(r[2] < JOIN_SHARE, off[vid] + 2 + (r[3] * n_sent[vid]).astype(np.int64), -1)
    filler = np.where(r[4] < FILLER_SHARE, rng.integers(0, len(_FILLERS) - 1, size=m), len(_FILLERS) - 1)
    filler_len = np.asarray([len(f) for f in _FILLERS])[filler]
    seg_len = glen[first] + np.where(second >= 0, 1 + glen[second], 0) + filler_len
    before = _exclusive_cumsum(seg_len, vid, n_cand)
    keep = open_len[vid] + before < target[vid]  # the speech loop: add segments until the target
    n_keep = np.bincount(vid, weights=keep, minlength=nv).astype(np.int64)
    first, second, filler, seg_len = first[keep], second[keep], filler[keep], seg_len[keep]

    # Segment texts as JSON literals (opening and closing added per video below).
    pb = ["，" + b for b in bodies] + [""]  # second sentence joined with a comma; -1 -> ""
    mids = [f'"{_FILLERS[f]}{bodies[a]}{pb[b]}"' for f, a, b in zip(filler.tolist(), first.tolist(), second.tolist())]

    # Timeline over [opening, *kept, closing] of every video.
    n_all = n_keep + 2
    vid_all, pos_all = _within(n_all)
    len_all = np.empty(len(vid_all), dtype=np.int64)
    is_open = pos_all == 0
    is_close = pos_all == n_all[vid_all] - 1
    len_all[is_open] = open_len
    len_all[is_close] = close_len
    len_all[~(is_open | is_close)] = seg_len
    r2 = rng.random((2, len(vid_all)))
    dur = len_all * (0.18 + 0.1 * r2[0]) + 0.2
    step = dur + 0.1 + 0.5 * r2[1]
    start = 0.2 + 1.3 * rng.random(nv)[vid_all] + _exclusive_cumsum(step, vid_all, n_all)
    start_cs = np.round(start * 100).astype(np.int64)
    end_cs = np.round((start + dur) * 100).astype(np.int64)
    times = _TimeStrings()
    start_s, end_s = times.get(start_cs), times.get(end_cs)
    start_ms, end_ms = (start_cs * 10).tolist(), (end_cs * 10).tolist()
    r3 = rng.random((2, nv)).tolist()

    # Pass 2: one payload per video.
    mid_at = 0
    seg_at = 0
    rnd = random.Random(int(rng.integers(0, 2**62)))
    for v, k in enumerate(idx):
        nk = int(n_keep[v])
        o = int(off[v])
        lits = [f'"{bodies[o]}"', *mids[mid_at : mid_at + nk], f'"{bodies[o + 1]}"']
        mid_at += nk
        a, b = seg_at, seg_at + nk + 2
        seg_at = b
        shape = shapes[k]
        if shape == "strings":
            out[k] = "[" + ", ".join(lits) + "]"
            continue
        if shape == "millis":
            items = [f'{{"onebest": {t}, "bg": {s}, "ed": {e}}}' for t, s, e in zip(lits, start_ms[a:b], end_ms[a:b])]
            out[k] = "[" + ", ".join(items) + "]"
            continue
        items = [f'{{"text": {t}, "start": {s}, "end": {e}}}' for t, s, e in zip(lits, start_s[a:b], end_s[a:b])]
        if shape == "seconds":
            if r3[0][v] < OUT_OF_ORDER:
                for _ in range(1 + len(items) // 4):
                    i = int(rnd.random() * (len(items) - 1))
                    items[i], items[i + 1] = items[i + 1], items[i]
            out[k] = "[" + ", ".join(items) + "]"
        elif shape == "nested":
            chunks, i = [], 0
            while i < len(items):
                c = 3 + int(rnd.random() * 6)
                chunks.append("[" + ", ".join(items[i : i + c]) + "]")
                i += c
            out[k] = "[" + ", ".join(chunks) + "]"
        else:
            raise ValueError(f"unknown ASR shape {shape!r}")
    return out


def ocr_payloads(
    rng: np.random.Generator, captions: list[list[str]], watermarks: list[str], shapes: list[str]
) -> list[str | None]:
    """ocr_info per video: each caption over 2–9 consecutive sampled frames, sometimes misread."""
    out: list[str | None] = []
    for a in range(0, len(shapes), CHUNK):
        out.extend(_ocr_chunk(rng, captions[a : a + CHUNK], watermarks[a : a + CHUNK], shapes[a : a + CHUNK]))
    return out


def _ocr_chunk(
    rng: np.random.Generator, captions: list[list[str]], watermarks: list[str], shapes: list[str]
) -> list[str | None]:
    out: list[str | None] = [None if s == "null" else "[]" if s == "empty" else "" for s in shapes]
    idx = [k for k, s in enumerate(shapes) if s not in ("null", "empty")]
    nv = len(idx)
    if nv == 0:
        return out
    raw: list[str] = []
    quoted: list[str] = []
    n_cap = np.empty(nv, dtype=np.int64)
    for v, k in enumerate(idx):
        caps = captions[k]
        n_cap[v] = len(caps)
        raw.extend(caps)
        quoted.extend(f'"{b}"' for b in _bodies(caps))
    reps = rng.integers(2, 10, size=len(raw))
    cap_of_frame = np.repeat(np.arange(len(raw)), reps)
    vid_of_cap = np.repeat(np.arange(nv), n_cap)
    vid = vid_of_cap[cap_of_frame]
    n_frames = np.bincount(vid, minlength=nv)
    _, pos = _within(n_frames)
    step = np.asarray((6, 12, 25))[rng.integers(0, 3, size=nv)]
    frame = (rng.random(nv) * step).astype(np.int64)[vid] + step[vid] * pos
    cap_lens = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
    noisy = np.flatnonzero((rng.random(len(vid)) < 0.04) & (cap_lens[cap_of_frame] > 4))
    cap_idx = cap_of_frame.tolist()
    drop_at = rng.random(len(noisy)).tolist()
    for f, u in zip(noisy.tolist(), drop_at):  # OCR misreads a frame now and then: one char dropped
        text = raw[cap_idx[f]]
        i = int(u * len(text))
        quoted.append(f'"{_body(text[:i] + text[i + 1 :])}"')
        cap_idx[f] = len(quoted) - 1
    time_s = _TimeStrings().get(frame * 100 // FPS)
    frame_s = list(map(str, frame.tolist()))
    with_mark = (rng.random(nv) < 0.4).tolist()
    lits = [quoted[c] for c in cap_idx]

    at = 0
    for v, k in enumerate(idx):
        a, b = at, at + int(n_frames[v])
        at = b
        shape = shapes[k]
        mark = f'"{_body(watermarks[k])}"' if with_mark[v] else None
        if shape == "frames":
            if mark:
                items = [
                    f'{{"frame": {f}, "time": {t}, "text": {c}}}, {{"frame": {f}, "time": {t}, "text": {mark}}}'
                    for f, t, c in zip(frame_s[a:b], time_s[a:b], lits[a:b])
                ]
            else:
                items = [
                    f'{{"frame": {f}, "time": {t}, "text": {c}}}'
                    for f, t, c in zip(frame_s[a:b], time_s[a:b], lits[a:b])
                ]
        elif shape == "texts":
            tail = f", {mark}]}}" if mark else "]}"
            items = [f'{{"time": {t}, "texts": [{c}{tail}' for t, c in zip(time_s[a:b], lits[a:b])]
        elif shape == "strings":
            items = lits[a:b]
        elif shape == "nested":
            tail = f", {mark}]" if mark else "]"
            items = [f"[{c}{tail}" for c in lits[a:b]]
        else:
            raise ValueError(f"unknown OCR shape {shape!r}")
        out[k] = "[" + ", ".join(items) + "]"
    return out


def malformed(rnd: random.Random, payload: str | None) -> str:
    """Truncated JSON (as when a writer died mid-record); never parses."""
    text = payload if payload and len(payload) > 8 else '[{"text": "好的", "start": 0.0, "end": 1.2}]'
    cut = 2 + int(rnd.random() * (len(text) - 4))
    out = text[:cut]
    try:
        json.loads(out)
    except ValueError:
        return out
    return out + '{"'  # a valid prefix (rare): make it invalid


def unknown_shape(rnd: random.Random) -> str:
    return UNKNOWN_SHAPES[int(rnd.random() * len(UNKNOWN_SHAPES))]
