-- Budgets enforced exactly: admission reserves an estimated cost against the key's budget with
-- one conditional UPDATE (max_budget is a column for that), and the request's end settles it.
-- `budget_window` is the start of the budget period the spend belongs to; a request in a later
-- period starts the spend from 0 (no reset job needed).
ALTER TABLE tollgate_keys ADD COLUMN max_budget REAL;
ALTER TABLE tollgate_keys ADD COLUMN reserved REAL NOT NULL DEFAULT 0;
ALTER TABLE tollgate_keys ADD COLUMN budget_window TEXT;
UPDATE tollgate_keys SET max_budget = json_extract(doc, '$.max_budget');
PRAGMA user_version = 4;
