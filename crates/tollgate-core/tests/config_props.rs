//! Property tests for the config loader: arbitrary YAML-ish text and arbitrary edits of a valid
//! config never panic; they load, or fail with an error that says where; and what loads keeps
//! the bounds the gateway builds durations from. Case counts are bounded, seeds deterministic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use tollgate_core::config::{ConfigError, GatewayConfig, parse};
use tollgate_core::source_map::SourceMap;

const VALID: &str = r#"model_list:
  - model_name: deepseek-v3.2
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: http://127.0.0.1:9/v1
      api_key: sk-ds
      timeout: 600
      stream_timeout: 60
      rpm: 60
      input_cost_per_token: 0.0000002
      extra_headers: {X-Team: a}
    model_info:
      id: ds-1
      max_input_tokens: 163840
  - model_name: grok
    litellm_params: {model: xai/grok-4-1-fast-reasoning, weight: 2}
litellm_settings:
  num_retries: 2
  cache: true
  cache_params: {type: local, ttl: 60}
router_settings:
  routing_strategy: least-busy
  cooldown_time: 5
  allowed_fails: 2
  fallbacks: [{deepseek-v3.2: [grok]}]
  model_group_alias: {fast: grok}
workflows:
  w:
    steps:
      - {role: planner, model: deepseek-v3.2, timeout: 30}
      - {role: coder, model: fast}
general_settings:
  master_key: sk-0123456789abcdef0123
tollgate_settings:
  store_prompts: false
"#;

/// Values that have broken loaders: huge, infinite, negative, empty, wrong kind, odd YAML.
const NASTY: &[&str] = &[
    "1e308",
    "-1e308",
    ".inf",
    "-.inf",
    ".nan",
    "-1",
    "0",
    "''",
    "~",
    "[]",
    "{}",
    "[[[]]]",
    "'ht!tp://bad url'",
    "ftp://x",
    "http://",
    "18446744073709551616",
    "0x10",
    "!!binary aGk=",
    "&a x",
    "*a",
    "'os.environ/NOPE'",
    "\"\\u0000\"",
    "|\n  block",
    "? complex",
    "true",
    "yes",
];

fn config_path() -> PathBuf {
    // In an empty temp dir, so an `include:` produced by a mutation reads nothing real.
    std::env::temp_dir().join("tollgate-config-props").join("config.yaml")
}

/// Loads, or fails saying where. Syntax errors always have a line; semantic errors have one
/// whenever their path is written in the file (a key that is missing altogether is located at
/// its enclosing mapping, which is).
fn check(text: &str) -> Result<(), TestCaseError> {
    let env: BTreeMap<String, String> = BTreeMap::new();
    match parse(text, &config_path(), &env) {
        Ok(c) => bounds_hold(&c),
        Err(ConfigError::Syntax { line, message, .. }) => {
            prop_assert!(line >= 1, "syntax error without a line: {}", message);
            Ok(())
        }
        Err(ConfigError::Invalid {
            line, path, message, ..
        }) => {
            let top = path.split(['.', '[']).next().unwrap_or_default();
            // Positions come from a second, stricter YAML reader; text only the first reader
            // accepts (odd flow indentation) loads without them.
            let mapped = SourceMap::build(text).is_ok_and(|m| !m.is_empty());
            let locatable = mapped && !top.is_empty() && !top.starts_with('(') && text.contains(top);
            prop_assert!(
                line.is_some() || !locatable,
                "`{}: {}` has no line for a path written in:\n{}",
                path,
                message,
                text
            );
            Ok(())
        }
        Err(ConfigError::Io { .. }) => Ok(()),
    }
}

/// What the gateway turns into durations and counters must be finite and within bounds.
fn bounds_hold(c: &GatewayConfig) -> Result<(), TestCaseError> {
    let secs = |s: f64| s.is_finite() && s > 0.0 && s <= 86_400.0;
    for d in &c.deployments {
        prop_assert!(d.timeout.is_none_or(secs), "{:?}", d.timeout);
        prop_assert!(d.stream_timeout.is_none_or(secs), "{:?}", d.stream_timeout);
        prop_assert!(d.weight.is_none_or(|w| w.is_finite() && w >= 0.0));
    }
    prop_assert!(c.request_timeout.is_none_or(secs));
    let r = &c.router;
    prop_assert!(r.cooldown_time.is_finite() && (0.0..=86_400.0).contains(&r.cooldown_time));
    prop_assert!(r.retry_after.is_finite() && (0.0..=3_600.0).contains(&r.retry_after));
    prop_assert!(r.num_retries <= 100);
    for w in &c.workflows {
        for s in &w.steps {
            prop_assert!(s.timeout.is_none_or(secs));
        }
    }
    if let Some(cache) = &c.cache {
        prop_assert!(cache.ttl.is_finite() && cache.ttl > 0.0);
    }
    prop_assert!(c.max_request_size_mb.is_finite() && c.max_request_size_mb > 0.0);
    Ok(())
}

#[derive(Debug, Clone)]
enum Edit {
    /// Replace the value after the n-th `: ` with a nasty one.
    Value(usize, &'static str),
    /// Delete a byte range (by fractions of the length, snapped to characters).
    Delete(f64, f64),
    /// Insert text at a fraction of the length.
    Insert(f64, String),
    /// Duplicate the n-th line.
    DuplicateLine(usize),
    /// Swap two lines.
    Swap(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0usize..60, prop::sample::select(NASTY)).prop_map(|(n, v)| Edit::Value(n, v)),
        (0.0f64..1.0, 0.0f64..0.2).prop_map(|(a, l)| Edit::Delete(a, l)),
        (
            0.0f64..1.0,
            prop_oneof![
                prop::sample::select(vec![
                    "\n",
                    "  ",
                    "- ",
                    ": ",
                    "{",
                    "}",
                    "[",
                    "]",
                    "#",
                    "'",
                    "\"",
                    "\t",
                    "model_list: []\n",
                    "router_settings:\n  cooldown_time: 1e308\n",
                    "include: [missing.yaml]\n",
                    "&x ",
                    "*x",
                    "<<: *x\n",
                ])
                .prop_map(str::to_string),
                "\\PC{0,12}",
            ]
        )
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        (0usize..60).prop_map(Edit::DuplicateLine),
        (0usize..60, 0usize..60).prop_map(|(a, b)| Edit::Swap(a, b)),
    ]
}

fn at_char(text: &str, frac: f64) -> usize {
    let mut i = ((text.len() as f64) * frac) as usize;
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i.min(text.len())
}

fn apply(text: &str, e: &Edit) -> String {
    match e {
        Edit::Value(n, v) => {
            let hits: Vec<usize> = text.match_indices(": ").map(|(i, _)| i).collect();
            let Some(&at) = hits.get(n % hits.len().max(1)) else {
                return text.to_string();
            };
            let start = at + 2;
            let end = text[start..]
                .find(['\n', ',', '}', ']'])
                .map_or(text.len(), |j| start + j);
            format!("{}{v}{}", &text[..start], &text[end..])
        }
        Edit::Delete(a, l) => {
            let s = at_char(text, *a);
            let e = at_char(text, (a + l).min(1.0));
            format!("{}{}", &text[..s], &text[e.max(s)..])
        }
        Edit::Insert(a, s) => {
            let i = at_char(text, *a);
            format!("{}{s}{}", &text[..i], &text[i..])
        }
        Edit::DuplicateLine(n) => {
            let mut lines: Vec<&str> = text.lines().collect();
            let i = n % lines.len().max(1);
            if let Some(l) = lines.get(i).copied() {
                lines.insert(i, l);
            }
            lines.join("\n") + "\n"
        }
        Edit::Swap(a, b) => {
            let mut lines: Vec<&str> = text.lines().collect();
            let n = lines.len().max(1);
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
            lines.join("\n") + "\n"
        }
    }
}

#[test]
fn the_valid_config_loads() {
    let env: BTreeMap<String, String> = BTreeMap::new();
    let c = parse(VALID, &config_path(), &env).unwrap();
    assert_eq!(c.deployments.len(), 2);
}

/// A fixed seed and no regression files: every run tries the same cases, so a failure is
/// reproducible and a pass means the same thing each time.
fn stable(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const SEED: u64 = 0x7011_6a7e;

proptest! {
    #![proptest_config(stable(512))]

    #[test]
    fn edits_of_a_valid_config_load_or_say_where(edits in prop::collection::vec(edit(), 1..5)) {
        let text = edits.iter().fold(VALID.to_string(), |t, e| apply(&t, e));
        check(&text)?;
    }

    #[test]
    fn yaml_ish_text_never_panics(
        text in prop_oneof![
            "\\PC{0,200}",
            prop::collection::vec(
                prop::sample::select(vec![
                    "model_list", "litellm_params", "model", "router_settings", "cooldown_time", "general_settings",
                    "litellm_settings", "cache", "cache_params", "workflows", "steps", "include", "api_base",
                    "timeout", "1e308", "-1", ".inf", "x", ":", ": ", "- ", "\n", "\n  ", "\n    ", "{", "}", "[", "]",
                    ",", "'", "\"", "&a", "*a", "<<", "? ", "|", ">", "#", "---", "...", "!!str", "~", "true",
                ]),
                0..80,
            )
            .prop_map(|parts| parts.concat()),
        ],
    ) {
        check(&text)?;
    }
}

/// Found by the edits above: a second document, which the YAML reader refuses without a
/// position, still gets a line.
#[test]
fn a_config_cut_into_two_documents_names_a_line() {
    check("model_list\n:").unwrap();
    check("a: 1\n---\nb: 2\n").unwrap();
}
