-- The dashboard's log view filters by a virtual key (its own view), cache state, user and team, newest
-- first. Both live only in the record's JSON; expression indexes serve those filters without a
-- column the writer must fill (new rows are indexed as they are inserted). The expressions are
-- guarded by json_valid: a row whose JSON is damaged must still be insertable and must not stop
-- this migration (readers count such rows as corrupt), and json_extract fails on it.
CREATE INDEX records_key_hash ON records (
    (CASE WHEN json_valid(json) THEN json_extract(json, '$.key_hash') END), start_time);
CREATE INDEX records_cache ON records (
    (CASE WHEN json_valid(json) THEN json_extract(json, '$.cache') END), start_time);
CREATE INDEX records_user ON records (
    (CASE WHEN json_valid(json) THEN json_extract(json, '$.user_id') END), start_time);
CREATE INDEX records_team ON records (
    (CASE WHEN json_valid(json) THEN json_extract(json, '$.team_id') END), start_time);
CREATE INDEX records_status ON records (status, start_time);
PRAGMA user_version = 6;
