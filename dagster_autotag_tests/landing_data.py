"""A tiny hand-written landing partition for all four exports (tests that need full control)."""

from pathlib import Path

from dagster_autotag.ingest.tsv_format import format_rows

TAGS = [
    ("30100", "新车资讯", "内容标签", "30100", "新车资讯", "1"),
    ("30101", "谍照", "内容标签", "30100,30101", "新车资讯,谍照", "1"),
    ("30106", "新车上市", "内容标签", "30100,30106", "新车资讯,新车上市", "1"),
    ("30200", "导购", "内容标签", "30200", "导购", "1"),
]


def news(n: int, bad: int = 0) -> list[tuple]:
    rows = [
        (
            str(1000 + i),
            f"宝马X{i % 7}谍照曝光",
            "新车摘要",
            "30101,30106" if i % 2 else "30200",
            "news" if i % 3 else "yichehao_video",
            "A",
            "PGC",
            "2024-05-01 09:00:00",
        )
        for i in range(n)
    ]
    rows += [(str(5000 + i), "坏时间", "s", "30101", "news", "A", "PGC", "not a time") for i in range(bad)]
    return rows


def write_partition(landing: Path, dt: str, n_news: int = 20, bad_news: int = 0) -> None:
    videos = [r[0] for r in news(n_news) if r[4] == "yichehao_video"]
    tables = {
        "news_pool": news(n_news, bad_news),
        "asr": [(v, '[{"text": "这台车的谍照", "start": 0.0}]') for v in videos],
        "ocr": [(v, '[{"time": 0, "text": "售价30万"}, {"time": 1, "text": "售价30万"}]') for v in videos],
        "tag_dim": TAGS,
    }
    for table, rows in tables.items():
        folder = landing / table / f"dt={dt}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "000000_0").write_bytes(format_rows(rows).encode())
        (folder / "_SUCCESS").write_bytes(b"")
