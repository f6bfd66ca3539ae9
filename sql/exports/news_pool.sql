-- news_pool: the recommendation pool for one day (partition `pt`), one row per (itemid, tag).
-- Parameter: %(dt)s = partition YYYY-MM-DD (validated by the client, escaped by pyhive).
-- NULL recommend_grade / gc are kept; the landing-file path applies the identical predicate in polars.
SELECT itemid, title, summary, relate_app_tag_id, dtype, recommend_grade, gc, create_time
FROM ycrc_rc_eng.dws_all_reco_pool_a
WHERE pt = %(dt)s
  AND dtype IN ('news', 'yichehao_news', 'yichehao_video')
  AND (recommend_grade IS NULL OR recommend_grade <> 'Z')
  AND (gc IS NULL OR gc NOT IN ('AGC-XIAOYI', 'AGC-XIAOSHA'))
