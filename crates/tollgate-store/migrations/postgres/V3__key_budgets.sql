-- Budgets enforced exactly across instances: admission reserves an estimated cost against the
-- key's budget with one conditional UPDATE, and the request's end settles it. `budget_window`
-- is the start of the budget period the spend belongs to (no reset job needed).
ALTER TABLE tollgate_keys ADD COLUMN max_budget DOUBLE PRECISION;
ALTER TABLE tollgate_keys ADD COLUMN reserved DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE tollgate_keys ADD COLUMN budget_window TIMESTAMPTZ;
UPDATE tollgate_keys SET max_budget = (doc::json->>'max_budget')::double precision;
