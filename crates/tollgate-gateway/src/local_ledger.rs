//! Budget holds in memory, for a gateway whose store is its own SQLite file.
//!
//! Only one process may use a data dir, so that process sees every request the store's budgets
//! are charged with: holding in memory is as exact as the store's conditional UPDATE, and it
//! keeps a SQLite transaction (and the lock it shares with the record writer) off every
//! request. The store still gets every cost, in the batched spend flush, with the budget period
//! each belongs to, so `/key/info` and restarts see the same spend.
//!
//! A scope's entry is loaded from the store the first time a request holds against it (its
//! stored spend plus what is gathered but not flushed yet), and follows every charge after that.
//! With a shared store (Postgres) holds stay in the database: other instances charge it too.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tollgate_store::{Charge, Hold, HoldOutcome};

/// One scope's spend in the current period and what requests in flight hold.
#[derive(Debug, Clone, Copy)]
struct Entry {
    spend: f64,
    reserved: f64,
    window: Option<DateTime<Utc>>,
}

impl Entry {
    /// Whether `window` starts a later period than the entry's spend belongs to.
    fn outdated_by(&self, window: Option<DateTime<Utc>>) -> bool {
        window.is_some_and(|w| self.window.is_none_or(|mine| mine < w))
    }
}

#[derive(Default)]
pub struct LocalLedger {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl LocalLedger {
    /// Holds every amount or none; `Err` lists the scopes not loaded yet (nothing held then).
    pub fn hold(&self, holds: &[Hold]) -> Result<HoldOutcome, Vec<(String, String)>> {
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        };
        let missing: Vec<(String, String)> = holds
            .iter()
            .map(|h| (h.scope.clone(), h.id.clone()))
            .filter(|k| !entries.contains_key(k))
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        // Check all, then take all: a refusal holds nothing anywhere.
        for (index, h) in holds.iter().enumerate() {
            let e = entries[&(h.scope.clone(), h.id.clone())];
            let (spend, reserved) = if e.outdated_by(h.window) {
                (0.0, 0.0)
            } else {
                (e.spend, e.reserved)
            };
            if spend + reserved + h.amount > h.max_budget {
                return Ok(HoldOutcome::Refused { index, spend, reserved });
            }
        }
        for h in holds {
            if let Some(e) = entries.get_mut(&(h.scope.clone(), h.id.clone())) {
                if e.outdated_by(h.window) {
                    *e = Entry {
                        spend: 0.0,
                        reserved: 0.0,
                        window: h.window,
                    };
                }
                e.reserved += h.amount;
            }
        }
        Ok(HoldOutcome::Held)
    }

    /// A scope's spend as the store has it (plus what is gathered but not flushed); kept when
    /// the scope is already loaded.
    pub fn load(&self, scope: &str, id: &str, spend: f64, window: Option<DateTime<Utc>>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.entry((scope.to_string(), id.to_string())).or_insert(Entry {
                spend,
                reserved: 0.0,
                window,
            });
        }
    }

    /// Finished requests: their cost and their holds, on the scopes already loaded.
    pub fn settle(&self, charges: &[Charge]) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        for c in charges {
            let Some(e) = entries.get_mut(&(c.scope.clone(), c.id.clone())) else {
                continue;
            };
            if e.outdated_by(c.window) {
                *e = Entry {
                    spend: 0.0,
                    reserved: 0.0,
                    window: c.window,
                };
            }
            if c.cost.is_finite() {
                e.spend += c.cost;
            }
            e.reserved = (e.reserved - c.release).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(scope: &str, amount: f64, max_budget: f64, window: Option<DateTime<Utc>>) -> Hold {
        Hold {
            scope: scope.into(),
            id: "x".into(),
            amount,
            max_budget,
            window,
        }
    }

    #[test]
    fn holds_fit_every_budget_or_none_and_come_back_when_settled() {
        let l = LocalLedger::default();
        let both = |a| [hold("key", a, 10.0, None), hold("team", a, 5.0, None)];
        assert_eq!(l.hold(&both(1.0)).unwrap_err().len(), 2, "nothing loaded yet");
        l.load("key", "x", 0.0, None);
        l.load("team", "x", 1.0, None);
        assert_eq!(l.hold(&both(3.0)).unwrap(), HoldOutcome::Held);
        assert_eq!(
            l.hold(&both(3.0)).unwrap(),
            HoldOutcome::Refused {
                index: 1,
                spend: 1.0,
                reserved: 3.0
            }
        );
        // The refusal took nothing from the key: 7 more fit its 10.
        assert_eq!(l.hold(&[hold("key", 7.0, 10.0, None)]).unwrap(), HoldOutcome::Held);
        let charge = |scope: &str, cost, release| Charge {
            scope: scope.into(),
            id: "x".into(),
            cost,
            release,
            window: None,
        };
        l.settle(&[
            charge("key", 0.5, 3.0),
            charge("key", 0.0, 7.0),
            charge("team", 0.5, 3.0),
        ]);
        // Team: 1.5 spent, nothing held; 3.5 more fit.
        assert_eq!(l.hold(&[hold("team", 3.5, 5.0, None)]).unwrap(), HoldOutcome::Held);
    }

    #[test]
    fn a_later_period_starts_from_zero() {
        let l = LocalLedger::default();
        let (p1, p2) = (Utc::now() - chrono::Duration::days(1), Utc::now());
        l.load("key", "x", 9.0, Some(p1));
        assert!(matches!(
            l.hold(&[hold("key", 2.0, 10.0, Some(p1))]).unwrap(),
            HoldOutcome::Refused { .. }
        ));
        assert_eq!(l.hold(&[hold("key", 9.5, 10.0, Some(p2))]).unwrap(), HoldOutcome::Held);
    }
}
