-- The dashboard's log view filters by a virtual key (its own view) and by cache state, newest
-- first. Both live only in the record's JSON; expression indexes serve those filters without a
-- column the writer must fill (new rows are indexed as they are inserted).
CREATE INDEX records_key_hash ON records (json_extract(json, '$.key_hash'), start_time);
CREATE INDEX records_cache ON records (json_extract(json, '$.cache'), start_time);
CREATE INDEX records_status ON records (status, start_time);
PRAGMA user_version = 6;
