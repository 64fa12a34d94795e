-- The dashboard's log view filters by a virtual key (its own view), cache state, user and team, newest
-- first; both live only in the record's JSON, so expression indexes serve them.
CREATE INDEX tollgate_records_key_hash ON tollgate_records ((json->>'key_hash'), start_time);
CREATE INDEX tollgate_records_cache ON tollgate_records ((json->>'cache'), start_time);
CREATE INDEX tollgate_records_user ON tollgate_records ((json->>'user_id'), start_time);
CREATE INDEX tollgate_records_team ON tollgate_records ((json->>'team_id'), start_time);
CREATE INDEX tollgate_records_status ON tollgate_records (status, start_time);
