"""The embedded default data: realistic daily exports of the four Hive tables.

`generate_day` builds the logical rows of one day (what a real Hive table would return, row-level
dirt included); `write_landing` writes them the way `hive -e … --outputformat=tsv2
--showHeader=false` does (plus optional file-level corruption only a text export can have).
Everything is deterministic per (seed, dt): numpy's default_rng seeded from both, and
`random.Random` instances seeded from it for the per-string work.
"""

import random
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from dagster_autotag.ingest import tsv_format
from dagster_autotag.ingest.tables import EXPORT_TABLES
from dagster_autotag.lake import swap_into_place
from dagster_autotag.sample import dirt as dirt_mod
from dagster_autotag.sample import media, taxonomy, text
from dagster_autotag.sample.labels import assign_labels

TABLES = ("news_pool", "asr", "ocr", "tag_dim")
SUCCESS_MARKER = "_SUCCESS"
MAX_ITEMS_PER_DAY = 5_000_000  # itemid = yyyymmdd + 7-digit counter; orphan videos use 9xxxxxx

_DT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STREAM_VERSION = 1  # bump when the generated data changes on purpose

# Item-level distributions (clean data).
DTYPES = ("news", "yichehao_news", "yichehao_video")
DTYPE_P = (0.42, 0.28, 0.30)
GRADES = ("A", "B", "C", "D")
GRADE_P = (0.15, 0.40, 0.35, 0.10)
GCS = ("AGC-NORMAL", "PGC", "UGC")
GC_P = (0.30, 0.40, 0.30)
HOUR_WEIGHTS = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5, 5, 4.5, 4, 4.5, 5, 5, 4.5, 4, 4.5, 5, 4.5, 3, 2)
ASR_MISSING = 0.03  # videos with no ASR row at all (natural, not dirt)
OCR_MISSING = 0.02


@dataclass
class DayExport:
    dt: str
    # keys: "news_pool", "asr", "ocr", "tag_dim"; tuples in ExportTable column order; str or None (NULL)
    rows: dict[str, list[tuple[str | None, ...]]]
    seed: int = 0
    # "table.kind" -> how many items (news_pool item kinds) or rows got that row-level dirt;
    # empty when dirt=False. File-level dirt is decided in write_landing (dirt.file_dirt_counts).
    dirt: dict[str, int] = field(default_factory=dict)


def parse_dt(dt: str) -> date:
    if not isinstance(dt, str) or not _DT_RE.match(dt):
        raise ValueError(f"dt must be YYYY-MM-DD, got {dt!r}")
    try:
        return date.fromisoformat(dt)
    except ValueError as exc:
        raise ValueError(f"dt must be a valid date YYYY-MM-DD, got {dt!r}") from exc


def _streams(seed: int, day: date) -> list[np.random.Generator]:
    ss = np.random.SeedSequence([seed, day.year * 10000 + day.month * 100 + day.day, _STREAM_VERSION])
    return [np.random.default_rng(s) for s in ss.spawn(6)]


def _py(rng: np.random.Generator) -> random.Random:
    return random.Random(int(rng.integers(0, 2**62)))


def generate_day(
    dt: str, items: int = 2000, seed: int = 0, dirt: bool = True, video_share: float = DTYPE_P[2]
) -> DayExport:
    """The four exports of one day as logical rows (see DayExport). `video_share` changes the share
    of yichehao_video items (benchmarks use it to get many ASR/OCR rows); articles keep their ratio."""
    day = parse_dt(dt)
    if not isinstance(items, int) or items < 1 or items > MAX_ITEMS_PER_DAY:
        raise ValueError(f"items must be an integer in 1..{MAX_ITEMS_PER_DAY}, got {items!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0.0 <= video_share <= 1.0:
        raise ValueError(f"video_share must be within 0..1, got {video_share!r}")
    articles = DTYPE_P[0] + DTYPE_P[1]
    dtype_p = (DTYPE_P[0] / articles * (1 - video_share), DTYPE_P[1] / articles * (1 - video_share), video_share)
    r_items, r_labels, r_text, r_media, r_dirt, _spare = _streams(seed, day)
    n = items

    # --- item attributes (vectorised) ---
    hour_p = np.asarray(HOUR_WEIGHTS, dtype=float)
    seconds = np.sort(r_items.choice(24, size=n, p=hour_p / hour_p.sum()) * 3600 + r_items.integers(0, 3600, size=n))
    create_time = [f"{dt} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in seconds.tolist()]
    prefix = dt.replace("-", "")
    itemid = [f"{prefix}{i:07d}" for i in range(n)]
    dtype_idx = r_items.choice(len(DTYPES), size=n, p=dtype_p)
    dtype = [DTYPES[k] for k in dtype_idx.tolist()]
    grade = [GRADES[k] for k in r_items.choice(len(GRADES), size=n, p=GRADE_P).tolist()]
    gc = [GCS[k] for k in r_items.choice(len(GCS), size=n, p=GC_P).tolist()]

    lab = assign_labels(r_labels, _py(r_labels), n, day.year, day.month)

    # --- text ---
    rnd = _py(r_text)
    titles: list[str | None] = []
    summaries: list[str | None] = []
    is_video = (dtype_idx == DTYPES.index("yichehao_video")).tolist()
    ctxs: dict[int, text.Context] = {}
    make_text, labels, model, rival, show = text.make_item_text, lab.labels, lab.model, lab.rival, lab.show
    for i in range(n):
        title, summary, ctx = make_text(rnd, labels[i], model[i], rival[i], day.year, show[i])
        titles.append(title)
        summaries.append(summary)
        if is_video[i]:
            ctxs[i] = ctx

    # --- media (from the clean title / labels) ---
    asr_rows, ocr_rows = _media_rows(r_media, itemid, titles, lab.labels, ctxs)

    injected: dict[str, int] = {}
    if dirt:
        _item_dirt(r_dirt, day.year, dtype, grade, gc, titles, summaries, is_video, injected)

    # --- news_pool rows: one per (item, tag); NULL tag when the item has none ---
    news: list[tuple[str | None, ...]] = []
    for i in range(n):
        tags = lab.tags[i]
        head = (itemid[i], titles[i], summaries[i])
        tail = (dtype[i], grade[i], gc[i], create_time[i])
        if not tags:
            news.append(head + (None,) + tail)
        else:
            for t in tags:
                news.append(head + (t,) + tail)

    if dirt:
        news = _row_dirt(r_dirt, day.year, news, injected)
        asr_rows = _media_dirt(r_dirt, "asr", asr_rows, prefix, injected)
        ocr_rows = _media_dirt(r_dirt, "ocr", ocr_rows, prefix, injected)

    rows = {"news_pool": news, "asr": asr_rows, "ocr": ocr_rows, "tag_dim": taxonomy.tag_dim_rows()}
    return DayExport(dt=dt, rows=rows, seed=seed, dirt=injected)


def _media_rows(
    rng: np.random.Generator,
    itemid: list[str],
    titles: list[str | None],
    labels: list[list[str]],
    ctxs: dict[int, text.Context],
) -> tuple[list[tuple[str | None, str | None]], list[tuple[str | None, str | None]]]:
    """One ASR and one OCR row per video of the pool (a few missing), in no particular order."""
    videos = sorted(ctxs)
    nv = len(videos)
    asr_pick = rng.choice(len(media.ASR_SHAPES), size=nv, p=media.ASR_SHAPE_WEIGHTS)
    ocr_pick = rng.choice(len(media.OCR_SHAPES), size=nv, p=media.OCR_SHAPE_WEIGHTS)
    asr_shape = [media.ASR_SHAPES[k] for k in asr_pick.tolist()]
    ocr_shape = [media.OCR_SHAPES[k] for k in ocr_pick.tolist()]
    has_asr = (rng.random(nv) >= ASR_MISSING).tolist()
    has_ocr = (rng.random(nv) >= OCR_MISSING).tolist()
    rnd = _py(rng)
    asr_videos = [i for i, keep in zip(videos, has_asr) if keep]
    asr_shapes = [s for s, keep in zip(asr_shape, has_asr) if keep]
    pools = [
        text.speech_pool(rnd, labels[i], ctxs[i]) if s not in ("null", "empty") else None
        for i, s in zip(asr_videos, asr_shapes)
    ]
    asr_payload = media.asr_payloads(rng, pools, asr_shapes)
    ocr_videos = [i for i, keep in zip(videos, has_ocr) if keep]
    ocr_shapes = [s for s, keep in zip(ocr_shape, has_ocr) if keep]
    captions = [
        text.make_captions(rnd, titles[i] or "", labels[i], ctxs[i]) if s not in ("null", "empty") else []
        for i, s in zip(ocr_videos, ocr_shapes)
    ]
    marks = [f"易车号@{ctxs[i]['host']}" for i in ocr_videos]
    ocr_payload = media.ocr_payloads(rng, captions, marks, ocr_shapes)
    asr = [(itemid[i], p) for i, p in zip(asr_videos, asr_payload)]
    ocr = [(itemid[i], p) for i, p in zip(ocr_videos, ocr_payload)]
    # The media tables are not ordered by the news pool.
    asr = [asr[j] for j in rng.permutation(len(asr)).tolist()]
    ocr = [ocr[j] for j in rng.permutation(len(ocr)).tolist()]
    return asr, ocr


def _item_dirt(rng, year, dtype, grade, gc, titles, summaries, is_video, injected) -> None:
    n = len(dtype)
    counts = {k: dirt_mod.count(s, n) for k, s in dirt_mod.NEWS_ITEM_DIRT.items()}
    # Other dtypes only on non-video items, so the media tables stay about the pool's videos.
    chosen = dirt_mod.choose_disjoint(rng, n, counts, eligible={"dtype_other": [not v for v in is_video]})
    rnd = _py(rng)
    for kind, idx in chosen.items():
        for i in idx:
            if kind == "dtype_other":
                dtype[i] = dirt_mod.OTHER_DTYPES[int(rnd.random() * len(dirt_mod.OTHER_DTYPES))]
            elif kind == "grade_z":
                grade[i] = "Z"
            elif kind == "gc_excluded":
                gc[i] = dirt_mod.EXCLUDED_GC[int(rnd.random() * 2)]
            elif kind == "null_title":
                titles[i] = None
            elif kind == "null_summary":
                summaries[i] = None
            elif kind == "tab_newline":
                if rnd.random() < 0.75:
                    summaries[i] = dirt_mod.tab_newline(rnd, summaries[i])
                else:
                    titles[i] = dirt_mod.tab_newline(rnd, titles[i])
            elif kind == "html":
                titles[i] = dirt_mod.html(rnd, titles[i])
            elif kind == "fullwidth":
                titles[i] = dirt_mod.fullwidth(rnd, titles[i])
            elif kind == "zero_width":
                titles[i] = dirt_mod.zero_width(rnd, titles[i])
                if rnd.random() < 0.5:
                    summaries[i] = dirt_mod.zero_width(rnd, summaries[i])
            elif kind == "control_chars":
                summaries[i] = dirt_mod.control_chars(rnd, summaries[i])
            else:  # pragma: no cover - kinds are a closed set
                raise AssertionError(kind)
        injected[f"news_pool.{kind}"] = len(idx)


def _row_dirt(rng, year, news, injected):
    n = len(news)
    counts = {k: dirt_mod.count(s, n) for k, s in dirt_mod.NEWS_ROW_DIRT.items()}
    has_tag = [r[3] is not None for r in news]
    chosen = dirt_mod.choose_disjoint(rng, n, counts, eligible={"unknown_tag": has_tag})
    rnd = _py(rng)
    unknown = taxonomy.UNKNOWN_TAG_IDS
    for i in chosen["bad_itemid"]:
        r = news[i]
        news[i] = (None if rnd.random() < 0.6 else "",) + r[1:]
    for i in chosen["bad_create_time"]:
        r = news[i]
        news[i] = r[:7] + (dirt_mod.bad_create_time(rnd, year),)
    for i in chosen["unknown_tag"]:
        r = news[i]
        parts = r[3].split(",")
        parts[int(rnd.random() * len(parts))] = unknown[int(rnd.random() * len(unknown))]
        news[i] = r[:3] + (",".join(parts),) + r[4:]
    dup = set(chosen["duplicate_row"])
    if dup:
        out = []
        for i, r in enumerate(news):
            out.append(r)
            if i in dup:
                out.append(r)
        news = out
    for kind, idx in chosen.items():
        injected[f"news_pool.{kind}"] = len(idx)
    return news


def _media_dirt(rng, table, rows, prefix, injected):
    n = len(rows)
    if n == 0:
        return rows
    counts = dirt_mod.media_dirt_counts(n)
    chosen = dirt_mod.choose_disjoint(rng, n, counts)
    rnd = _py(rng)
    rows = list(rows)
    for i in chosen["malformed_json"]:
        rows[i] = (rows[i][0], media.malformed(rnd, rows[i][1]))
    for i in chosen["unknown_shape"]:
        rows[i] = (rows[i][0], media.unknown_shape(rnd))
    extra: list[tuple[int, tuple[str | None, str | None]]] = []
    for k, i in enumerate(chosen["orphan"]):
        # A video id that is not in the day's pool (the 9xxxxxx counter range is never used there).
        extra.append((i, (f"{prefix}{9_000_000 + k:07d}", rows[i][1])))
    for i in chosen["duplicate"]:
        extra.append((i, rows[i]))
    if extra:
        insert_at: dict[int, list] = {}
        for i, row in extra:
            insert_at.setdefault(i, []).append(row)
        out = []
        for i, r in enumerate(rows):
            out.append(r)
            out.extend(insert_at.get(i, ()))
        rows = out
    for kind, idx in chosen.items():
        injected[f"{table}.{kind}"] = len(idx)
    return rows


# ---- writing ------------------------------------------------------------------------------------


def _format_lines(rows: list[tuple[str | None, ...]], quoting: str) -> list[str]:
    """tsv_format.format_row without the newline, with a fast path for values needing no escaping."""
    if quoting not in tsv_format.QUOTING_MODES:
        raise ValueError(f"unknown quoting mode {quoting!r}; expected one of {tsv_format.QUOTING_MODES}")
    csv = quoting == "csv"
    null = tsv_format.NULL_LITERAL
    slow = tsv_format.format_row
    out = []
    append = out.append
    for r in rows:
        line = "\t".join([null if v is None else v for v in r])
        if line.count("\t") != len(r) - 1 or "\n" in line or "\r" in line or (csv and '"' in line):
            line = slow(r, quoting)[:-1]
        append(line)
    return out


def _file_dirt(
    rng: np.random.Generator, rows: list[tuple[str | None, ...]], quoting: str
) -> dict[int, list[str | bytes]]:
    """Broken lines to insert after given rows (the originals stay): wrong column counts,
    invalid UTF-8, blank lines. Returns {row index: [extra lines]}."""
    counts = dirt_mod.file_dirt_counts(len(rows))
    total = sum(counts.values())
    if total == 0:
        return {}
    pos = rng.choice(len(rows), size=total, replace=False).tolist()
    rnd = _py(rng)
    inserts: dict[int, list[str | bytes]] = {}
    k = 0
    for kind, c in counts.items():
        for _ in range(c):
            i = pos[k]
            k += 1
            row = rows[i]
            if kind == "too_few_columns":
                bad: str | bytes = tsv_format.format_row(row[: max(1, len(row) - 2)], quoting)[:-1]
            elif kind == "too_many_columns":
                bad = tsv_format.format_row(tuple(row) + ("extra", None), quoting)[:-1]
            elif kind == "invalid_utf8":
                raw = tsv_format.format_row(row, quoting)[:-1].encode("utf-8")
                cut = 1 + int(rnd.random() * max(1, len(raw) - 1))
                bad = raw[:cut] + b"\xff\xfe\xc3(" + raw[cut:]
            else:  # blank_line
                bad = ""
            inserts.setdefault(i, []).append(bad)
    return inserts


def _write_file(
    path: Path,
    rows: list[tuple[str | None, ...]],
    lo: int,
    hi: int,
    quoting: str,
    inserts: dict[int, list[str | bytes]],
    batch: int = 20_000,
) -> None:
    """rows[lo:hi] as tsv2 lines (plus the dirt lines inserted after their rows), in binary."""
    with open(path, "wb") as f:
        for b0 in range(lo, hi, batch):
            b1 = min(hi, b0 + batch)
            lines = _format_lines(rows[b0:b1], quoting)
            marks = sorted(i for i in inserts if b0 <= i < b1)
            if not marks:
                f.write(("\n".join(lines) + "\n").encode("utf-8"))
                continue
            start = 0
            for i in marks:
                cut = i - b0 + 1
                f.write(("\n".join(lines[start:cut]) + "\n").encode("utf-8"))
                start = cut
                for bad in inserts[i]:
                    f.write((bad if isinstance(bad, bytes) else bad.encode("utf-8")) + b"\n")
            if start < len(lines):
                f.write(("\n".join(lines[start:]) + "\n").encode("utf-8"))


def partition_dir(landing_dir: Path, table: str, dt: str) -> Path:
    return Path(landing_dir) / table / f"dt={dt}"


def write_landing(
    landing_dir: Path, day: DayExport, quoting: str = "nul", file_dirt: bool = True, files_per_table: int = 1
) -> dict[str, list[Path]]:
    """Writes landing_dir/<table>/dt=<dt>/000000_0.tsv (000001_0.tsv … when files_per_table>1) as
    `hive -e … --outputformat=tsv2 --showHeader=false` writes them, then an empty `_SUCCESS` last.

    Each partition is written into a hidden temp dir beside it and renamed into place (an existing
    partition is replaced). Returns the data files per table.
    """
    parse_dt(day.dt)
    if quoting not in tsv_format.QUOTING_MODES:
        raise ValueError(f"unknown quoting mode {quoting!r}; expected one of {tsv_format.QUOTING_MODES}")
    if not isinstance(files_per_table, int) or files_per_table < 1:
        raise ValueError(f"files_per_table must be a positive integer, got {files_per_table!r}")
    landing_dir = Path(landing_dir)
    day_int = int(day.dt.replace("-", ""))
    written: dict[str, list[Path]] = {}
    for t_index, table in enumerate(TABLES):
        rows = day.rows.get(table, [])
        ncols = len(EXPORT_TABLES[table].columns)
        for r in rows:
            if len(r) != ncols:
                raise ValueError(f"{table}: row has {len(r)} values, expected {ncols}: {r!r}")
        inserts: dict[int, list[str | bytes]] = {}
        if file_dirt and table != "tag_dim":
            rng = np.random.default_rng([day.seed, day_int, t_index, _STREAM_VERSION])
            inserts = _file_dirt(rng, rows, quoting)

        final = partition_dir(landing_dir, table, day.dt)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".dt={day.dt}.tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        try:
            names = []
            size = -(-len(rows) // files_per_table)
            for f in range(files_per_table):
                name = f"{f:06d}_0.tsv"
                lo, hi = min(len(rows), f * size), min(len(rows), (f + 1) * size)
                _write_file(tmp / name, rows, lo, hi, quoting, inserts)
                names.append(name)
            (tmp / SUCCESS_MARKER).write_bytes(b"")
            swap_into_place(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # after the swap it holds the old version
        written[table] = [final / name for name in names]
    return written


def generate_landing(
    landing_dir: Path, days: int, start: str, items_per_day: int, seed: int, quoting: str = "nul"
) -> list[str]:
    """generate_day + write_landing for `days` consecutive days from `start`; returns the dts."""
    first = parse_dt(start)
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    dts = []
    for k in range(days):
        dt = (first + timedelta(days=k)).isoformat()
        write_landing(landing_dir, generate_day(dt, items=items_per_day, seed=seed), quoting=quoting)
        dts.append(dt)
    return dts
