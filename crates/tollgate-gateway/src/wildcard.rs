//! Wildcard model groups, with LiteLLM's semantics (its router's pattern matching):
//! `model_name: "*"`, `"anthropic/*"`, `"claude-*"` match the names clients ask for that no
//! group or workflow holds; the most specific pattern wins; a `*` in the entry's own
//! `litellm_params.model` is replaced by what the requested name's `*` matched, so
//! `{model_name: "anthropic/*", model: "anthropic/*"}` forwards `anthropic/claude-x` as asked,
//! and the price is looked up by that forwarded name.
//!
//! A requested name is resolved once into a concrete group (its deployments built by the same
//! [`BuildContext::build`] as the config's), kept so its deployments' cooldowns and latencies
//! carry over between requests.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use regex::Regex;
use tollgate_core::config::DeploymentConfig;

use crate::deployment::{BuildContext, Built, ModelGroup};

/// The most concrete names kept; past it a name is resolved per request (still served, its
/// deployments' statistics not kept), so a client inventing names cannot grow memory.
const MAX_RESOLVED: usize = 4096;

/// One pattern and the entries that share it.
#[derive(Debug)]
struct Pattern {
    name: String,
    regex: Regex,
    specificity: (usize, usize),
    entries: Vec<DeploymentConfig>,
}

/// The config's wildcard entries, most specific first, and the names resolved so far.
#[derive(Debug)]
pub struct Wildcards {
    patterns: Vec<Pattern>,
    /// The patterns in config order, for listings.
    listed: Vec<String>,
    ctx: BuildContext,
    resolved: RwLock<HashMap<String, Arc<ModelGroup>>>,
}

impl Wildcards {
    pub fn new(entries: Vec<DeploymentConfig>, ctx: BuildContext) -> Wildcards {
        let mut patterns: Vec<Pattern> = Vec::new();
        for e in entries {
            match patterns.iter_mut().find(|p| p.name == e.model_name) {
                Some(p) => p.entries.push(e),
                None => patterns.push(Pattern {
                    name: e.model_name.clone(),
                    regex: to_regex(&e.model_name),
                    specificity: specificity(&e.model_name),
                    entries: vec![e],
                }),
            }
        }
        let listed = patterns.iter().map(|p| p.name.clone()).collect();
        // Stable: equally specific patterns keep config order, as LiteLLM's sort does.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.specificity));
        Wildcards {
            patterns,
            listed,
            ctx,
            resolved: RwLock::new(HashMap::new()),
        }
    }

    /// The patterns as the config writes them, in its order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.listed.iter().map(String::as_str)
    }

    /// The concrete group serving `name`, built on first use; `None` when no pattern matches it
    /// or none of the matching pattern's entries can serve it.
    pub fn resolve(&self, name: &str) -> Option<Arc<ModelGroup>> {
        if self.patterns.is_empty() {
            return None;
        }
        if let Some(g) = self.resolved.read().ok().and_then(|m| m.get(name).cloned()) {
            return Some(g);
        }
        let pattern = self.patterns.iter().find(|p| p.regex.is_match(name))?;
        let caps = pattern.regex.captures(name)?;
        let segments: Vec<&str> = caps.iter().skip(1).map(|c| c.map_or("", |m| m.as_str())).collect();
        let mut deployments = Vec::new();
        for e in &pattern.entries {
            let model = substitute(&e.model, &segments, name);
            match self.ctx.build(e, &model, name) {
                Ok(Built::Served(d, _)) => deployments.push(Arc::from(d)),
                Ok(Built::Skipped(u, _)) => tracing::debug!("{name}: {} skipped: {}", u.model, u.reason),
                Err(e) => tracing::debug!("{name}: {}: {}", e.path, e.message),
            }
        }
        if deployments.is_empty() {
            return None;
        }
        let group = Arc::new(ModelGroup {
            name: name.to_string(),
            deployments,
        });
        if let Ok(mut m) = self.resolved.write()
            && m.len() < MAX_RESOLVED
        {
            // Two requests racing on a new name: the first one kept wins, so both share it.
            return Some(Arc::clone(m.entry(name.to_string()).or_insert(group)));
        }
        Some(group)
    }
}

/// LiteLLM's regex for a pattern: the name escaped, each `*` a capturing `(.*)`, matched from the
/// start of the requested name (Python's `re.match`: anchored at the start only).
fn to_regex(pattern: &str) -> Regex {
    let body: Vec<String> = pattern.split('*').map(regex::escape).collect();
    // Escaped literals and `(.*)` always form a valid regex.
    Regex::new(&format!("^{}", body.join("(.*)"))).unwrap_or_else(|_| Regex::new("^$").expect("valid regex"))
}

/// LiteLLM's ordering key: the length of the pattern's regex (as Python escapes it), then how
/// many regex metacharacters it holds; larger is more specific.
fn specificity(pattern: &str) -> (usize, usize) {
    // Python's `re.escape` escapes these; `*` is then replaced by `(.*)`.
    const ESCAPED: &str = "()[]{}?+-|^$\\.&~# \t\n\r\x0b\x0c";
    let mut regex = String::new();
    for c in pattern.chars() {
        match c {
            '*' => regex.push_str("(.*)"),
            c if ESCAPED.contains(c) => {
                regex.push('\\');
                regex.push(c);
            }
            c => regex.push(c),
        }
    }
    let complexity = regex
        .chars()
        .filter(|c| matches!(c, '*' | '+' | '?' | '\\' | '^' | '$' | '|' | '(' | ')'))
        .count();
    (regex.chars().count(), complexity)
}

/// The entry's model with its `*`s replaced, in order, by what the requested name's matched;
/// a model without `*` is used as written; more matched segments than `*`s give the requested
/// name itself (LiteLLM's rules).
fn substitute(model: &str, segments: &[&str], requested: &str) -> String {
    let stars = model.matches('*').count();
    if stars == 0 {
        return model.to_string();
    }
    if segments.len() > stars {
        return requested.to_string();
    }
    let mut out = model.to_string();
    for s in segments {
        out = out.replacen('*', s, 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_pattern_wins_and_ties_keep_config_order() {
        let mut pats = vec!["*", "anthropic/*", "anthropic/claude-*", "groq/*"];
        pats.sort_by_key(|p| std::cmp::Reverse(specificity(p)));
        assert_eq!(pats, ["anthropic/claude-*", "anthropic/*", "groq/*", "*"]);
        // `-` is escaped by Python, so it counts toward both length and complexity.
        assert_eq!(specificity("claude-*"), (12, 4));
        assert_eq!(specificity("*"), (4, 3));
    }

    #[test]
    fn matching_is_anchored_at_the_start_only() {
        let r = to_regex("anthropic/*");
        assert!(r.is_match("anthropic/claude-sonnet-4-5"));
        assert!(!r.is_match("x-anthropic/claude"));
        // Python's re.match: a pattern without a trailing `*` still matches a longer name.
        let r = to_regex("gpt-*-mini");
        let caps = r.captures("gpt-4o-mini-2024").unwrap();
        assert_eq!(&caps[1], "4o");
        // Regex metacharacters in a name are literal.
        assert!(!to_regex("a.b/*").is_match("axb/c"));
    }

    #[test]
    fn the_requested_name_fills_the_entrys_stars() {
        assert_eq!(
            substitute("anthropic/*", &["claude-x"], "anthropic/claude-x"),
            "anthropic/claude-x"
        );
        assert_eq!(substitute("openai/*", &["gpt-4o"], "gpt-4o"), "openai/gpt-4o");
        assert_eq!(
            substitute("deepseek/deepseek-chat", &["x"], "x"),
            "deepseek/deepseek-chat"
        );
        assert_eq!(
            substitute("openai/fo::*::static::*", &["a", "b"], "r"),
            "openai/fo::a::static::b"
        );
        assert_eq!(substitute("openai/*", &["a", "b"], "llm/a/b"), "llm/a/b");
    }
}
