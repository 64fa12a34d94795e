-- tollgate's records in a shared Postgres: every instance ships its SQLite rows here.
-- Named tollgate_* so the database can be the one LiteLLM already uses.
CREATE TABLE tollgate_records (
    -- Insertion order, for readers that page through the table.
    id          BIGSERIAL PRIMARY KEY,
    request_id  TEXT NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    instance_id TEXT,
    trace_id    TEXT NOT NULL,
    session_id  TEXT,
    start_time  TIMESTAMPTZ NOT NULL,
    model_group TEXT NOT NULL,
    model       TEXT NOT NULL,
    status      TEXT NOT NULL,
    key_alias   TEXT,
    workflow    TEXT,
    cost_usd    DOUBLE PRECISION,
    -- The whole record, as the gateway serialised it (json keeps the text exactly).
    json        JSON NOT NULL,
    shipped_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Shipping is at-least-once; this makes it exactly-once in the table.
    CONSTRAINT tollgate_records_request_attempt UNIQUE (request_id, attempt)
);
CREATE INDEX tollgate_records_start_time ON tollgate_records (start_time);
CREATE INDEX tollgate_records_model_group ON tollgate_records (model_group, start_time);
CREATE INDEX tollgate_records_key_alias ON tollgate_records (key_alias, start_time);
CREATE INDEX tollgate_records_session ON tollgate_records (session_id);
CREATE INDEX tollgate_records_trace ON tollgate_records (trace_id);
