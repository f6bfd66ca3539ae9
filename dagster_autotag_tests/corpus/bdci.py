"""CCF BDCI 2018 car reviews (../shared/datasets/bdci2018_car/round1.csv) as Hive exports.

The CSV holds one row per (text, aspect); here each aspect becomes a level-2 content tag under one
level-1 parent (车评), and each (text, aspect) row one news_pool row carrying that aspect's tag id,
so clean/news_items merges a text's rows back into one item with all its aspects. The CSV is read,
never copied into the repository; tests skip when it is absent.
"""

from pathlib import Path

import polars as pl

from dagster_autotag.ingest.tsv_format import format_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
BDCI_CSV = REPO_ROOT.parent / "shared" / "datasets" / "bdci2018_car" / "round1.csv"

PARENT_ID, PARENT_NAME = 90000, "车评"
TAG_TYPE, ACTIVE = "内容标签", "1"
EXPORT_FILE = "000000_0"


def read_reviews(path: Path = BDCI_CSV) -> pl.DataFrame:
    """content_id, content, subject — one row per (text, aspect), CSV quoting handled by polars."""
    return pl.read_csv(path, infer_schema=False, columns=["content_id", "content", "subject"])


def aspect_tag_ids(reviews: pl.DataFrame) -> dict[str, str]:
    """aspect → tag id: 90001, 90002, … in aspect name order (stable whatever the CSV row order)."""
    aspects = sorted(reviews["subject"].unique().to_list())
    return {aspect: str(PARENT_ID + 1 + i) for i, aspect in enumerate(aspects)}


def tag_dim_rows(tag_ids: dict[str, str]) -> list[tuple]:
    """tag_dim columns: id, tag_name, tag_type_name, tag_path, tag_path_name, status."""
    parent = str(PARENT_ID)
    rows = [(parent, PARENT_NAME, TAG_TYPE, parent, PARENT_NAME, ACTIVE)]
    rows += [
        (tag_id, aspect, TAG_TYPE, f"{parent},{tag_id}", f"{PARENT_NAME},{aspect}", ACTIVE)
        for aspect, tag_id in tag_ids.items()
    ]
    return rows


def assign_days(reviews: pl.DataFrame, days: list[str]) -> dict[str, str]:
    """content_id → day: texts in order of first appearance, dealt round-robin over the days."""
    ids = reviews["content_id"].unique(maintain_order=True).to_list()
    return {cid: days[i % len(days)] for i, cid in enumerate(ids)}


def news_pool_rows(reviews: pl.DataFrame, tag_ids: dict[str, str], day_of: dict[str, str], dt: str) -> list[tuple]:
    """news_pool columns: itemid, title, summary, relate_app_tag_id, dtype, recommend_grade, gc,
    create_time — one row per (text, aspect) of the texts dealt to `dt`."""
    return [
        (cid, content.strip(), None, tag_ids[aspect], "news", "A", "PGC", f"{dt} 12:00:00")
        for cid, content, aspect in reviews.iter_rows()
        if day_of[cid] == dt
    ]


def write_landing_partition(landing: Path, dt: str, tables: dict[str, list[tuple]]) -> None:
    """One export file per table (an empty one for a table without rows) plus the _SUCCESS marker."""
    for table, rows in tables.items():
        folder = landing / table / f"dt={dt}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / EXPORT_FILE).write_bytes(format_rows(rows).encode())
        (folder / "_SUCCESS").write_bytes(b"")


def write_bdci_landing(landing: Path, reviews: pl.DataFrame, days: list[str]) -> dict[str, str]:
    """Landing partitions of news_pool, tag_dim and (empty) asr / ocr for each day; returns the day
    of each content_id."""
    tag_ids = aspect_tag_ids(reviews)
    day_of = assign_days(reviews, days)
    for dt in days:
        write_landing_partition(
            landing,
            dt,
            {
                "news_pool": news_pool_rows(reviews, tag_ids, day_of, dt),
                "asr": [],
                "ocr": [],
                "tag_dim": tag_dim_rows(tag_ids),
            },
        )
    return day_of


def expected_aspects(reviews: pl.DataFrame) -> dict[str, frozenset[str]]:
    """content_id → its set of aspects in the CSV."""
    grouped = reviews.group_by("content_id").agg(pl.col("subject").unique())
    return {cid: frozenset(aspects) for cid, aspects in grouped.iter_rows()}
