"""ASR and OCR JSON from the video tables → one text per video.

Shapes seen in real exports, all accepted:
- arrays of objects with a text field and timing: {"text", "start", "end"} (seconds),
  iFlytek-style {"onebest", "bg", "ed"} (milliseconds), OCR frames {"frame", "time", "text"},
  {"time", "texts": [...]}, {"ts", "words": [{"text": ...}]};
- arrays of strings; nested lists of any of these; an object wrapping the array
  ({"result": [...]}, {"data": [...]}, …);
- `[]`, "" or NULL: nothing recognised (an empty text, not an error).
Anything else raises MediaShapeError with a reason, and the row goes to quarantine.

Text comes only from JSON strings: a number or boolean where a text belongs (`[{"text": 5}]`,
`["a", 5]`) is not recognised speech but a changed or broken upstream payload, so it is quarantined
(counted, visible, blocking above the limit) rather than turned into "5" in the model input.
"""

import json
from dataclasses import dataclass

TEXT_KEYS = ("text", "onebest", "sentence", "content", "txt", "caption")
LIST_TEXT_KEYS = ("texts", "words", "lines", "captions")
TIME_KEYS = ("start", "begin", "bg", "start_time", "begin_time", "startTime", "beginTime", "st", "time", "ts", "frame")
WRAPPER_KEYS = ("result", "results", "data", "sentences", "segments", "frames", "items", "list")
MAX_DEPTH = 6
# Captions compare equal regardless of full-width ASCII and spacing (OCR flips between them).
_WIDTH_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


class MediaShapeError(ValueError):
    pass


@dataclass(frozen=True)
class Segment:
    texts: tuple[str, ...]
    time: float | None


def parse_segments(raw: str | None) -> list[Segment]:
    if raw is None or not raw.strip():
        return []
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise MediaShapeError(f"unparsable JSON: {err.msg} at char {err.pos}") from None
    if doc is None:
        return []
    if isinstance(doc, dict):
        doc = _unwrap(doc)
    if not isinstance(doc, list):
        raise MediaShapeError(f"unknown shape: top level is {type(doc).__name__}, expected an array")
    segments: list[Segment] = []
    _collect(doc, segments, depth=0)
    return segments


def _unwrap(doc: dict) -> list:
    for key in WRAPPER_KEYS:
        if isinstance(doc.get(key), list):
            return doc[key]
    if any(k in doc for k in TEXT_KEYS + LIST_TEXT_KEYS):
        return [doc]  # a single segment object
    raise MediaShapeError(f"unknown shape: object with keys {sorted(doc)[:5]}")


def _collect(items: list, out: list[Segment], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MediaShapeError(f"unknown shape: arrays nested deeper than {MAX_DEPTH}")
    for item in items:
        if isinstance(item, list):
            _collect(item, out, depth + 1)
        elif isinstance(item, str):
            out.append(Segment((item,), None))
        elif isinstance(item, dict):
            out.append(_segment(item))
        elif item is None:
            continue
        else:
            raise MediaShapeError(f"unknown shape: array element of type {type(item).__name__}")


def _segment(obj: dict) -> Segment:
    texts: tuple[str, ...] | None = None
    for key in TEXT_KEYS:
        if isinstance(obj.get(key), str):
            texts = (obj[key],)
            break
    if texts is None:
        for key in LIST_TEXT_KEYS:
            value = obj.get(key)
            if isinstance(value, list):
                texts = tuple(_word_text(w) for w in value)
                break
    if texts is None:
        raise MediaShapeError(f"unknown shape: object without a text field (keys {sorted(obj)[:5]})")
    return Segment(texts, _time(obj))


def _word_text(word: object) -> str:
    if isinstance(word, str):
        return word
    if isinstance(word, dict):
        for key in TEXT_KEYS:
            if isinstance(word.get(key), str):
                return word[key]
    raise MediaShapeError("unknown shape: word entry without text")


def _time(obj: dict) -> float | None:
    for key in TIME_KEYS:
        value = obj.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


def in_time_order(segments: list[Segment]) -> list[Segment]:
    # Sort by time only when every segment has one; otherwise the array order is the best we know.
    if segments and all(s.time is not None for s in segments):
        return sorted(segments, key=lambda s: s.time)  # stable: equal times keep array order
    return segments


def asr_text(raw: str | None) -> tuple[str, int]:
    """Recognised speech as one text in time order, and the number of segments."""
    segments = in_time_order(parse_segments(raw))
    parts = [t.strip() for s in segments for t in s.texts if t and t.strip()]
    return " ".join(parts), len(segments)


def ocr_text(raw: str | None) -> tuple[str, int, int]:
    """On-screen text with repeats across frames removed, in time order: the text, the number of
    frames, and the number of captions kept. A caption equal to an earlier one (ignoring width and
    spacing) is a repeat; so is one contained in the distinct caption right before or after it, as
    captions that reveal or truncate over consecutive frames are (the longest one stays)."""
    segments = in_time_order(parse_segments(raw))
    seen: set[str] = set()
    distinct: list[tuple[str, str]] = []  # (comparison key, first spelling seen)
    for segment in segments:
        for caption in segment.texts:
            key = " ".join(caption.translate(_WIDTH_FOLD).split())
            if key and key not in seen:
                seen.add(key)
                distinct.append((key, " ".join(caption.split())))
    kept = [
        text
        for i, (key, text) in enumerate(distinct)
        if not (i > 0 and key in distinct[i - 1][0]) and not (i + 1 < len(distinct) and key in distinct[i + 1][0])
    ]
    return " ".join(kept), len(segments), len(kept)
