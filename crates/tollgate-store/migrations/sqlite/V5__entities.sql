-- Users, teams, organizations, end users (customers), budget tiers and team memberships: the
-- rest of LiteLLM's management API. One table of definitions: `kind` and `id` name an entity,
-- `parent` is what lists filter by (a team's organization, a membership's team), and the rest
-- is a JSON document in LiteLLM's field names.
CREATE TABLE tollgate_entities (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    parent     TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX tollgate_entities_parent ON tollgate_entities (kind, parent);
CREATE TABLE tollgate_deleted_entities (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    deleted_at TEXT NOT NULL,
    doc        TEXT NOT NULL
);
-- Spend and budget holds of every scope but keys (which keep theirs on their own row): users,
-- teams, team members, end users, the proxy as a whole, and each of those per model
-- (`scope` = `user_model`, `id` = `<user>/<model>`). A row exists once something was spent or
-- held; admission holds against it with one conditional UPDATE per scope in one transaction.
CREATE TABLE tollgate_spend (
    scope         TEXT NOT NULL,
    id            TEXT NOT NULL,
    spend         REAL NOT NULL DEFAULT 0,
    reserved      REAL NOT NULL DEFAULT 0,
    budget_window TEXT,
    PRIMARY KEY (scope, id)
);
-- `/key/regenerate` with a grace period: the replaced key's hash keeps authenticating (as the
-- new row) until the grace period in the row's document ends.
ALTER TABLE tollgate_keys ADD COLUMN previous_token TEXT;
CREATE INDEX tollgate_keys_previous ON tollgate_keys (previous_token);
PRAGMA user_version = 5;
