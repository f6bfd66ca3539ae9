"""Realistic generated Hive exports (news_pool, asr, ocr, tag_dim): the embedded default data.

    from dagster_autotag.sample import generate_day, write_landing
    write_landing(landing_dir, generate_day("2024-05-01", items=2000, seed=0))

Modules: taxonomy (the tag dimension, data), vocab (text vocabularies, data), labels (who gets
which tags), text (titles, summaries, speech pools, captions), media (ASR/OCR JSON), dirt (what
real exports contain besides clean rows), generator (the API: DayExport, generate_day,
write_landing, generate_landing).
"""

from dagster_autotag.sample.generator import DayExport, generate_day, generate_landing, write_landing

__all__ = ["DayExport", "generate_day", "generate_landing", "write_landing"]
