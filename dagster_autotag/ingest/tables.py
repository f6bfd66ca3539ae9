"""The four Hive exports: column order, types and the export filters, defined once.

Both sources (HiveServer2 and landing TSV files) deliver rows in exactly this column order;
everything downstream of ingest reads these definitions instead of repeating column lists.
"""

from dataclasses import dataclass

# The seed's export filters. `sql/exports/*.sql` applies them in Hive; the landing-file path applies
# the same predicates in polars (ingest/typecast.py), and a real-Hive test checks that both agree.
KEPT_DTYPES = ("news", "yichehao_news", "yichehao_video")
EXCLUDED_GRADE = "Z"
EXCLUDED_GC = ("AGC-XIAOYI", "AGC-XIAOSHA")
CONTENT_TAG_TYPE = "内容标签"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "string"  # string | int | timestamp
    required: bool = False  # a null here sends the row to quarantine ("missing id")
    bulky: bool = False  # kilobyte payloads (ASR/OCR JSON): stored with cheaper compression


@dataclass(frozen=True)
class ExportTable:
    name: str
    hive_table: str
    partition_column: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


NEWS_POOL = ExportTable(
    name="news_pool",
    hive_table="ycrc_rc_eng.dws_all_reco_pool_a",
    partition_column="pt",
    columns=(
        Column("itemid", required=True),
        Column("title"),
        Column("summary"),
        Column("relate_app_tag_id"),
        Column("dtype"),
        Column("recommend_grade"),
        Column("gc"),
        Column("create_time", "timestamp"),
    ),
)

ASR = ExportTable(
    name="asr",
    hive_table="yc_ods.ods_app_videoforumv2_yd_async_detect_record_day_i",
    partition_column="dt",
    columns=(Column("video_id", required=True), Column("result_asr", bulky=True)),
)

OCR = ExportTable(
    name="ocr",
    hive_table="yc_ods.ods_app_videoforumv2_video_machine_audit_day_i",
    partition_column="dt",
    columns=(Column("video_id", required=True), Column("ocr_info", bulky=True)),
)

TAG_DIM = ExportTable(
    name="tag_dim",
    hive_table="ycrc_rc_eng.dwd_app_reco_tagm_new_tag_content_a",
    partition_column="dt",
    columns=(
        Column("id", required=True),
        Column("tag_name"),
        Column("tag_type_name"),
        Column("tag_path"),
        Column("tag_path_name"),
        Column("status", "int"),
    ),
)

EXPORT_TABLES: dict[str, ExportTable] = {t.name: t for t in (NEWS_POOL, ASR, OCR, TAG_DIM)}
