//! Charts as inline SVG, drawn on the server: no script, no library, nothing fetched. Only
//! numbers and fixed labels go into the markup, so there is nothing to escape.

use std::fmt::Write;

use tollgate_report::aggregate::TimePoint;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const PAD_LEFT: f64 = 44.0;
const PAD_BOTTOM: f64 = 20.0;

/// Requests per time bucket as bars (failures stacked on top, in the error colour) and cost as
/// a line over them, scaled to its own maximum.
pub fn requests_and_cost(points: &[TimePoint], title: &str) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(title)
    );
    let plot_w = WIDTH - PAD_LEFT;
    let plot_h = HEIGHT - PAD_BOTTOM;
    let max_requests = points.iter().map(|p| p.requests).max().unwrap_or(0).max(1) as f64;
    let max_cost = points.iter().map(|p| p.cost_usd).fold(0.0, f64::max);
    let _ = write!(
        svg,
        r##"<line x1="{PAD_LEFT}" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}" stroke="#999" stroke-width="1"/>"##
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="12" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
        PAD_LEFT - 4.0,
        max_requests as u64
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{plot_h}" font-size="10" text-anchor="end" fill="#555">0</text>"##,
        PAD_LEFT - 4.0
    );
    if !points.is_empty() {
        let slot = plot_w / points.len() as f64;
        // Few buckets would make wall-wide bars: at most 48 units wide.
        let bar = (slot * 0.8).clamp(1.0, 48.0);
        let mut line = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let x = PAD_LEFT + i as f64 * slot + (slot - bar) / 2.0;
            let ok = p.requests.saturating_sub(p.failed) as f64;
            let h_ok = ok / max_requests * (plot_h - 14.0);
            let h_failed = p.failed as f64 / max_requests * (plot_h - 14.0);
            let _ = write!(
                svg,
                r##"<rect class="bar" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h_ok:.1}" fill="#3b6ea5"><title>{} {}</title></rect>"##,
                plot_h - h_ok,
                p.start.format("%Y-%m-%d %H:%M"),
                p.requests
            );
            if p.failed > 0 {
                let _ = write!(
                    svg,
                    r##"<rect class="bar failed" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h_failed:.1}" fill="#c0392b"/>"##,
                    plot_h - h_ok - h_failed
                );
            }
            if max_cost > 0.0 {
                let y = plot_h - p.cost_usd / max_cost * (plot_h - 14.0);
                line.push(format!("{:.1},{y:.1}", x + bar / 2.0));
            }
        }
        if line.len() > 1 {
            let _ = write!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="#e08e0b" stroke-width="2"/>"##,
                line.join(" ")
            );
        }
        if let (Some(first), Some(last)) = (points.first(), points.last()) {
            let _ = write!(
                svg,
                r##"<text x="{PAD_LEFT}" y="{}" font-size="10" fill="#555">{}</text><text x="{WIDTH}" y="{}" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
                HEIGHT - 4.0,
                first.start.format("%m-%d %H:%M"),
                HEIGHT - 4.0,
                last.start.format("%m-%d %H:%M")
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One bar of a workflow run's timeline.
pub struct Span {
    pub label: String,
    /// From the run's start, and how long the step took.
    pub offset_ms: f64,
    pub duration_ms: f64,
    pub failed: bool,
}

/// A workflow run's steps as a timeline: one row per step, placed by when it started and as
/// wide as it took.
pub fn timeline(spans: &[Span]) -> String {
    const ROW: f64 = 22.0;
    const LABEL: f64 = 160.0;
    let end = spans
        .iter()
        .map(|s| s.offset_ms + s.duration_ms)
        .fold(0.0, f64::max)
        .max(1.0);
    let height = ROW * spans.len() as f64 + 6.0;
    let scale = (WIDTH - LABEL - 8.0) / end;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart timeline" viewBox="0 0 {WIDTH} {height}" role="img" xmlns="http://www.w3.org/2000/svg">"#
    );
    for (i, s) in spans.iter().enumerate() {
        let y = i as f64 * ROW + 4.0;
        let colour = if s.failed { "#c0392b" } else { "#3b6ea5" };
        let _ = write!(
            svg,
            r##"<text x="0" y="{:.1}" font-size="11" fill="#1d232a">{}</text><rect class="step" x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{:.0} ms</title></rect>"##,
            y + 13.0,
            escape(&s.label),
            LABEL + s.offset_ms * scale,
            (s.duration_ms * scale).max(2.0),
            ROW - 6.0,
            s.duration_ms
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The few characters that matter inside an attribute.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(minute: i64, requests: u64, failed: u64, cost: f64) -> TimePoint {
        TimePoint {
            start: chrono::DateTime::from_timestamp(1_780_000_000 + minute * 60, 0).unwrap(),
            requests,
            failed,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: cost,
            latency_p50_ms: None,
            latency_p95_ms: None,
        }
    }

    #[test]
    fn bars_per_bucket_failures_stacked_and_a_cost_line() {
        let svg = requests_and_cost(&[point(0, 4, 1, 0.5), point(1, 2, 0, 1.0)], "a \"title\"");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert_eq!(svg.matches(r#"class="bar failed""#).count(), 1);
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("a &quot;title&quot;"));
        // The tallest bar (3 successes of a 4 maximum) stays inside the plot.
        assert!(!svg.contains("y=\"-"));
    }

    #[test]
    fn a_timeline_places_steps_by_start_and_duration() {
        let span = |label: &str, offset_ms: f64, duration_ms: f64, failed: bool| Span {
            label: label.into(),
            offset_ms,
            duration_ms,
            failed,
        };
        let svg = timeline(&[
            span("1 planner <a>", 0.0, 100.0, false),
            span("2 coder", 100.0, 300.0, true),
            span("3 reviewer", 400.0, 100.0, false),
        ]);
        assert_eq!(svg.matches(r#"class="step""#).count(), 3);
        assert!(svg.contains("1 planner &lt;a&gt;"));
        assert!(svg.contains("#c0392b"), "the failed step in the error colour");
    }

    #[test]
    fn no_points_is_an_empty_axis() {
        let svg = requests_and_cost(&[], "t");
        assert!(!svg.contains("<rect"));
    }
}
