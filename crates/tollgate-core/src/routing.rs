//! `router_settings` (and the routing keys LiteLLM also accepts under `litellm_settings`) and the
//! `workflows:` section, read into typed settings. Validation that needs the model list happens
//! here too, so `check`, startup and reload reject the same mistakes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config_error::{ConfigError, ConfigWarning, invalid, warn};
use crate::config_seconds::{MAX_SECONDS, seconds_up_to};

/// How a deployment is chosen within a model group (LiteLLM's `routing_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Random, weighted by `weight`, else `rpm`, else `tpm` (LiteLLM's default).
    SimpleShuffle,
    /// Fewest requests in flight.
    LeastBusy,
    /// Lowest recent latency (moving average).
    LatencyBasedRouting,
    /// Fewest tokens used this minute.
    UsageBasedRouting,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouterSettings {
    pub strategy: Strategy,
    /// Retries of the same model group after a retryable failure (429, 5xx, timeout, connection).
    pub num_retries: u32,
    /// Floor for the backoff between retries, seconds (LiteLLM's `retry_after`).
    pub retry_after: f64,
    /// Failures of one deployment within a minute before it cools down.
    pub allowed_fails: u32,
    /// Seconds a deployment is skipped after too many failures.
    pub cooldown_time: f64,
    pub fallbacks: BTreeMap<String, Vec<String>>,
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    /// Fallbacks for every group without its own.
    pub default_fallbacks: Vec<String>,
    pub max_fallbacks: usize,
    /// `alias → group`: clients may name a group by another name.
    pub model_group_alias: BTreeMap<String, String>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            strategy: Strategy::SimpleShuffle,
            num_retries: 0,
            retry_after: 0.0,
            allowed_fails: 3,
            cooldown_time: 5.0,
            fallbacks: BTreeMap::new(),
            context_window_fallbacks: BTreeMap::new(),
            default_fallbacks: Vec::new(),
            max_fallbacks: 5,
            model_group_alias: BTreeMap::new(),
        }
    }
}

impl RouterSettings {
    /// Resolves an alias to its group (a group name resolves to itself).
    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.model_group_alias.get(name).map(String::as_str).unwrap_or(name)
    }
}

/// LiteLLM's fallback lists: `[{"gpt-4": ["gpt-4o", "claude"]}]`, or a mapping.
fn fallback_map(v: &Value, path: &str, file: &str) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut take = |m: &Map<String, Value>| -> Result<(), ConfigError> {
        for (k, list) in m {
            let names = match list {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
                _ => {
                    return Err(invalid(
                        file,
                        &format!("{path}.{k}"),
                        "expected a list of model names".into(),
                    ));
                }
            };
            out.insert(k.clone(), names);
        }
        Ok(())
    };
    match v {
        Value::Null => {}
        Value::Object(m) => take(m)?,
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Object(m) => take(m)?,
                    _ => {
                        return Err(invalid(
                            file,
                            &format!("{path}[{i}]"),
                            "expected `{model: [fallback, ...]}`".into(),
                        ));
                    }
                }
            }
        }
        _ => return Err(invalid(file, path, "expected a list like [{model: [fallback]}]".into())),
    }
    Ok(out)
}

fn names(v: &Value, path: &str, file: &str) -> Result<Vec<String>, ConfigError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => Ok(items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect()),
        _ => Err(invalid(file, path, "expected a list of model names".into())),
    }
}

/// A finite number from 0 to `max`. Each routing number has a ceiling: `cooldown_time: 1e308`
/// overflowed the cooldown clock (so the cooldown never applied), `retry_after: 1e308` panicked
/// when turned into a duration, and `num_retries: 1e9` would retry for ever.
fn number(v: &Value, path: &str, file: &str, max: f64) -> Result<f64, ConfigError> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n| n.is_finite() && (0.0..=max).contains(n))
        .ok_or_else(|| invalid(file, path, format!("expected a number from 0 to {max}, found {v}")))
}

/// Ceilings of the routing numbers (see [`number`]).
const MAX_RETRIES: f64 = 100.0;
const MAX_ALLOWED_FAILS: f64 = 1_000_000.0;
const MAX_FALLBACKS: f64 = 100.0;
/// Backoff between retries is capped at 10 s by the router anyway; an hour is plainly a typo.
const MAX_RETRY_AFTER_S: f64 = 3_600.0;

/// Reads one routing key; `false` when the key is not a routing key.
fn read_key(s: &mut RouterSettings, k: &str, v: &Value, path: &str, file: &str) -> Result<bool, ConfigError> {
    match k {
        "routing_strategy" => {
            s.strategy = match v.as_str().unwrap_or_default() {
                "simple-shuffle" => Strategy::SimpleShuffle,
                "least-busy" => Strategy::LeastBusy,
                "latency-based-routing" => Strategy::LatencyBasedRouting,
                "usage-based-routing" | "usage-based-routing-v2" => Strategy::UsageBasedRouting,
                other => {
                    return Err(invalid(
                        file,
                        path,
                        format!(
                            "unknown routing_strategy `{other}`; use simple-shuffle, least-busy, latency-based-routing or usage-based-routing"
                        ),
                    ));
                }
            }
        }
        "num_retries" => s.num_retries = number(v, path, file, MAX_RETRIES)? as u32,
        "retry_after" => s.retry_after = number(v, path, file, MAX_RETRY_AFTER_S)?,
        "allowed_fails" => s.allowed_fails = number(v, path, file, MAX_ALLOWED_FAILS)? as u32,
        "cooldown_time" => s.cooldown_time = number(v, path, file, MAX_SECONDS)?,
        "fallbacks" => s.fallbacks = fallback_map(v, path, file)?,
        "context_window_fallbacks" => s.context_window_fallbacks = fallback_map(v, path, file)?,
        "default_fallbacks" => s.default_fallbacks = names(v, path, file)?,
        "max_fallbacks" => s.max_fallbacks = number(v, path, file, MAX_FALLBACKS)? as usize,
        "model_group_alias" => {
            let Value::Object(m) = v else {
                return Err(invalid(file, path, "expected a mapping of alias to model group".into()));
            };
            for (alias, target) in m {
                let group = match target {
                    Value::String(g) => g.clone(),
                    // LiteLLM also allows `{model: group, hidden: true}`.
                    Value::Object(o) => o.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
                    _ => String::new(),
                };
                if group.is_empty() {
                    return Err(invalid(
                        file,
                        &format!("{path}.{alias}"),
                        "expected a model group name".into(),
                    ));
                }
                s.model_group_alias.insert(alias.clone(), group);
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Builds router settings from `litellm_settings` (LiteLLM reads some routing keys there too)
/// and then `router_settings`, which wins. Returns the keys of `litellm_settings` it consumed.
pub fn read_router(
    litellm: &Map<String, Value>,
    router: &Map<String, Value>,
    groups: &[&str],
    file: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(RouterSettings, Vec<String>), ConfigError> {
    let mut s = RouterSettings::default();
    let mut consumed = Vec::new();
    for (k, v) in litellm {
        if matches!(
            k.as_str(),
            "num_retries" | "fallbacks" | "context_window_fallbacks" | "default_fallbacks"
        ) && read_key(&mut s, k, v, &format!("litellm_settings.{k}"), file)?
        {
            consumed.push(k.clone());
        }
    }
    for (k, v) in router {
        let p = format!("router_settings.{k}");
        if !read_key(&mut s, k, v, &p, file)? {
            match k.as_str() {
                // The Redis rate limits are counted in; `config` reads them.
                "redis_url" | "redis_host" | "redis_port" | "redis_password" => {}
                // Accepted for compatibility; tollgate's choice of deployment needs no setting.
                "enable_pre_call_checks" => warnings.push(warn(
                    &p,
                    "not acted on: tollgate keeps router state in the gateway process",
                )),
                _ => warnings.push(warn(&p, "not acted on by tollgate; the setting has no effect")),
            }
        }
    }
    // A name a wildcard entry (`anthropic/*`) matches is served too: LiteLLM's patterns match
    // from the start of the name, so the literal text before the first `*` must lead it.
    let by_pattern = |n: &str| {
        groups
            .iter()
            .filter_map(|g| g.split_once('*'))
            .any(|(lead, _)| n.starts_with(lead))
    };
    let known = |n: &str| groups.contains(&n) || s.model_group_alias.contains_key(n) || by_pattern(n);
    let mut check = |path: &str, n: &str| {
        if !known(n) {
            warnings.push(warn(
                path,
                &format!("names model `{n}`, which no model_list entry defines; the fallback could never be used"),
            ));
        }
    };
    for (g, list) in s.fallbacks.iter() {
        for n in std::iter::once(g).chain(list) {
            check("router_settings.fallbacks", n);
        }
    }
    for (g, list) in s.context_window_fallbacks.iter() {
        for n in std::iter::once(g).chain(list) {
            check("router_settings.context_window_fallbacks", n);
        }
    }
    for n in &s.default_fallbacks {
        check("router_settings.default_fallbacks", n);
    }
    for (alias, g) in &s.model_group_alias {
        if !groups.contains(&g.as_str()) && !by_pattern(g) {
            return Err(invalid(
                file,
                &format!("router_settings.model_group_alias.{alias}"),
                format!("points at `{g}`, which no model_list entry defines"),
            ));
        }
    }
    Ok((s, consumed))
}

/// What a workflow returns to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowOutput {
    /// Every step's answer as a marked section.
    Combined,
    /// The last step's answer only.
    Final,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepConfig {
    pub role: String,
    /// A model group or alias.
    pub model: String,
    pub system: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
    pub reasoning_effort: Option<String>,
    /// Tried in order after `model` (and its retries) fails, instead of the router's `fallbacks`
    /// for it; when empty, the router's apply.
    pub fallbacks: Vec<String>,
    pub timeout: Option<f64>,
}

/// A plan → code → review pipeline served as one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowConfig {
    pub name: String,
    pub description: Option<String>,
    pub aliases: Vec<String>,
    pub output: WorkflowOutput,
    pub steps: Vec<StepConfig>,
    /// The role whose step may answer with the client's tools (default `coder`, else the last step).
    pub tool_step: String,
}

/// Reads `workflows:`; every step must name a defined model or alias, so a typo fails at load
/// rather than on the first request.
pub fn read_workflows(
    v: Option<&Value>,
    groups: &[&str],
    router: &RouterSettings,
    file: &str,
) -> Result<Vec<WorkflowConfig>, ConfigError> {
    let m = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(invalid(
                file,
                "workflows",
                "expected a mapping of workflow name to its steps".into(),
            ));
        }
    };
    let known = |n: &str| groups.contains(&n) || router.model_group_alias.contains_key(n);
    let mut out = Vec::new();
    let mut taken: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    for (name, w) in m {
        let base = format!("workflows.{name}");
        let Value::Object(w) = w else {
            return Err(invalid(file, &base, "expected a mapping with steps".into()));
        };
        let text = |k: &str| w.get(k).and_then(Value::as_str).map(str::to_string);
        let aliases = names(
            w.get("aliases").unwrap_or(&Value::Null),
            &format!("{base}.aliases"),
            file,
        )?;
        for n in std::iter::once(name).chain(aliases.iter()) {
            if taken.contains(n) {
                return Err(invalid(
                    file,
                    &base,
                    format!("the name `{n}` is already a model or workflow"),
                ));
            }
            taken.push(n.clone());
        }
        let output = match text("output").as_deref() {
            None | Some("combined") => WorkflowOutput::Combined,
            Some("final") => WorkflowOutput::Final,
            Some(other) => {
                return Err(invalid(
                    file,
                    &format!("{base}.output"),
                    format!("`{other}`: use combined or final"),
                ));
            }
        };
        let Some(Value::Array(raw_steps)) = w.get("steps") else {
            return Err(invalid(
                file,
                &format!("{base}.steps"),
                "missing: a workflow needs a list of steps".into(),
            ));
        };
        if raw_steps.is_empty() {
            return Err(invalid(
                file,
                &format!("{base}.steps"),
                "a workflow needs at least one step".into(),
            ));
        }
        let mut steps = Vec::new();
        for (i, st) in raw_steps.iter().enumerate() {
            let sp = format!("{base}.steps[{i}]");
            let Value::Object(st) = st else {
                return Err(invalid(file, &sp, "expected a mapping with role and model".into()));
            };
            let get = |k: &str| st.get(k).and_then(Value::as_str).map(str::to_string);
            let model = get("model").ok_or_else(|| invalid(file, &format!("{sp}.model"), "missing".into()))?;
            let fallbacks = names(
                st.get("fallbacks").unwrap_or(&Value::Null),
                &format!("{sp}.fallbacks"),
                file,
            )?;
            for n in std::iter::once(&model).chain(fallbacks.iter()) {
                if !known(n) {
                    return Err(invalid(
                        file,
                        &format!("{sp}.model"),
                        format!(
                            "`{n}` is not a model_list model_name or model_group_alias; known: {}",
                            groups.join(", ")
                        ),
                    ));
                }
            }
            steps.push(StepConfig {
                role: get("role").unwrap_or_else(|| format!("step{}", i + 1)),
                model,
                system: get("system"),
                temperature: st.get("temperature").and_then(Value::as_f64),
                max_tokens: st.get("max_tokens").and_then(Value::as_u64),
                reasoning_effort: get("reasoning_effort"),
                fallbacks,
                timeout: match st.get("timeout") {
                    None | Some(Value::Null) => None,
                    Some(t) => Some(seconds_up_to(t, &format!("{sp}.timeout"), file, MAX_SECONDS)?),
                },
            });
        }
        let tool_step = text("tool_step").unwrap_or_else(|| {
            if steps.iter().any(|s| s.role == "coder") {
                "coder".into()
            } else {
                steps.last().map(|s| s.role.clone()).unwrap_or_default()
            }
        });
        out.push(WorkflowConfig {
            name: name.clone(),
            description: text("description"),
            aliases,
            output,
            steps,
            tool_step,
        });
    }
    Ok(out)
}
