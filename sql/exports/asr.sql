-- asr: speech recognition results per video for one day (partition `dt`); no filter.
-- Parameter: %(dt)s = partition YYYY-MM-DD (validated by the client, escaped by pyhive).
SELECT video_id, result_asr
FROM yc_ods.ods_app_videoforumv2_yd_async_detect_record_day_i
WHERE dt = %(dt)s
