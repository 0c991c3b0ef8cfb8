-- Study assembly looks only at studies with instances newer than their
-- latest job: analysed_at is that job's creation time, and the partial
-- index holds just the studies waiting, so a poll costs the number of
-- studies in flight, not the size of the archive.
ALTER TABLE studies ADD COLUMN analysed_at TEXT;

-- Studies received before the pipeline existed are not analysed
-- retroactively (an upgrade must not flood the PACS with old reports).
UPDATE studies SET analysed_at = COALESCE(
    (SELECT MAX(created_at) FROM jobs j WHERE j.study_instance_uid = studies.study_instance_uid),
    last_received_at);

CREATE INDEX studies_waiting ON studies (last_received_at)
    WHERE analysed_at IS NULL OR analysed_at < last_received_at;
