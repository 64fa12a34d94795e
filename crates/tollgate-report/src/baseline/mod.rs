//! `tollgate report --baseline before.json`: a previous report's figures beside this one's, so a
//! user who applied a report's fix sees whether it worked (the seed's last step: run the report
//! again and compare).
//!
//! Both sides are read from the report's JSON form ([`Baseline`] for the file, the same reading
//! for the new report), so one piece of code compares them and a file from another version of
//! tollgate compares on the fields it has. The comparison ([`Comparison`]) is data, with its own
//! JSON form; [`render()`] puts it in front of the new report in every format and language.

mod compose;
mod side;

use serde::Serialize;
use serde_json::Value;

use crate::i18n::Lang;
use crate::render::{Format, html, localized, markdown, terminal};
use crate::report::Report;
pub use side::{Baseline, SidePeriod};
use side::{Side, SideFinding};

/// How a figure is counted and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Count,
    Tokens,
    /// 0..=1; its change is shown in percentage points.
    Ratio,
    Usd,
    Ms,
}

impl Unit {
    /// The smallest change that counts: below what the report shows (a tenth of a millisecond,
    /// a twentieth of a percentage point, …), so two figures that print the same are never
    /// called better or worse.
    fn resolution(self) -> f64 {
        match self {
            Unit::Count | Unit::Tokens => 0.5,
            Unit::Ratio => 0.0005,
            Unit::Usd => 5e-7,
            Unit::Ms => 0.05,
        }
    }
}

/// Which way a figure should move after a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
    /// Volume figures (requests, tokens): a change is neither good nor bad by itself.
    Neither,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    Unchanged,
}

/// One figure before and after. `null` where a side does not have it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Change {
    pub before: Option<f64>,
    pub after: Option<f64>,
    /// after − before.
    pub change: Option<f64>,
    /// change / before; null when before is zero or missing.
    pub relative_change: Option<f64>,
}

impl Change {
    pub fn new(before: Option<f64>, after: Option<f64>) -> Change {
        let change = before.zip(after).map(|(b, a)| a - b);
        Change {
            before,
            after,
            change,
            relative_change: change.zip(before).filter(|(_, b)| *b != 0.0).map(|(d, b)| d / b.abs()),
        }
    }
}

/// A headline figure: the overview's and the summary table's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// Stable name: `requests`, `success_rate`, `total_cost_usd`, ….
    pub id: &'static str,
    pub unit: Unit,
    pub better: Better,
    #[serde(flatten)]
    pub change: Change,
    /// null for volume figures and when a side is missing.
    pub verdict: Option<Verdict>,
}

/// A model's figures before and after; a side is null when the model is not in that report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelChange {
    pub model: String,
    pub requests: Change,
    pub failed: Change,
    pub cost_usd: Change,
    pub latency_p50_ms: Change,
    pub latency_p95_ms: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// In the before report only.
    Fixed,
    /// In both.
    Still,
    /// In the new report only.
    New,
}

/// A finding as one report had it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingState {
    pub severity: String,
    pub evidence: String,
    pub savings_usd: Option<f64>,
    /// The numbers behind the finding, as that report wrote them.
    pub data: Value,
}

impl From<&SideFinding> for FindingState {
    fn from(f: &SideFinding) -> Self {
        FindingState {
            severity: f.severity.clone(),
            evidence: f.evidence.clone(),
            savings_usd: f.savings_usd,
            data: f.data.clone(),
        }
    }
}

/// Findings are the same finding when their `id` and `model` match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingChange {
    pub id: String,
    pub model: Option<String>,
    pub status: FindingStatus,
    /// The new report's text when it still has the finding, else the before file's.
    pub message: String,
    pub before: Option<FindingState>,
    pub after: Option<FindingState>,
    pub savings_usd: Change,
}

/// The whole comparison; under `comparison` in the JSON form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The before file, as named on the command line.
    pub baseline: String,
    pub before_period: SidePeriod,
    pub figures: Vec<Figure>,
    pub models: Vec<ModelChange>,
    pub findings: Vec<FindingChange>,
}

fn sum(models: &[side::SideModel], field: impl Fn(&side::SideModel) -> Option<f64>) -> Option<f64> {
    models
        .iter()
        .filter_map(field)
        .fold(None, |acc, x| Some(acc.unwrap_or(0.0) + x))
}

/// The headline figures of one side, in display order.
fn headline(s: &Side) -> Vec<(&'static str, Unit, Better, Option<f64>)> {
    let tokens = |f: fn(&side::SideModel) -> Option<f64>| sum(&s.models, f);
    let reasoning = tokens(|m| m.reasoning_tokens);
    let completion = tokens(|m| m.completion_tokens);
    // As the summary table computes them: over the models, so an older file without a total
    // still compares.
    let reasoning_share = reasoning.zip(completion).filter(|(_, c)| *c > 0.0).map(|(r, c)| r / c);
    let worst_p95 = s
        .models
        .iter()
        .filter_map(|m| m.latency_ms.as_ref()?.p95)
        .fold(None, |w: Option<f64>, x| Some(w.map_or(x, |w| w.max(x))));
    let critical = s.findings.iter().filter(|f| f.severity == "critical").count();
    use Better::*;
    use Unit::*;
    vec![
        ("requests", Count, Neither, s.requests.total),
        ("success_rate", Ratio, Higher, s.requests.success_rate),
        ("failed", Count, Lower, s.requests.failed),
        ("total_cost_usd", Usd, Lower, s.cost.total_usd),
        ("cache_hit_rate", Ratio, Higher, s.cache.hit_rate()),
        ("cache_repeats", Count, Lower, s.cache.repeat_requests),
        ("prompt_tokens", Tokens, Neither, tokens(|m| m.prompt_tokens)),
        ("cached_tokens", Tokens, Neither, tokens(|m| m.cached_tokens)),
        (
            "cache_creation_tokens",
            Tokens,
            Neither,
            tokens(|m| m.cache_creation_tokens),
        ),
        ("completion_tokens", Tokens, Neither, completion),
        ("reasoning_tokens", Tokens, Neither, reasoning),
        ("reasoning_share", Ratio, Lower, reasoning_share),
        ("worst_model_p95_ms", Ms, Lower, worst_p95),
        ("overhead_p50_ms", Ms, Lower, s.overhead_ms.as_ref().and_then(|o| o.p50)),
        ("overhead_p95_ms", Ms, Lower, s.overhead_ms.as_ref().and_then(|o| o.p95)),
        ("findings", Count, Lower, Some(s.findings.len() as f64)),
        ("critical_findings", Count, Lower, Some(critical as f64)),
    ]
}

fn verdict(unit: Unit, better: Better, c: &Change) -> Option<Verdict> {
    let d = c.change?;
    if d.abs() < unit.resolution() {
        return Some(Verdict::Unchanged);
    }
    match better {
        Better::Neither => None,
        Better::Higher if d > 0.0 => Some(Verdict::Better),
        Better::Lower if d < 0.0 => Some(Verdict::Better),
        _ => Some(Verdict::Worse),
    }
}

fn models(before: &Side, after: &Side) -> Vec<ModelChange> {
    // The new report's order (by cost), then models that are gone.
    let mut names: Vec<&str> = after.models.iter().map(|m| m.model.as_str()).collect();
    for m in &before.models {
        if !names.contains(&m.model.as_str()) {
            names.push(&m.model);
        }
    }
    let find = |s: &'_ Side, name: &str| s.models.iter().find(|m| m.model == name).cloned();
    names
        .into_iter()
        .map(|name| {
            let (b, a) = (find(before, name), find(after, name));
            let pair =
                |f: fn(&side::SideModel) -> Option<f64>| Change::new(b.as_ref().and_then(f), a.as_ref().and_then(f));
            ModelChange {
                model: name.to_string(),
                requests: pair(|m| m.requests),
                failed: pair(|m| m.failed),
                cost_usd: pair(|m| m.cost_usd),
                latency_p50_ms: pair(|m| m.latency_ms.as_ref()?.p50),
                latency_p95_ms: pair(|m| m.latency_ms.as_ref()?.p95),
            }
        })
        .collect()
}

fn findings(before: &Side, after: &Side) -> Vec<FindingChange> {
    let mut unmatched: Vec<Option<&SideFinding>> = after.findings.iter().map(Some).collect();
    let mut fixed = Vec::new();
    let mut still = Vec::new();
    for b in &before.findings {
        // Two findings with the same id and model pair up in order; a finding about a key
        // (`budget_near_limit`) pairs only with one about the same key.
        let hit = unmatched
            .iter_mut()
            .find(|a| a.is_some_and(|a| a.id == b.id && a.model == b.model && a.data.get("key") == b.data.get("key")))
            .and_then(Option::take);
        let change = |status, message: &str, after: Option<&SideFinding>| FindingChange {
            id: b.id.clone(),
            model: b.model.clone(),
            status,
            message: message.to_string(),
            before: Some(b.into()),
            after: after.map(FindingState::from),
            savings_usd: Change::new(b.savings_usd, after.and_then(|a| a.savings_usd)),
        };
        match hit {
            Some(a) => still.push(change(FindingStatus::Still, &a.message, Some(a))),
            None => fixed.push(change(FindingStatus::Fixed, &b.message, None)),
        }
    }
    let new = unmatched.into_iter().flatten().map(|a| FindingChange {
        id: a.id.clone(),
        model: a.model.clone(),
        status: FindingStatus::New,
        message: a.message.clone(),
        before: None,
        after: Some(a.into()),
        savings_usd: Change::new(None, a.savings_usd),
    });
    fixed.into_iter().chain(still).chain(new).collect()
}

impl Comparison {
    /// Compares the before file with a (localized) new report.
    pub fn new(baseline: &Baseline, report: &Report) -> Comparison {
        let (before, after) = (&baseline.side, Side::of(report));
        let figures = headline(before)
            .into_iter()
            .zip(headline(&after))
            .map(|((id, unit, better, b), (_, _, _, a))| {
                let change = Change::new(b, a);
                Figure {
                    id,
                    unit,
                    better,
                    verdict: verdict(unit, better, &change),
                    change,
                }
            })
            .collect();
        Comparison {
            baseline: baseline.name.clone(),
            before_period: before.period.clone(),
            figures,
            models: models(before, &after),
            findings: findings(before, &after),
        }
    }

    pub fn count(&self, status: FindingStatus) -> usize {
        self.findings.iter().filter(|f| f.status == status).count()
    }
}

/// The report's JSON form with the comparison under `comparison`: still a report, so it can be
/// the baseline of the next run.
#[derive(Serialize)]
struct Compared<'a> {
    #[serde(flatten)]
    report: &'a Report,
    comparison: &'a Comparison,
}

/// Renders the new report with the comparison in front of its first section.
pub fn render(report: &Report, baseline: &Baseline, format: Format, lang: Lang) -> String {
    let report = localized(report, lang);
    let cmp = Comparison::new(baseline, &report);
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&Compared {
                report: &report,
                comparison: &cmp,
            })
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            s.push('\n');
            s
        }
        Format::Md => markdown::render(&compose::document(&report, &cmp, lang)),
        Format::Html => html::render(&report, &compose::document(&report, &cmp, lang), lang),
        Format::Table => terminal::render(&compose::document(&report, &cmp, lang), terminal::Style::detect()),
    }
}

/// The terminal rendering with a given width and colour setting.
pub fn render_table(report: &Report, baseline: &Baseline, lang: Lang, style: terminal::Style) -> String {
    let report = localized(report, lang);
    let cmp = Comparison::new(baseline, &report);
    terminal::render(&compose::document(&report, &cmp, lang), style)
}
