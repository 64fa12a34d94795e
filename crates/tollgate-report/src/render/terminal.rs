//! Terminal tables (comfy-table). Adapts to the terminal's width; colour only on a terminal and
//! never when `NO_COLOR` is set.

use std::io::IsTerminal;

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};

use super::doc::Block;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub width: u16,
    pub color: bool,
}

impl Style {
    /// Plain and 100 columns wide unless stdout is a terminal.
    pub fn detect() -> Style {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let width = if tty {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse().ok())
                .or_else(crossterm_width)
                .unwrap_or(100)
        } else {
            100
        };
        Style {
            width: width.clamp(40, 200),
            color: tty && !no_color,
        }
    }
}

fn crossterm_width() -> Option<u16> {
    // comfy-table asks the terminal when no width is set.
    Table::new().width()
}

fn wrap(text: &str, width: usize, indent: &str, first: &str) -> String {
    let mut out = String::new();
    let mut line = String::from(first);
    let mut line_len = first.chars().count();
    for word in text.split_whitespace() {
        let wl = word.chars().count();
        if line_len + wl + 1 > width && line_len > indent.chars().count() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.to_string();
            line_len = indent.chars().count();
        }
        line.push_str(word);
        line.push(' ');
        line_len += wl + 1;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

fn plain(s: &str) -> String {
    s.replace("**", "")
}

/// Table cells drop the code markers too: the column already sets the value apart.
fn cell(s: &str) -> String {
    plain(s).replace('`', "")
}

pub fn render(blocks: &[Block], style: Style) -> String {
    let width = style.width as usize;
    let bold = |s: &str| {
        if style.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Title(t) => {
                out.push_str(&bold(&t.to_uppercase()));
                out.push_str("\n\n");
            }
            Block::H2(t) => {
                out.push_str(&bold(t));
                out.push('\n');
                out.push_str(&"═".repeat(t.chars().count().min(width)));
                out.push_str("\n\n");
            }
            Block::H3(t) => {
                let text = wrap(&plain(t), width, "", "");
                let longest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
                out.push_str(&bold(text.trim_end()));
                out.push('\n');
                out.push_str(&"─".repeat(longest.min(width)));
                out.push('\n');
            }
            Block::P(t) => {
                out.push_str(&wrap(&plain(t), width, "", ""));
                out.push('\n');
            }
            Block::Bullets(items) => {
                for i in items {
                    out.push_str(&wrap(&plain(i), width, "  ", "• "));
                }
                out.push('\n');
            }
            Block::Table { head, rows, numeric } => {
                if rows.is_empty() {
                    continue;
                }
                let mut t = Table::new();
                t.force_no_tty()
                    .load_style(presets::UTF8_FULL_CONDENSED)
                    .set_content_arrangement(ContentArrangement::Dynamic)
                    .set_width(style.width)
                    .set_header(head.iter().map(|h| cell(h)));
                for r in rows {
                    t.add_row(r.iter().map(|c| cell(c)));
                }
                for (i, n) in numeric.iter().enumerate() {
                    if *n && let Some(col) = t.column_mut(i) {
                        col.set_cell_alignment(CellAlignment::Right);
                    }
                }
                out.push_str(&t.to_string());
                out.push_str("\n\n");
            }
            Block::Code(c) => {
                for line in c.lines() {
                    out.push_str("    ");
                    out.push_str(line);
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Chart(_) => {}
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}
