//! Who a request is charged to — its key, the key's user, team and membership, its end user,
//! the gateway — and what admission held against each one's budget ([`budget`](super::budget)
//! decides both). Kept on the request's draft and settled when its record closes.

use chrono::{DateTime, Utc};
use tollgate_store::Charge;

use crate::keys::Keys;

/// One scope a request is charged to.
#[derive(Debug, Clone)]
pub(crate) struct Payer {
    pub(crate) scope: &'static str,
    pub(crate) id: String,
    /// How refusals name it.
    pub(crate) label: String,
    /// Its budget and budget period, when it has one.
    pub(crate) budget: Option<(f64, Option<String>)>,
    /// Its spend is also kept per model (`<scope>_model`).
    pub(crate) per_model: bool,
    /// The request's cost is added to it (a per-model budget's row gets the cost through its
    /// scope's per-model spend instead).
    pub(crate) costed: bool,
    /// Dollars held against it at admission.
    pub(crate) held: f64,
    /// The start of its current budget period, when it has one (its cost belongs to it).
    pub(crate) window: Option<DateTime<Utc>>,
}

/// Who a request is charged to and what admission held against each. Kept on the request's
/// draft and settled when its record closes, whichever way the request ends.
#[derive(Debug, Clone, Default)]
pub struct Charges {
    pub(crate) payers: Vec<Payer>,
}

impl Charges {
    /// The request ended costing `cost` on `model`: each payer gets the cost (and per model) and
    /// its hold back. Idempotent: a second call adds and releases nothing.
    pub fn settle(&mut self, keys: &Keys, model: Option<&str>, cost: f64) {
        let payers = std::mem::take(&mut self.payers);
        let mut charges = Vec::with_capacity(payers.len() * 2);
        for p in payers {
            let per_model = p.per_model.then_some(model).flatten();
            if let Some(m) = per_model {
                charges.push(Charge {
                    scope: format!("{}_model", p.scope),
                    id: format!("{}/{m}", p.id),
                    cost,
                    release: 0.0,
                    window: None,
                });
            }
            charges.push(Charge {
                scope: p.scope.to_string(),
                id: p.id,
                cost: if p.costed { cost } else { 0.0 },
                release: p.held,
                window: p.window,
            });
        }
        // A per-model cost whose row has a budget of its own (the key's `model_max_budget`)
        // belongs to that budget's period.
        for i in 0..charges.len() {
            if charges[i].window.is_none()
                && let Some(w) = charges
                    .iter()
                    .find(|o| o.window.is_some() && o.scope == charges[i].scope && o.id == charges[i].id)
                    .and_then(|o| o.window)
            {
                charges[i].window = Some(w);
            }
        }
        keys.charge(charges);
    }

    /// The same payers with nothing held: a workflow step's (the run held nothing up front).
    pub fn for_step(&self) -> Charges {
        Charges {
            payers: self.payers.iter().map(|p| Payer { held: 0.0, ..p.clone() }).collect(),
        }
    }
}
