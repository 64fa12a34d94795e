-- Users, teams, organizations, end users (customers), budget tiers and team memberships: the
-- rest of LiteLLM's management API, shared by every instance. `kind` and `id` name an entity,
-- `parent` is what lists filter by; the rest is a JSON document in LiteLLM's field names.
CREATE TABLE tollgate_entities (
    seq        BIGSERIAL,
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    parent     TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX tollgate_entities_parent ON tollgate_entities (kind, parent);
CREATE TABLE tollgate_deleted_entities (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    deleted_at TIMESTAMPTZ NOT NULL,
    doc        TEXT NOT NULL
);
-- Spend and budget holds of every scope but keys: users, teams, team members, end users, the
-- proxy, and each of those per model (`user_model`, `<user>/<model>`). Admission holds against
-- all of a request's scopes in one transaction of conditional UPDATEs.
CREATE TABLE tollgate_spend (
    scope         TEXT NOT NULL,
    id            TEXT NOT NULL,
    spend         DOUBLE PRECISION NOT NULL DEFAULT 0,
    reserved      DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_window TIMESTAMPTZ,
    PRIMARY KEY (scope, id)
);
-- `/key/regenerate` with a grace period: the replaced key's hash keeps authenticating (as the
-- new row) until the grace period in the row's document ends.
ALTER TABLE tollgate_keys ADD COLUMN previous_token TEXT;
CREATE INDEX tollgate_keys_previous ON tollgate_keys (previous_token);
