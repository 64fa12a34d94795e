-- The dashboard's log view filters by a virtual key (its own view), cache state, user and team.
-- Those live in the record's JSON, and V5 indexed them as expressions over it: every insert
-- parsed each record's JSON once per such index (json is text: `->>` parses it each time). As
-- SQLite's V6 did, they become plain columns the shipper fills at insert (from the SQLite
-- columns the writer filled), and only what a page needs to stay fast is indexed.
ALTER TABLE tollgate_records
    ADD COLUMN key_hash TEXT,
    ADD COLUMN cache    TEXT,
    ADD COLUMN user_id  TEXT,
    ADD COLUMN team_id  TEXT;

DROP INDEX tollgate_records_key_hash;
DROP INDEX tollgate_records_cache;
DROP INDEX tollgate_records_user;
DROP INDEX tollgate_records_team;
-- Replaced by an index of failures only (below).
DROP INDEX tollgate_records_status;

-- Rows from before this version, from their JSON (before the new indexes, so the backfill does
-- not maintain them row by row). `->>` gives NULL where the JSON has no such field.
UPDATE tollgate_records SET
    key_hash = json->>'key_hash',
    cache    = json->>'cache',
    user_id  = json->>'user_id',
    team_id  = json->>'team_id';

-- Only what a page needs to stay fast at a million rows is indexed, each index being paid on every
-- insert. A filter on a value few rows have would otherwise walk the whole time index (a value no
-- row has, all of it). A virtual key's own view (every page its sessions see), a user, a team, a
-- workflow: partial, so a row without the value (the master key's, a request outside a workflow)
-- costs nothing here.
CREATE INDEX tollgate_records_key_hash ON tollgate_records (key_hash, start_time) WHERE key_hash IS NOT NULL;
CREATE INDEX tollgate_records_user ON tollgate_records (user_id, start_time) WHERE user_id IS NOT NULL;
CREATE INDEX tollgate_records_team ON tollgate_records (team_id, start_time) WHERE team_id IS NOT NULL;
CREATE INDEX tollgate_records_workflow ON tollgate_records (workflow, start_time) WHERE workflow IS NOT NULL;
-- Every row has a cache state, and any of them may be the rare one (hits with a cold cache, or
-- no cache configured at all: every row `off`).
CREATE INDEX tollgate_records_cache ON tollgate_records (cache, start_time);
-- Failures are the rare status; successes are found along the time index at once. (V5 indexed
-- both.)
CREATE INDEX tollgate_records_failures ON tollgate_records (start_time) WHERE status = 'failure';
