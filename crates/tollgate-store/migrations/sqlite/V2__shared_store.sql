-- The columns the shared store (Postgres) and the next features query, filled from each
-- record's JSON for rows written before this version.
ALTER TABLE records ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN instance_id TEXT;
ALTER TABLE records ADD COLUMN session_id TEXT;
ALTER TABLE records ADD COLUMN key_alias TEXT;
ALTER TABLE records ADD COLUMN workflow TEXT;
UPDATE records SET
    attempt     = coalesce(json_extract(json, '$.attempt'), 0),
    instance_id = json_extract(json, '$.instance_id'),
    session_id  = json_extract(json, '$.session_id'),
    key_alias   = json_extract(json, '$.key_alias'),
    workflow    = json_extract(json, '$.workflow');
-- One row per request and upstream attempt: what makes shipping and re-inserting idempotent.
CREATE UNIQUE INDEX records_request_attempt ON records (request_id, attempt);
CREATE INDEX records_model_group ON records (model_group, start_time);
CREATE INDEX records_key_alias ON records (key_alias, start_time);
CREATE INDEX records_session ON records (session_id);
CREATE INDEX records_trace ON records (trace_id);
-- How far each shared store has been sent this database's rows (rowid of the last one shipped).
CREATE TABLE shipped (
    destination TEXT PRIMARY KEY,
    last_rowid  INTEGER NOT NULL
);
PRAGMA user_version = 2;
