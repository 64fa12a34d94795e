-- Responses stored for OpenAI's Responses API (`store: true`): what `previous_response_id`
-- continues and `GET /v1/responses/{id}` returns, readable only by the key that created them
-- (`owner`: its hash, or `master`), purged after the retention setting.
CREATE TABLE tollgate_responses (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX tollgate_responses_created ON tollgate_responses (created_at);
PRAGMA user_version = 7;
