-- Virtual keys (LiteLLM's /key/* API), shared by every instance. A key is stored only as the
-- SHA-256 hex of the raw key (`token`, LiteLLM's algorithm); the rest of the row is a JSON
-- document beside the columns lookups and constraints need.
CREATE TABLE tollgate_keys (
    -- Creation order, for a stable /key/list.
    seq        BIGSERIAL,
    token      TEXT PRIMARY KEY,
    key_alias  TEXT UNIQUE,
    user_id    TEXT,
    team_id    TEXT,
    spend      DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX tollgate_keys_user ON tollgate_keys (user_id);
CREATE INDEX tollgate_keys_team ON tollgate_keys (team_id);
CREATE TABLE tollgate_deleted_keys (
    token      TEXT NOT NULL,
    deleted_at TIMESTAMPTZ NOT NULL,
    doc        TEXT NOT NULL
);
