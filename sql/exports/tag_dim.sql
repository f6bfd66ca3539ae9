-- tag_dim: the tag dimension snapshot of one day (partition `dt`), active content tags only.
-- Parameter: %(dt)s = partition YYYY-MM-DD (validated by the client, escaped by pyhive).
SELECT id, tag_name, tag_type_name, tag_path, tag_path_name, status
FROM ycrc_rc_eng.dwd_app_reco_tagm_new_tag_content_a
WHERE dt = %(dt)s
  AND tag_type_name = '内容标签'
  AND status = 1
