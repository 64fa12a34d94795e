//! The comparison as document blocks, in one language, placed in front of the new report's
//! first section: it answers the question the user ran the report again for.

use super::{Change, Comparison, FindingChange, FindingStatus, Unit, Verdict};
use crate::finding::Severity;
use crate::i18n::Lang;
use crate::render::doc::{self, Block, table, time};
use crate::report::Report;

/// The new report's document with the comparison after the title and inputs, before section 1.
pub(super) fn document(report: &Report, cmp: &Comparison, lang: Lang) -> Vec<Block> {
    let mut d = doc::compose(report, lang);
    let at = d.iter().position(|b| matches!(b, Block::H2(_))).unwrap_or(d.len());
    d.splice(at..at, blocks(cmp, lang));
    d
}

fn label(l: Lang, id: &str) -> String {
    match id {
        "requests" => l.pick("Requests", "Toplam istek"),
        "success_rate" => l.pick("Success rate", "Başarı oranı"),
        "failed" => l.pick("Failed requests", "Başarısız istek"),
        "total_cost_usd" => l.pick("Total cost", "Toplam maliyet"),
        "cache_hit_rate" => l.pick("Cache hit rate", "Cache hit oranı"),
        "cache_repeats" => l.pick(
            "Exact repeats that reached the provider",
            "Sağlayıcıya giden birebir tekrarlar",
        ),
        "prompt_tokens" => l.pick("Prompt tokens", "Prompt token"),
        "cached_tokens" => l.pick("Cached prompt tokens (cache read)", "Önbellekten okunan prompt token"),
        "cache_creation_tokens" => l.pick("Cache write tokens", "Önbelleğe yazılan token"),
        "completion_tokens" => l.pick("Completion tokens", "Completion token"),
        "reasoning_tokens" => l.pick("Reasoning tokens", "Reasoning token"),
        "reasoning_share" => l.pick(
            "Reasoning share of completion tokens",
            "Completion token içinde reasoning payı",
        ),
        "worst_model_p95_ms" => l.pick("Worst model p95 latency", "En kötü model p95 gecikmesi"),
        "overhead_p50_ms" => l.pick("Gateway overhead p50", "Gateway ek yükü p50"),
        "overhead_p95_ms" => l.pick("Gateway overhead p95", "Gateway ek yükü p95"),
        "findings" => l.pick("Findings", "Bulgular"),
        "critical_findings" => l.pick("Critical findings", "Kritik bulgular"),
        other => other,
    }
    .to_string()
}

/// A value as the rest of the report shows it.
fn value(l: Lang, unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count | Unit::Tokens => l.int(v.max(0.0).round() as u64),
        Unit::Ratio => l.pct(v),
        Unit::Usd => l.usd(v),
        Unit::Ms => l.ms(v),
    }
}

fn value_or(l: Lang, unit: Unit, v: Option<f64>, missing: &str) -> String {
    v.map_or_else(|| missing.to_string(), |v| value(l, unit, v))
}

/// `+text` / `-text` for a nonzero amount; zero (as shown) carries no sign.
fn signed(negative: bool, text: String) -> String {
    if !text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        text
    } else if negative {
        format!("-{text}")
    } else {
        format!("+{text}")
    }
}

/// after − before, and relative to before: `+3 (+60%)`; a ratio's change is in points.
fn change_text(l: Lang, unit: Unit, c: &Change) -> String {
    let Some(d) = c.change else {
        return l.na().into();
    };
    let amount = match unit {
        Unit::Ratio => format!("{} {}", l.num(d.abs() * 100.0, 1), l.pick("pp", "puan")),
        _ => value(l, unit, d.abs()),
    };
    let amount = signed(d < 0.0, amount);
    match c.relative_change {
        Some(r) if amount.starts_with(['+', '-']) => {
            format!("{amount} ({})", signed(r < 0.0, l.pct(r.abs())))
        }
        _ => amount,
    }
}

/// `before → after`, `–` for a side that does not have it.
fn arrow(l: Lang, unit: Unit, c: &Change) -> String {
    format!(
        "{} → {}",
        value_or(l, unit, c.before, "–"),
        value_or(l, unit, c.after, "–")
    )
}

fn verdict(l: Lang, v: Option<Verdict>) -> String {
    match v {
        Some(Verdict::Better) => l.pick("better", "daha iyi"),
        Some(Verdict::Worse) => l.pick("worse", "daha kötü"),
        Some(Verdict::Unchanged) => l.pick("unchanged", "değişmedi"),
        None => "",
    }
    .into()
}

fn status(l: Lang, s: FindingStatus) -> &'static str {
    match s {
        FindingStatus::Fixed => l.pick("fixed", "giderildi"),
        FindingStatus::Still => l.pick("still", "sürüyor"),
        FindingStatus::New => l.pick("new", "yeni"),
    }
}

/// A severity as the report writes it; an unknown one (another version's) as written.
fn severity(l: Lang, s: &str) -> String {
    match s {
        "critical" => Severity::Critical.label(l).into(),
        "warning" => Severity::Warning.label(l).into(),
        "info" => Severity::Info.label(l).into(),
        other => other.into(),
    }
}

fn severities(l: Lang, f: &FindingChange) -> String {
    match (&f.before, &f.after) {
        (Some(b), Some(a)) if b.severity != a.severity => {
            format!("{} → {}", severity(l, &b.severity), severity(l, &a.severity))
        }
        (_, Some(s)) | (Some(s), None) => severity(l, &s.severity),
        (None, None) => "–".into(),
    }
}

pub(super) fn blocks(c: &Comparison, l: Lang) -> Vec<Block> {
    let mut d = vec![Block::H2(l.pick("Before → after", "Önce → sonra").into())];
    let before_requests = c
        .figures
        .iter()
        .find(|f| f.id == "requests")
        .and_then(|f| f.change.before);
    d.push(Block::P(format!(
        "{} `{}` ({}: {} – {}, {} {}). {}",
        l.pick("Compared with", "Karşılaştırılan:"),
        c.baseline,
        l.pick("its period", "önceki dönem"),
        time(c.before_period.start),
        time(c.before_period.end),
        value_or(l, Unit::Count, before_requests, l.na()),
        l.pick("requests", "istek"),
        l.pick(
            "Change is after − before; the percentage is relative to before.",
            "Değişim, sonra − önce farkıdır; yüzde önceki değere göredir.",
        )
    )));
    d.push(table(
        &[
            l.pick("Metric", "Metrik"),
            l.pick("Before", "Önce"),
            l.pick("After", "Sonra"),
            l.pick("Change", "Değişim"),
            l.pick("Verdict", "Sonuç"),
        ],
        &[false, true, true, true, false],
        c.figures
            .iter()
            .map(|f| {
                vec![
                    label(l, f.id),
                    value_or(l, f.unit, f.change.before, l.na()),
                    value_or(l, f.unit, f.change.after, l.na()),
                    change_text(l, f.unit, &f.change),
                    verdict(l, f.verdict),
                ]
            })
            .collect(),
    ));

    if !c.models.is_empty() {
        d.push(Block::H3(l.pick("Per model", "Model bazında").into()));
        d.push(table(
            &[
                l.pick("Model", "Model"),
                l.pick("Requests", "İstek"),
                l.pick("Failed", "Başarısız"),
                l.pick("Cost", "Maliyet"),
                "p50",
                "p95",
            ],
            &[false, true, true, true, true, true],
            c.models
                .iter()
                .map(|m| {
                    vec![
                        m.model.clone(),
                        arrow(l, Unit::Count, &m.requests),
                        arrow(l, Unit::Count, &m.failed),
                        arrow(l, Unit::Usd, &m.cost_usd),
                        arrow(l, Unit::Ms, &m.latency_p50_ms),
                        arrow(l, Unit::Ms, &m.latency_p95_ms),
                    ]
                })
                .collect(),
        ));
    }

    d.push(Block::H3(l.pick("Findings", "Bulgular").into()));
    if c.findings.is_empty() {
        d.push(Block::P(
            l.pick("No findings in either report.", "İki raporda da bulgu yok.")
                .into(),
        ));
        return d;
    }
    d.push(Block::P(format!(
        "{}: {} · {}: {} · {}: {}",
        l.pick("Fixed", "Giderilen"),
        l.int(c.count(FindingStatus::Fixed) as u64),
        l.pick("still open", "süren"),
        l.int(c.count(FindingStatus::Still) as u64),
        l.pick("new", "yeni"),
        l.int(c.count(FindingStatus::New) as u64),
    )));
    d.push(table(
        &[
            l.pick("Status", "Durum"),
            l.pick("Finding", "Bulgu"),
            l.pick("Model", "Model"),
            l.pick("Severity", "Önem"),
            l.pick("Estimated savings", "Tahmini tasarruf"),
        ],
        &[false, false, false, false, true],
        c.findings
            .iter()
            .map(|f| {
                vec![
                    status(l, f.status).into(),
                    format!("{} (`{}`)", f.message, f.id),
                    f.model.clone().unwrap_or_else(|| "–".into()),
                    severities(l, f),
                    if f.savings_usd.before.is_none() && f.savings_usd.after.is_none() {
                        "–".into()
                    } else {
                        arrow(l, Unit::Usd, &f.savings_usd)
                    },
                ]
            })
            .collect(),
    ));
    let evidence: Vec<String> = c
        .findings
        .iter()
        .filter_map(|f| {
            let (b, a) = (f.before.as_ref()?, f.after.as_ref()?);
            let model = f.model.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
            Some(format!(
                "`{}`{model}: **{}**: {} **{}**: {}",
                f.id,
                l.pick("before", "önce"),
                b.evidence,
                l.pick("after", "sonra"),
                a.evidence
            ))
        })
        .collect();
    if !evidence.is_empty() {
        d.push(Block::P(
            l.pick(
                "The numbers of the findings still open, before and after:",
                "Süren bulguların rakamları, önce ve sonra:",
            )
            .into(),
        ));
        d.push(Block::Bullets(evidence));
    }
    d
}
