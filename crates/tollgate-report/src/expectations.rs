//! What a gateway config tells the report beyond the logs: the workflows and the steps each run
//! should go through, and the prices and context windows the config gives its deployments.
//!
//! `tollgate report --config config.yaml` reads a tollgate or LiteLLM config with the gateway's
//! own loader (includes and `os.environ/` references resolved; a variable that is not set only
//! drops that value, as the report needs no credentials).

use std::path::Path;

use tollgate_core::config::{self, GatewayConfig, ProcessEnv};
use tollgate_core::{Price, PriceTable};

/// A workflow as the config defines it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpectedWorkflow {
    pub name: String,
    /// Other model names clients may call the workflow by.
    pub aliases: Vec<String>,
    pub steps: Vec<ExpectedStep>,
}

/// One step: its role and the upstream models (`provider/model`) that may answer it, its own
/// model's deployments first, then its fallbacks'.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpectedStep {
    pub role: String,
    pub upstream_models: Vec<String>,
}

impl ExpectedWorkflow {
    /// Whether a request for `model_group` was a call of this workflow.
    pub fn is_called_as(&self, model_group: &str) -> bool {
        std::iter::once(&self.name)
            .chain(self.aliases.iter())
            .any(|n| n.eq_ignore_ascii_case(model_group))
    }

    /// The step (index, role) an upstream model answers for; the first step wins when several
    /// share a model.
    pub fn step_answered_by(&self, upstream: &str) -> Option<(u32, &str)> {
        let bare = |m: &str| m.split_once('/').map_or(m, |(_, rest)| rest).to_ascii_lowercase();
        let wanted = bare(upstream);
        self.steps.iter().enumerate().find_map(|(i, s)| {
            s.upstream_models
                .iter()
                .any(|m| m.eq_ignore_ascii_case(upstream) || bare(m) == wanted)
                .then_some((i as u32, s.role.as_str()))
        })
    }
}

/// The facts the report takes from a config.
#[derive(Debug, Clone, Default)]
pub struct ConfigFacts {
    pub workflows: Vec<ExpectedWorkflow>,
    /// (name, price) per deployment that sets its own prices or limits, under both its model
    /// group and its upstream model, so records of either name are re-priced with them.
    pub prices: Vec<(String, Price)>,
}

impl ConfigFacts {
    /// Loads `path`; an invalid config is an error naming the file, line and fix (the gateway's
    /// own message).
    pub fn load(path: &Path, base_prices: &PriceTable) -> Result<Self, String> {
        let cfg = config::load(path, &ProcessEnv).map_err(|e| e.to_string())?;
        Ok(Self::from_config(&cfg, base_prices))
    }

    pub fn from_config(cfg: &GatewayConfig, base_prices: &PriceTable) -> Self {
        let upstreams_of = |group: &str| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            let target = cfg.router.resolve(group);
            for d in cfg.deployments.iter().filter(|d| d.model_name == target) {
                if !out.contains(&d.model) {
                    out.push(d.model.clone());
                }
            }
            out
        };
        let workflows = cfg
            .workflows
            .iter()
            .map(|w| ExpectedWorkflow {
                name: w.name.clone(),
                aliases: w.aliases.clone(),
                steps: w
                    .steps
                    .iter()
                    .map(|s| ExpectedStep {
                        role: s.role.clone(),
                        upstream_models: std::iter::once(&s.model)
                            .chain(s.fallbacks.iter())
                            .flat_map(|g| upstreams_of(g))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let mut prices = Vec::new();
        for d in &cfg.deployments {
            if d.price_override == Price::default() {
                continue;
            }
            let base = d.model_info.base_model.as_deref().unwrap_or(&d.model);
            let mut price = base_prices.lookup(base).cloned().unwrap_or_default();
            price.overlay(&d.price_override);
            prices.push((d.model_name.clone(), price.clone()));
            prices.push((d.model.clone(), price));
        }
        ConfigFacts { workflows, prices }
    }

    /// The price table with this config's per-deployment prices on top.
    pub fn apply_prices(&self, table: &mut PriceTable) {
        for (name, price) in &self.prices {
            table.insert(name, price.clone());
        }
    }
}
