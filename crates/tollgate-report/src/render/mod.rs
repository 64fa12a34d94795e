//! Renderers: `table` (terminal), `md`, `html` (self-contained) and `json`.

pub mod doc;
pub mod html;
pub mod markdown;
pub mod terminal;

use serde::{Deserialize, Serialize};

use crate::i18n::Lang;
use crate::report::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Tables for a terminal (the default when stdout is one).
    Table,
    /// Markdown.
    Md,
    /// One self-contained HTML file with inline CSS and SVG charts.
    Html,
    /// The report's JSON schema.
    Json,
}

/// The report with its findings' texts in `lang`.
pub fn localized(report: &Report, lang: Lang) -> Report {
    let mut r = report.clone();
    for f in &mut r.findings {
        f.localize(lang);
    }
    r
}

/// Renders a report; deterministic (no clock, no environment) except `table`, which adapts to
/// the terminal's width and colour settings when stdout is a terminal.
pub fn render(report: &Report, format: Format, lang: Lang) -> String {
    let report = localized(report, lang);
    match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            s.push('\n');
            s
        }
        Format::Md => markdown::render(&doc::compose(&report, lang)),
        Format::Html => html::render(&report, &doc::compose(&report, lang), lang),
        Format::Table => terminal::render(&doc::compose(&report, lang), terminal::Style::detect()),
    }
}

/// The terminal rendering with a given width and colour setting (for tests and callers that
/// know their terminal).
pub fn render_table(report: &Report, lang: Lang, style: terminal::Style) -> String {
    terminal::render(&doc::compose(&localized(report, lang), lang), style)
}
