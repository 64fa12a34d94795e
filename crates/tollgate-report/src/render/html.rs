//! One self-contained HTML file: inline CSS and inline SVG charts. No scripts, fonts or anything
//! else fetched from the network, so it can be mailed or archived as is.

use std::fmt::Write;

use super::doc::{Block, Chart, bucket_name, bucket_start};
use crate::i18n::Lang;
use crate::report::Report;

const CSS: &str = "
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330;background:#f6f7f9;margin:0}
main{max-width:1100px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #e3e6eb;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #dde1e6;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f0f2f5;padding:1px 4px;border-radius:3px;word-break:break-all}
pre{background:#f0f2f5;padding:8px 12px;overflow:auto}
figure{margin:8px 0 20px}figcaption{font-size:13px;color:#5b6475}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
h3.sev-critical{color:#b42318}h3.sev-warning{color:#b54708}h3.sev-info{color:#175cd3}
";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escapes and turns `code` and **bold** into markup.
fn inline(s: &str) -> String {
    let e = esc(s);
    let mut out = String::new();
    let mut code = false;
    for (i, part) in e.split('`').enumerate() {
        if i > 0 {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
        }
        if code {
            out.push_str(part);
        } else {
            let mut bold = false;
            for (j, p) in part.split("**").enumerate() {
                if j > 0 {
                    out.push_str(if bold { "</strong>" } else { "<strong>" });
                    bold = !bold;
                }
                out.push_str(p);
            }
            if bold {
                out.push_str("</strong>");
            }
        }
    }
    if code {
        out.push_str("</code>");
    }
    out
}

pub fn render(report: &Report, blocks: &[Block], lang: Lang) -> String {
    let mut o = String::new();
    let title = blocks
        .iter()
        .find_map(|b| if let Block::Title(t) = b { Some(t.clone()) } else { None })
        .unwrap_or_default();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n",
        lang.pick("en", "tr"),
        esc(&title),
        CSS
    );
    for b in blocks {
        match b {
            Block::Title(t) => {
                let _ = writeln!(o, "<h1>{}</h1>", inline(t));
            }
            Block::H2(t) => {
                let _ = writeln!(o, "<h2>{}</h2>", inline(t));
            }
            Block::H3(t) => {
                let class = ["critical", "warning", "info"]
                    .iter()
                    .zip(
                        ["[critical]", "[warning]", "[info]"]
                            .iter()
                            .zip(["[kritik]", "[uyarı]", "[bilgi]"]),
                    )
                    .find(|(_, (en, tr))| t.starts_with(**en) || t.starts_with(*tr))
                    .map(|(c, _)| format!(" class=\"sev-{c}\""))
                    .unwrap_or_default();
                let _ = writeln!(o, "<h3{class}>{}</h3>", inline(t));
            }
            Block::P(t) => {
                let _ = writeln!(o, "<p>{}</p>", inline(t));
            }
            Block::Bullets(items) => {
                o.push_str("<ul>\n");
                for i in items {
                    let _ = writeln!(o, "<li>{}</li>", inline(i));
                }
                o.push_str("</ul>\n");
            }
            Block::Table { head, rows, numeric } => {
                if rows.is_empty() {
                    continue;
                }
                o.push_str("<table>\n<thead><tr>");
                for h in head {
                    let _ = write!(o, "<th>{}</th>", inline(h));
                }
                o.push_str("</tr></thead>\n<tbody>\n");
                for r in rows {
                    o.push_str("<tr>");
                    for (i, c) in r.iter().enumerate() {
                        let class = if numeric.get(i) == Some(&true) {
                            " class=\"n\""
                        } else {
                            ""
                        };
                        let _ = write!(o, "<td{class}>{}</td>", inline(c));
                    }
                    o.push_str("</tr>\n");
                }
                o.push_str("</tbody>\n</table>\n");
            }
            Block::Code(c) => {
                let _ = writeln!(o, "<pre><code>{}</code></pre>", esc(c));
            }
            Block::Chart(c) => o.push_str(&chart(report, c, lang)),
        }
    }
    o.push_str("</main>\n</body>\n</html>\n");
    o
}

const W: f64 = 720.0;
const LABEL_W: f64 = 170.0;
const COLORS: [&str; 6] = ["#3b6fd8", "#e07b39", "#2e9e6a", "#b04fc0", "#c9a227", "#d64550"];

fn figure(svg: String, caption: &str) -> String {
    format!(
        "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
        esc(caption)
    )
}

fn chart(r: &Report, c: &Chart, lang: Lang) -> String {
    match c {
        Chart::CostPerModel => cost_chart(r, lang),
        Chart::LatencyPerModel => latency_chart(r, lang),
        Chart::TokensOverTime => tokens_chart(r, lang),
        Chart::OverTime => over_time_charts(r, lang),
    }
}

fn cost_chart(r: &Report, lang: Lang) -> String {
    let models: Vec<_> = r.models.iter().filter(|m| m.cost_usd > 0.0).collect();
    if models.is_empty() {
        return String::new();
    }
    let max = models.iter().map(|m| m.cost_usd).fold(0.0, f64::max);
    let row = 26.0;
    let h = row * models.len() as f64 + 10.0;
    let bar_w = W - LABEL_W - 110.0;
    let mut s = format!("<svg role=\"img\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\">");
    for (i, m) in models.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let w = (m.cost_usd / max * bar_w).max(1.0);
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{LABEL_W}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"18\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LABEL_W - 8.0,
            y + 13.0,
            esc(&m.model),
            y,
            COLORS[i % COLORS.len()],
            LABEL_W + w + 6.0,
            y + 13.0,
            esc(&lang.usd(m.cost_usd))
        );
    }
    s.push_str("</svg>");
    figure(s, lang.pick("Cost per model", "Model başına maliyet"))
}

fn latency_chart(r: &Report, lang: Lang) -> String {
    let models: Vec<_> = r.models.iter().filter_map(|m| m.latency_ms.map(|l| (m, l))).collect();
    if models.is_empty() {
        return String::new();
    }
    // Log scale: gateway latencies span milliseconds (cache, mocks) to minutes (reasoning).
    let lo = models.iter().map(|(_, l)| l.min).fold(f64::INFINITY, f64::min).max(0.1);
    let hi = models.iter().map(|(_, l)| l.max).fold(0.0, f64::max).max(lo * 10.0);
    let (llo, lhi) = (lo.log10().floor(), hi.log10().ceil());
    let plot_w = W - LABEL_W - 20.0;
    let x = |v: f64| LABEL_W + (v.max(0.1).log10() - llo) / (lhi - llo) * plot_w;
    let row = 30.0;
    let h = row * models.len() as f64 + 40.0;
    let mut s = format!("<svg role=\"img\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\">");
    let mut e = llo as i32;
    while e as f64 <= lhi {
        let v = 10f64.powi(e);
        let xv = x(v);
        let _ = write!(
            s,
            "<line x1=\"{xv:.1}\" y1=\"0\" x2=\"{xv:.1}\" y2=\"{:.1}\" stroke=\"#e3e6eb\"/><text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            h - 25.0,
            h - 10.0,
            esc(&lang.ms(v))
        );
        e += 1;
    }
    for (i, (m, l)) in models.iter().enumerate() {
        let y = 8.0 + i as f64 * row;
        let c = COLORS[i % COLORS.len()];
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{c}\" stroke-width=\"2\"/><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{c}\" fill-opacity=\"0.45\" stroke=\"{c}\"/><line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1d2330\" stroke-width=\"2\"/>",
            LABEL_W - 8.0,
            y + 12.0,
            esc(&m.model),
            x(l.min),
            y + 8.0,
            x(l.max),
            y + 8.0,
            x(l.p50),
            (x(l.p95) - x(l.p50)).max(2.0),
            x(l.p50),
            x(l.p50),
            y + 16.0
        );
    }
    s.push_str("</svg>");
    figure(
        s,
        lang.pick(
            "Latency per model (log scale): line min–max, box p50–p95, mark p50",
            "Model başına gecikme (log ölçek): çizgi min–max, kutu p50–p95, işaret p50",
        ),
    )
}

fn tokens_chart(r: &Report, lang: Lang) -> String {
    let pts = &r.timeline.points;
    if pts.is_empty() {
        return String::new();
    }
    let max = pts
        .iter()
        .map(|p| p.prompt_tokens + p.completion_tokens)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let h = 200.0;
    let plot_h = 150.0;
    let left = 70.0;
    let plot_w = W - left - 10.0;
    let bw = plot_w / pts.len() as f64;
    let mut s = format!("<svg role=\"img\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\">");
    let _ = write!(
        s,
        "<text x=\"{:.0}\" y=\"12\" text-anchor=\"end\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">0</text>",
        left - 6.0,
        esc(&lang.int(max as u64)),
        left - 6.0,
        plot_h + 10.0
    );
    for (i, p) in pts.iter().enumerate() {
        let x = left + i as f64 * bw;
        let hp = p.prompt_tokens as f64 / max * plot_h;
        let hc = p.completion_tokens as f64 / max * plot_h;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hp:.1}\" fill=\"{}\"/><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hc:.1}\" fill=\"{}\"/>",
            10.0 + plot_h - hp,
            (bw - 1.0).max(1.0),
            COLORS[0],
            10.0 + plot_h - hp - hc,
            (bw - 1.0).max(1.0),
            COLORS[1]
        );
    }
    let fmt = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let last = &pts[pts.len() - 1];
    let _ = write!(
        s,
        "<text x=\"{left:.0}\" y=\"{:.0}\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>",
        plot_h + 30.0,
        esc(&fmt(&pts[0].start)),
        W - 10.0,
        plot_h + 30.0,
        esc(&fmt(&last.start))
    );
    let _ = write!(
        s,
        "<rect x=\"{left:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">prompt</text><rect x=\"{:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">completion</text>",
        plot_h + 38.0,
        COLORS[0],
        left + 14.0,
        plot_h + 47.0,
        left + 80.0,
        plot_h + 38.0,
        COLORS[1],
        left + 94.0,
        plot_h + 47.0
    );
    s.push_str("</svg>");
    figure(
        s,
        &format!(
            "{} ({} {})",
            lang.pick("Tokens over time", "Zamana göre token"),
            lang.pick("bucket", "aralık"),
            lang.ms(r.timeline.bucket_ms as f64)
        ),
    )
}

/// One series of an over-time chart: its name, colour and value per bucket (`None`: no data).
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<Option<f64>>,
}

/// A chart over the timeline's buckets: `series` drawn as stacked bars, or as lines with
/// points when `lines` is set; x labels are the first and last bucket.
fn time_chart(r: &Report, series: &[Series], lines: bool, fmt: &dyn Fn(f64) -> String, caption: &str) -> String {
    let pts = &r.timeline.points;
    let n = pts.len();
    let max = (0..n)
        .map(|i| {
            let vals = series.iter().filter_map(|s| s.values[i]);
            if lines { vals.fold(0.0, f64::max) } else { vals.sum() }
        })
        .fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let (h, plot_h, left) = (190.0, 140.0, 80.0);
    let plot_w = W - left - 10.0;
    let bw = plot_w / n as f64;
    let y = |v: f64| 10.0 + plot_h - v / max * plot_h;
    let mut s = format!("<svg role=\"img\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\">");
    let _ = write!(
        s,
        "<text x=\"{:.0}\" y=\"14\" text-anchor=\"end\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">0</text><line x1=\"{left:.0}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#c7ccd4\"/>",
        left - 6.0,
        esc(&fmt(max)),
        left - 6.0,
        plot_h + 10.0,
        plot_h + 10.0,
        W - 10.0,
        plot_h + 10.0
    );
    if lines {
        for se in series {
            let mut path = String::new();
            for (i, v) in se.values.iter().enumerate() {
                let Some(v) = v else { continue };
                let x = left + (i as f64 + 0.5) * bw;
                let _ = write!(path, "{}{x:.1},{:.1} ", if path.is_empty() { "M" } else { "L" }, y(*v));
                let _ = write!(
                    s,
                    "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"><title>{}: {}</title></circle>",
                    y(*v),
                    se.color,
                    esc(se.name),
                    esc(&fmt(*v))
                );
            }
            let _ = write!(
                s,
                "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>",
                path.trim_end(),
                se.color
            );
        }
    } else {
        for i in 0..n {
            let x = left + i as f64 * bw;
            let mut base = 0.0;
            for se in series {
                let v = se.values[i].unwrap_or(0.0);
                if v <= 0.0 {
                    continue;
                }
                let _ = write!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect>",
                    y(base + v),
                    (bw - 1.0).max(1.0),
                    v / max * plot_h,
                    se.color,
                    esc(se.name),
                    esc(&fmt(v))
                );
                base += v;
            }
        }
    }
    let width = r.timeline.bucket_ms;
    let _ = write!(
        s,
        "<text x=\"{left:.0}\" y=\"{:.0}\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>",
        plot_h + 28.0,
        esc(&bucket_start(&pts[0].start, width)),
        W - 10.0,
        plot_h + 28.0,
        esc(&bucket_start(&pts[n - 1].start, width))
    );
    let mut lx = left;
    for se in series {
        let _ = write!(
            s,
            "<rect x=\"{lx:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">{}</text>",
            plot_h + 36.0,
            se.color,
            lx + 14.0,
            plot_h + 45.0,
            esc(se.name)
        );
        lx += 24.0 + 7.5 * se.name.chars().count() as f64;
    }
    s.push_str("</svg>");
    figure(s, caption)
}

/// Requests and errors, cost, and latency per bucket.
fn over_time_charts(r: &Report, lang: Lang) -> String {
    let pts = &r.timeline.points;
    // One bucket is one bar: the table above says it all.
    if pts.len() < 2 {
        return String::new();
    }
    let per = format!(
        "{} {}",
        lang.pick("per", "her"),
        bucket_name(r.timeline.bucket_ms, lang)
    );
    let int = |v: f64| lang.int(v.round() as u64);
    let usd = |v: f64| lang.usd(v);
    let ms = |v: f64| lang.ms(v);
    let mut out = time_chart(
        r,
        &[
            Series {
                name: lang.pick("succeeded", "başarılı"),
                color: COLORS[0],
                values: pts.iter().map(|p| Some((p.requests - p.failed) as f64)).collect(),
            },
            Series {
                name: lang.pick("failed", "başarısız"),
                color: COLORS[5],
                values: pts.iter().map(|p| Some(p.failed as f64)).collect(),
            },
        ],
        false,
        &int,
        &format!(
            "{} ({per})",
            lang.pick("Requests and errors over time", "Zamana göre istekler ve hatalar")
        ),
    );
    out.push_str(&time_chart(
        r,
        &[Series {
            name: lang.pick("cost", "maliyet"),
            color: COLORS[2],
            values: pts.iter().map(|p| Some(p.cost_usd)).collect(),
        }],
        false,
        &usd,
        &format!("{} ({per})", lang.pick("Cost over time", "Zamana göre maliyet")),
    ));
    out.push_str(&time_chart(
        r,
        &[
            Series {
                name: "p50",
                color: COLORS[0],
                values: pts.iter().map(|p| p.latency_p50_ms).collect(),
            },
            Series {
                name: "p95",
                color: COLORS[1],
                values: pts.iter().map(|p| p.latency_p95_ms).collect(),
            },
        ],
        true,
        &ms,
        &format!("{} ({per})", lang.pick("Latency over time", "Zamana göre gecikme")),
    ));
    out
}
