//! One side of a comparison: the parts of a report's JSON form (`--format json`) that the
//! comparison reads. Every field is optional or defaulted, so a file written by another version
//! of tollgate compares on the fields it has, and a figure it lacks shows as "n/a".

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ReportError;
use crate::report::Report;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Side {
    pub period: SidePeriod,
    pub requests: SideRequests,
    pub cost: SideCost,
    pub cache: SideCache,
    pub models: Vec<SideModel>,
    pub overhead_ms: Option<SideOverhead>,
    pub findings: Vec<SideFinding>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SidePeriod {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SideRequests {
    pub total: Option<f64>,
    pub failed: Option<f64>,
    pub success_rate: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SideCost {
    pub total_usd: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SideCache {
    pub state: Option<String>,
    pub hit_rate: Option<f64>,
    pub repeat_requests: Option<f64>,
}

impl SideCache {
    /// The report leaves the hit rate out when the cache is off; for a comparison that is a
    /// rate of 0 (no request was answered from it), so turning the cache on shows as a change.
    pub fn hit_rate(&self) -> Option<f64> {
        self.hit_rate
            .or_else(|| (self.state.as_deref() == Some("off")).then_some(0.0))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SideModel {
    pub model: String,
    pub requests: Option<f64>,
    pub failed: Option<f64>,
    pub prompt_tokens: Option<f64>,
    pub completion_tokens: Option<f64>,
    pub reasoning_tokens: Option<f64>,
    pub cached_tokens: Option<f64>,
    pub cache_creation_tokens: Option<f64>,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<SideLatency>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SideLatency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SideOverhead {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SideFinding {
    pub id: String,
    pub severity: String,
    pub model: Option<String>,
    pub message: String,
    pub evidence: String,
    pub savings_usd: Option<f64>,
    pub data: Value,
}

impl Side {
    /// The new report seen the way a before file is: through its JSON form, so both sides are
    /// read by the same code.
    pub(crate) fn of(report: &Report) -> Side {
        // The report's own serde form always reads back (every field here is optional); the
        // default only stands in for a panic.
        serde_json::to_value(report)
            .and_then(serde_json::from_value)
            .unwrap_or_default()
    }
}

/// A previous report to compare with: `tollgate report --baseline before.json`.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The file as the user named it, shown in the comparison.
    pub name: String,
    pub(crate) side: Side,
}

impl Baseline {
    pub fn read(path: &Path) -> Result<Baseline, ReportError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ReportError::Io {
            path: name.clone(),
            source,
        })?;
        Baseline::parse(&name, &bytes)
    }

    /// Reads a report's JSON form; `name` is what errors and the comparison call it.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Baseline, ReportError> {
        let not_a_report = |why: String| ReportError::Baseline {
            path: name.to_string(),
            message: why,
        };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| not_a_report(format!("not JSON ({e})")))?;
        // Every `--format json` report has these; a log file, a record or another tool's JSON
        // does not, and comparing with it would show every figure as "n/a" instead of an error.
        let is_report =
            v.get("schema_version").is_some_and(Value::is_u64) && v.get("requests").is_some_and(Value::is_object);
        if !is_report {
            return Err(not_a_report(
                "JSON without the report's `schema_version` and `requests`".into(),
            ));
        }
        let side = serde_json::from_value(v).map_err(|e| not_a_report(format!("a field has the wrong type ({e})")))?;
        Ok(Baseline {
            name: name.to_string(),
            side,
        })
    }
}
