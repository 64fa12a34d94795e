-- The dashboard's log view filters by a virtual key (its own view), cache state, user and team,
-- newest first. Those live in the record's JSON; they are copied into columns the writer fills
-- at insert, because expression indexes over the JSON made every insert parse the record eight
-- times (json_valid and json_extract per index): about 200k instructions per record on the
-- writer thread (bench/instructions.sh). Rows from before this migration are backfilled from
-- their JSON; a row whose JSON is damaged gets NULLs (readers count it as corrupt).
ALTER TABLE records ADD COLUMN key_hash TEXT;
ALTER TABLE records ADD COLUMN cache TEXT;
ALTER TABLE records ADD COLUMN user_id TEXT;
ALTER TABLE records ADD COLUMN team_id TEXT;
UPDATE records SET
    key_hash = CASE WHEN json_valid(json) THEN json_extract(json, '$.key_hash') END,
    cache    = CASE WHEN json_valid(json) THEN json_extract(json, '$.cache') END,
    user_id  = CASE WHEN json_valid(json) THEN json_extract(json, '$.user_id') END,
    team_id  = CASE WHEN json_valid(json) THEN json_extract(json, '$.team_id') END;
-- Only a key's own view is indexed: it is every page a virtual key sees. The other filters scan
-- plain columns newest first (no JSON to parse), and each index is paid on every insert.
CREATE INDEX records_key_hash ON records (key_hash, start_time);
PRAGMA user_version = 6;
