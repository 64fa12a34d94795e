//! Markdown: GitHub-flavoured tables, one document.

use std::fmt::Write;

use super::doc::Block;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Title(t) => {
                let _ = writeln!(out, "# {t}\n");
            }
            Block::H2(t) => {
                let _ = writeln!(out, "## {t}\n");
            }
            Block::H3(t) => {
                let _ = writeln!(out, "### {t}\n");
            }
            Block::P(t) => {
                let _ = writeln!(out, "{t}\n");
            }
            Block::Bullets(items) => {
                for i in items {
                    // Numbered items already carry their number.
                    let numbered = i.split_once(". ").is_some_and(|(n, _)| n.parse::<u32>().is_ok());
                    if numbered {
                        let _ = writeln!(out, "{i}");
                    } else {
                        let _ = writeln!(out, "- {i}");
                    }
                }
                out.push('\n');
            }
            Block::Table { head, rows, numeric } => {
                if rows.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "| {} |",
                    head.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | ")
                );
                let sep: Vec<&str> = (0..head.len())
                    .map(|i| if numeric.get(i) == Some(&true) { "---:" } else { "---" })
                    .collect();
                let _ = writeln!(out, "|{}|", sep.join("|"));
                for r in rows {
                    let _ = writeln!(out, "| {} |", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
                }
                out.push('\n');
            }
            Block::Code(c) => {
                let _ = writeln!(out, "```\n{c}\n```\n");
            }
            Block::Chart(_) => {}
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}
