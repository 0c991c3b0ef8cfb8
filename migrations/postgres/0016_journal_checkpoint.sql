-- The ingest journal (storage.flush = "journal", docs/ingest-journal.md):
-- how far each node's journal is materialised (files flushed, rows
-- committed). Advanced in the same transaction as the rows it covers, so
-- recovery replays exactly the records after it.
CREATE TABLE journal_checkpoint (
    node                 TEXT PRIMARY KEY NOT NULL,
    segment              BIGINT NOT NULL,
    "offset"             BIGINT NOT NULL
);
