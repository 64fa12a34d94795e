-- The records table as every tollgate before the shared store wrote it (then versioned by
-- PRAGMA user_version only): IF NOT EXISTS, so such a database is adopted as it is.
CREATE TABLE IF NOT EXISTS records (
    request_id  TEXT,
    trace_id    TEXT,
    start_time  TEXT,
    model_group TEXT,
    model       TEXT,
    status      TEXT,
    cost_usd    REAL,
    json        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_start_time ON records (start_time);
PRAGMA user_version = 1;
