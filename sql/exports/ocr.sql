-- ocr: on-screen text (OCR) per video for one day (partition `dt`); no filter.
-- Parameter: %(dt)s = partition YYYY-MM-DD (validated by the client, escaped by pyhive).
SELECT video_id, ocr_info
FROM yc_ods.ods_app_videoforumv2_video_machine_audit_day_i
WHERE dt = %(dt)s
