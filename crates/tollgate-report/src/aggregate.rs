//! One pass over the records: dedupe, filter, and fold into the [`Report`]. Memory grows only with
//! the per-model samples kept for exact percentiles, one small entry per distinct request id,
//! prompt hash and session.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use tollgate_core::{CacheState, PriceTable, Record, RecordStatus};

use crate::expectations::ExpectedWorkflow;
use crate::import::keys::KeyBudget;

use crate::findings;
use crate::i18n::Lang;
// The report's types live in `report`; re-exported here, where they have always been public.
pub use crate::report::{
    CacheCounts, CacheReport, CostTotals, EndpointTraffic, ErrorExample, KeySpend, LatencyReport, LatencyStats,
    MissingStep, ModelReport, ModelSpend, NamedCount, Overhead, Period, ProviderCache, ReasoningReport, ReasoningRow,
    Report, RequestRef, Requests, SCHEMA_VERSION, SessionPattern, Sessions, Spend, StepReport, TeamSpend, TimePoint,
    Timeline, TokenBucket, TokenDistribution, TokenReport, UserSpend, WorkflowReport,
};
use crate::stats;

/// What to include and how to judge it. Pure data: no I/O, no clock.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Model groups (or upstream models) to keep; empty keeps all. Case-insensitive.
    pub models: Vec<String>,
    /// Prices for unpriced records and model limits (oversized prompts).
    pub prices: PriceTable,
    /// Language of the findings' texts.
    pub lang: Lang,
    /// Steps each workflow is expected to run (from tollgate's config), by role, in order.
    pub expected_steps: BTreeMap<String, Vec<String>>,
    /// Workflows from a config (`--config`): calls of a workflow's name that carry no workflow
    /// tag (a LiteLLM log of a model name standing in for a pipeline) are counted as runs of it,
    /// each as the step its upstream model answers.
    pub workflows: Vec<ExpectedWorkflow>,
    /// Key budgets from the store (`tollgate_keys`, read beside the records): a key whose
    /// spend nears its budget is a finding. Records carry no budgets.
    pub key_budgets: Vec<KeyBudget>,
    /// The records come from one tollgate store, whose tables hold one row per request and
    /// attempt (a unique index): no duplicates to look for, so none are remembered — a map of
    /// every request id, the largest thing a month's report would hold otherwise.
    pub records_unique: bool,
}

impl ReportOptions {
    /// Adds a config's workflows: their steps become expected, their calls attributable.
    pub fn expect_workflows(&mut self, workflows: Vec<ExpectedWorkflow>) {
        for w in &workflows {
            self.expected_steps
                .insert(w.name.clone(), w.steps.iter().map(|s| s.role.clone()).collect());
        }
        self.workflows.extend(workflows);
    }
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            since: None,
            until: None,
            models: vec![],
            prices: PriceTable::builtin(),
            lang: Lang::En,
            expected_steps: BTreeMap::new(),
            workflows: vec![],
            key_budgets: vec![],
            records_unique: false,
        }
    }
}

#[derive(Default)]
struct ModelAcc {
    upstream: BTreeSet<String>,
    requests: u64,
    succeeded: u64,
    failed: u64,
    client_failed: u64,
    hits: u64,
    streamed: u64,
    prompt: u64,
    completion: u64,
    reasoning: u64,
    cached: u64,
    cache_creation: u64,
    cost: f64,
    reasoning_cost: f64,
    cache_read_cost: f64,
    cache_write_cost: f64,
    logged: Option<f64>,
    recomputed_vs_logged: (u64, f64, f64),
    /// Requests the logger wrote at $0 although they used tokens and the price table prices
    /// them: (requests, tokens, recomputed USD).
    logged_as_free: (u64, u64, f64),
    provider_prompt: u64,
    provider_cached: u64,
    /// Some request of this model carried the provider's cache count (even 0).
    provider_cache_reported: bool,
    provider_prompt_sizes: Vec<f64>,
    unpriced: u64,
    unpriced_tokens: u64,
    unpriced_logged_zero: u64,
    latencies: Vec<f64>,
    ttft: Vec<f64>,
    truncated: u64,
    truncated_ids: Vec<String>,
    truncated_max_tokens: BTreeSet<u64>,
    errors: BTreeMap<String, (u64, String)>,
    failure_ids: Vec<String>,
    oversized: u64,
    oversized_ids: Vec<String>,
    oversized_max_prompt: u64,
    slow_ids: Vec<(f64, String)>,
}

/// One key's, user's or team's spend so far.
#[derive(Default)]
struct SpendAcc {
    requests: u64,
    failed: u64,
    usage: tollgate_core::Usage,
    cost: f64,
    unpriced: u64,
    /// Per model group: requests and cost.
    models: HashMap<String, (u64, f64)>,
}

impl SpendAcc {
    fn add(&mut self, r: &Record, cost: f64, unpriced: bool) {
        self.requests += 1;
        if r.status != RecordStatus::Success {
            self.failed += 1;
        }
        let u = r.usage();
        self.usage.input += u.input;
        self.usage.cache_read += u.cache_read;
        self.usage.cache_write += u.cache_write;
        self.usage.output += u.output;
        self.usage.reasoning += u.reasoning;
        self.cost += cost;
        self.unpriced += u64::from(unpriced);
        let m = self.models.entry(r.model_group.clone()).or_default();
        m.0 += 1;
        m.1 += cost;
    }

    fn finish(self) -> Spend {
        let mut top: Vec<ModelSpend> = self
            .models
            .into_iter()
            .map(|(model, (requests, cost_usd))| ModelSpend {
                model,
                requests,
                cost_usd,
            })
            .collect();
        top.sort_by(|a, b| {
            b.cost_usd
                .total_cmp(&a.cost_usd)
                .then_with(|| b.requests.cmp(&a.requests))
                .then_with(|| a.model.cmp(&b.model))
        });
        top.truncate(TOP_SPEND_MODELS);
        Spend {
            requests: self.requests,
            failed: self.failed,
            input_tokens: self.usage.input,
            cache_read_tokens: self.usage.cache_read,
            cache_write_tokens: self.usage.cache_write,
            output_tokens: self.usage.output,
            reasoning_tokens: self.usage.reasoning,
            cost_usd: self.cost,
            unpriced_requests: self.unpriced,
            top_models: top,
        }
    }
}

/// A key's spend and the alias it was last seen under (an alias can change; the hash cannot).
#[derive(Default)]
struct KeyAcc {
    alias: Option<(DateTime<Utc>, String)>,
    spend: SpendAcc,
}

/// Most expensive first, then by requests, then by name: stable for golden files.
fn by_spend<T>(rows: &mut [T], spend: impl Fn(&T) -> &Spend, name: impl Fn(&T) -> String) {
    rows.sort_by(|a, b| {
        let (x, y) = (spend(a), spend(b));
        y.cost_usd
            .total_cmp(&x.cost_usd)
            .then_with(|| y.requests.cmp(&x.requests))
            .then_with(|| name(a).cmp(&name(b)))
    });
}

#[derive(Default)]
struct RepeatAcc {
    provider_calls: u64,
    hits: u64,
    cost: f64,
    streamed: u64,
    example: String,
}

#[derive(Default)]
struct StepAcc {
    calls: u64,
    failed: u64,
    succeeded: u64,
    prompt: u64,
    completion: u64,
    cost: f64,
    latencies: Vec<f64>,
    models: BTreeSet<String>,
    runs: BTreeSet<String>,
}

/// A workflow step: its index (when known) and role.
type StepKey = (Option<u32>, String);

#[derive(Default)]
struct WorkflowAcc {
    /// Per run: the steps seen, and whether any call failed.
    runs: BTreeMap<String, (BTreeSet<StepKey>, bool)>,
    steps: BTreeMap<StepKey, StepAcc>,
}

struct Acc<'o> {
    opts: &'o ReportOptions,
    seen: HashMap<(String, Option<u32>), CacheState>,
    duplicates: u64,
    filtered: u64,
    sources: BTreeSet<String>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    total: u64,
    succeeded: u64,
    failed: u64,
    streamed: u64,
    models: BTreeMap<String, ModelAcc>,
    clients: HashMap<String, u64>,
    /// (endpoint, client) → (requests, cost); `named_endpoints`: some record named its endpoint.
    endpoints: HashMap<(String, String), (u64, f64)>,
    named_endpoints: bool,
    group_names: Vec<String>,
    group_ids: HashMap<String, u32>,
    sessions: HashMap<String, Vec<(DateTime<Utc>, u32, bool)>>,
    cache: CacheCounts,
    saved: f64,
    repeats: HashMap<(u32, String), RepeatAcc>,
    fingerprinted: u64,
    reasoning_top: Vec<ReasoningRow>,
    requests_ok: Vec<RequestRef>,
    prompt_sizes: Vec<u64>,
    completion_sizes: Vec<u64>,
    overhead: Vec<f64>,
    overhead_max: (f64, String),
    timeline: Minutes,
    workflows: BTreeMap<String, WorkflowAcc>,
    /// By hash prefix, or by alias for a key logged without a hash (the master key).
    keys: HashMap<(Option<String>, Option<String>), KeyAcc>,
    users: HashMap<String, SpendAcc>,
    teams: HashMap<String, SpendAcc>,
}

const TOP_N: usize = 5;
const TOP_REASONING: usize = 10;
const KEEP_IDS: usize = 3;
const TOP_SPEND_MODELS: usize = 3;

fn push_id(ids: &mut Vec<String>, id: &str) {
    if ids.len() < KEEP_IDS {
        ids.push(id.to_string());
    }
}

impl<'o> Acc<'o> {
    fn new(opts: &'o ReportOptions) -> Self {
        Acc {
            opts,
            seen: HashMap::new(),
            duplicates: 0,
            filtered: 0,
            sources: BTreeSet::new(),
            start: None,
            end: None,
            total: 0,
            succeeded: 0,
            failed: 0,
            streamed: 0,
            models: BTreeMap::new(),
            clients: HashMap::new(),
            endpoints: HashMap::new(),
            named_endpoints: false,
            group_names: vec![],
            group_ids: HashMap::new(),
            sessions: HashMap::new(),
            cache: CacheCounts::default(),
            saved: 0.0,
            repeats: HashMap::new(),
            fingerprinted: 0,
            reasoning_top: vec![],
            requests_ok: vec![],
            prompt_sizes: vec![],
            completion_sizes: vec![],
            overhead: vec![],
            overhead_max: (f64::MIN, String::new()),
            timeline: Minutes::default(),
            workflows: BTreeMap::new(),
            keys: HashMap::new(),
            users: HashMap::new(),
            teams: HashMap::new(),
        }
    }

    fn keep(&self, r: &Record) -> bool {
        if self.opts.since.is_some_and(|s| r.start_time < s) || self.opts.until.is_some_and(|u| r.start_time >= u) {
            return false;
        }
        self.opts.models.is_empty()
            || self
                .opts
                .models
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&r.model_group) || m.eq_ignore_ascii_case(&r.model))
    }

    fn cache_slot(&mut self, c: CacheState) -> &mut u64 {
        match c {
            CacheState::Off => &mut self.cache.off,
            CacheState::Miss => &mut self.cache.miss,
            CacheState::Hit => &mut self.cache.hit,
            CacheState::Bypass => &mut self.cache.bypass,
            CacheState::Unknown => &mut self.cache.unknown,
        }
    }

    fn group_id(&mut self, g: &str) -> u32 {
        if let Some(id) = self.group_ids.get(g) {
            return *id;
        }
        let id = self.group_names.len() as u32;
        self.group_names.push(g.to_string());
        self.group_ids.insert(g.to_string(), id);
        id
    }

    /// Whether the record was seen already (the same request from a second log), counted as a
    /// duplicate; a definite cache state from it replaces an unknown one.
    fn is_duplicate(&mut self, r: &Record) -> bool {
        let key = (r.request_id.clone(), r.attempt);
        if let Some(prev) = self.seen.get_mut(&key) {
            self.duplicates += 1;
            if *prev == CacheState::Unknown && r.cache != CacheState::Unknown {
                let new = r.cache;
                *prev = new;
                self.cache.unknown = self.cache.unknown.saturating_sub(1);
                *self.cache_slot(new) += 1;
            }
            return true;
        }
        self.seen.insert(key, r.cache);
        false
    }

    fn add(&mut self, mut r: Record) {
        // A workflow run's own record sums its steps, which are counted one by one.
        if r.rollup {
            return;
        }
        if !self.keep(&r) {
            self.filtered += 1;
            return;
        }
        if !self.opts.records_unique && self.is_duplicate(&r) {
            return;
        }
        if r.model_group.is_empty() {
            r.model_group = if r.model.is_empty() {
                "(unknown)".into()
            } else {
                r.model.clone()
            };
        }
        // Records the gateway or importer could not price may be priceable now (`--prices`).
        if r.cost_usd.is_none() && r.total_tokens() > 0 && r.cache != CacheState::Hit {
            let price = self
                .opts
                .prices
                .lookup(&r.model)
                .or_else(|| self.opts.prices.lookup(&r.model_group));
            if let Some(c) = price.filter(|p| p.is_priced()).and_then(|p| p.cost(&r.usage())) {
                r.set_cost(Some(c));
            }
        }
        if !r.source.is_empty() {
            self.sources.insert(r.source.clone());
        }
        self.start = Some(self.start.map_or(r.start_time, |s| s.min(r.start_time)));
        self.end = Some(self.end.map_or(r.end_time, |e| e.max(r.end_time.max(r.start_time))));
        self.total += 1;
        let ok = r.status == RecordStatus::Success;
        let hit = r.cache == CacheState::Hit;
        if ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        if r.stream {
            self.streamed += 1;
        }
        *self.cache_slot(r.cache) += 1;
        self.saved += r.saved_cost_usd.unwrap_or(0.0);
        let effective_cost = r.cost_usd.or(r.reported_cost_usd).unwrap_or(0.0);
        if let Some(ua) = &r.user_agent {
            *self.clients.entry(ua.clone()).or_default() += 1;
        }
        self.named_endpoints |= r.endpoint.is_some();
        let slot = self
            .endpoints
            .entry((
                r.endpoint.clone().unwrap_or_else(|| "-".into()),
                client_product(r.user_agent.as_deref()),
            ))
            .or_default();
        slot.0 += 1;
        slot.1 += effective_cost;
        let gid = self.group_id(&r.model_group);
        if let Some(s) = r.session_id.as_ref().filter(|s| !s.is_empty()) {
            self.sessions
                .entry(s.clone())
                .or_default()
                .push((r.start_time, gid, ok));
        }
        if let Some(h) = &r.prompt_sha256 {
            self.fingerprinted += 1;
            if ok {
                let acc = self.repeats.entry((gid, h.clone())).or_default();
                if hit {
                    acc.hits += 1;
                } else {
                    acc.provider_calls += 1;
                    acc.cost += effective_cost;
                    if r.stream {
                        acc.streamed += 1;
                    }
                    if acc.provider_calls == 2 {
                        acc.example = r.request_id.clone();
                    }
                }
            }
        }
        self.timeline.add(
            r.start_time.timestamp_millis(),
            !ok,
            r.prompt_tokens,
            r.completion_tokens,
            effective_cost,
            // The same latencies as the performance section: successes that reached the provider.
            (ok && !hit).then_some(r.latency_ms),
        );
        if let Some(o) = r.overhead_ms {
            self.overhead.push(o);
            if o > self.overhead_max.0 {
                self.overhead_max = (o, r.request_id.clone());
            }
        }
        if ok {
            self.prompt_sizes.push(r.prompt_tokens);
            self.completion_sizes.push(r.completion_tokens);
            if !hit {
                self.requests_ok.push(RequestRef {
                    request_id: r.request_id.clone(),
                    model: r.model_group.clone(),
                    start: r.start_time,
                    latency_ms: r.latency_ms,
                    prompt_tokens: r.prompt_tokens,
                    completion_tokens: r.completion_tokens,
                    reasoning_tokens: r.reasoning_tokens,
                });
                if self.requests_ok.len() >= 4096 {
                    self.trim_extremes();
                }
            }
            if r.reasoning_tokens > 0 && r.completion_tokens > 0 && !hit {
                self.reasoning_top.push(ReasoningRow {
                    request_id: r.request_id.clone(),
                    model: r.model_group.clone(),
                    reasoning_tokens: r.reasoning_tokens,
                    completion_tokens: r.completion_tokens,
                    share: r.reasoning_tokens as f64 / r.completion_tokens as f64,
                });
                if self.reasoning_top.len() >= 1024 {
                    self.trim_reasoning();
                }
            }
        }
        self.add_workflow(&r, effective_cost);
        self.add_spend(&r, effective_cost);
        let price = self
            .opts
            .prices
            .lookup(&r.model)
            .or_else(|| self.opts.prices.lookup(&r.model_group))
            .cloned();
        let m = self.models.entry(r.model_group.clone()).or_default();
        if !r.model.is_empty() {
            m.upstream.insert(r.model.clone());
        }
        m.requests += 1;
        if r.stream {
            m.streamed += 1;
        }
        m.prompt += r.prompt_tokens;
        m.completion += r.completion_tokens;
        m.reasoning += r.reasoning_tokens;
        m.cached += r.cached_tokens;
        m.cache_creation += r.cache_creation_tokens;
        m.cost += effective_cost;
        m.reasoning_cost += r.cost_reasoning_usd.unwrap_or(0.0);
        m.cache_read_cost += r.cost_cache_read_usd.unwrap_or(0.0);
        m.cache_write_cost += r.cost_cache_write_usd.unwrap_or(0.0);
        if let Some(l) = r.reported_cost_usd {
            *m.logged.get_or_insert(0.0) += l;
            match (r.cost_usd, hit) {
                // $0 logged for tokens that have a price: the logger had none (one cause, its own
                // finding), not a difference in prices.
                (Some(c), false) if l == 0.0 && c > 0.0 && r.total_tokens() > 0 => {
                    m.logged_as_free.0 += 1;
                    m.logged_as_free.1 += r.total_tokens();
                    m.logged_as_free.2 += c;
                }
                (Some(c), false) => {
                    m.recomputed_vs_logged.0 += 1;
                    m.recomputed_vs_logged.1 += c;
                    m.recomputed_vs_logged.2 += l;
                }
                _ => {}
            }
        }
        if r.cost_usd.is_none() || (r.unpriced && r.total_tokens() > 0) {
            m.unpriced += 1;
            m.unpriced_tokens += r.total_tokens();
            if r.reported_cost_usd.is_none_or(|c| c == 0.0) && r.total_tokens() > 0 {
                m.unpriced_logged_zero += 1;
            }
        }
        if ok {
            m.succeeded += 1;
        } else {
            m.failed += 1;
            if r.fault == Some(tollgate_core::Fault::Client) {
                m.client_failed += 1;
            }
            push_id(&mut m.failure_ids, &r.request_id);
            let msg = r
                .error_message
                .clone()
                .or(r.error_type.clone())
                .unwrap_or_else(|| format!("HTTP {}", r.http_status));
            let msg: String = msg.chars().take(240).collect();
            let len = m.errors.len();
            if let Some(e) = m.errors.get_mut(&msg) {
                e.0 += 1;
            } else if len < 20 {
                m.errors.insert(msg, (1, r.request_id.clone()));
            }
        }
        if hit {
            m.hits += 1;
        } else if ok {
            m.latencies.push(r.latency_ms);
            m.provider_prompt += r.prompt_tokens;
            m.provider_cached += r.cached_tokens;
            m.provider_cache_reported |= r.cached_tokens_reported || r.cached_tokens > 0;
            m.provider_prompt_sizes.push(r.prompt_tokens as f64);
            if let Some(t) = r.ttft_ms.filter(|_| r.stream) {
                m.ttft.push(t);
            }
            if r.latency_ms >= findings::SLOW_MS {
                m.slow_ids.push((r.latency_ms, r.request_id.clone()));
            }
        }
        if r.finish_reason.as_deref() == Some("length") {
            m.truncated += 1;
            push_id(&mut m.truncated_ids, &r.request_id);
            if let Some(mt) = r.max_tokens {
                m.truncated_max_tokens.insert(mt);
            }
        }
        if findings::is_oversized(&r, price.as_ref()) {
            m.oversized += 1;
            push_id(&mut m.oversized_ids, &r.request_id);
            m.oversized_max_prompt = m.oversized_max_prompt.max(r.prompt_tokens);
        }
    }

    /// The record's share of its key's, user's and team's spend. A record names a key by its
    /// alias, or (LiteLLM, a key without an alias) by its hash alone; one naming neither was made
    /// without a key and is nobody's.
    fn add_spend(&mut self, r: &Record, cost: f64) {
        // Unpriced as `models[]` counts it.
        let unpriced = r.cost_usd.is_none() || (r.unpriced && r.total_tokens() > 0);
        let alias = r.key_alias.as_ref().filter(|a| !a.is_empty());
        let hash = r.key_hash.as_ref().filter(|h| !h.is_empty());
        if alias.is_some() || hash.is_some() {
            let id = match hash {
                Some(h) => (Some(h.clone()), None),
                None => (None, alias.cloned()),
            };
            let k = self.keys.entry(id).or_default();
            if let Some(a) = alias
                && k.alias.as_ref().is_none_or(|(at, _)| r.start_time >= *at)
            {
                k.alias = Some((r.start_time, a.clone()));
            }
            k.spend.add(r, cost, unpriced);
        }
        if let Some(u) = r.user_id.as_ref().filter(|u| !u.is_empty()) {
            self.users.entry(u.clone()).or_default().add(r, cost, unpriced);
        }
        if let Some(t) = r.team_id.as_ref().filter(|t| !t.is_empty()) {
            self.teams.entry(t.clone()).or_default().add(r, cost, unpriced);
        }
    }

    /// Spend per key, user and team; all empty for traffic of one key that is the master key
    /// (or no key at all), one user and one team, which the rest of the report already covers.
    fn spend_reports(&mut self) -> (Vec<KeySpend>, Vec<UserSpend>, Vec<TeamSpend>) {
        let keys = std::mem::take(&mut self.keys);
        let users = std::mem::take(&mut self.users);
        let teams = std::mem::take(&mut self.teams);
        let only_master = keys
            .iter()
            .all(|((hash, alias), _)| hash.is_none() && alias.as_deref() == Some("master_key"));
        if keys.len() <= 1 && users.len() <= 1 && teams.len() <= 1 && only_master {
            return (vec![], vec![], vec![]);
        }
        let mut keys: Vec<KeySpend> = keys
            .into_iter()
            .map(|((hash, _), k)| KeySpend {
                key_alias: k.alias.map(|(_, a)| a),
                key_hash: hash,
                spend: k.spend.finish(),
            })
            .collect();
        by_spend(
            &mut keys,
            |k| &k.spend,
            |k| {
                format!(
                    "{}\n{}",
                    k.key_alias.as_deref().unwrap_or(""),
                    k.key_hash.as_deref().unwrap_or("")
                )
            },
        );
        let mut users: Vec<UserSpend> = users
            .into_iter()
            .map(|(user_id, s)| UserSpend {
                user_id,
                spend: s.finish(),
            })
            .collect();
        by_spend(&mut users, |u| &u.spend, |u| u.user_id.clone());
        let mut teams: Vec<TeamSpend> = teams
            .into_iter()
            .map(|(team_id, s)| TeamSpend {
                team_id,
                spend: s.finish(),
            })
            .collect();
        by_spend(&mut teams, |t| &t.spend, |t| t.team_id.clone());
        (keys, users, teams)
    }

    /// A record of an untagged call to a configured workflow's name: (workflow, step index, role).
    fn attribute_to_workflow(&self, r: &Record) -> Option<(String, Option<u32>, String)> {
        let w = self.opts.workflows.iter().find(|w| w.is_called_as(&r.model_group))?;
        Some(match w.step_answered_by(&r.model) {
            Some((i, role)) => (w.name.clone(), Some(i), role.to_string()),
            None => (w.name.clone(), None, "(untagged)".into()),
        })
    }

    fn add_workflow(&mut self, r: &Record, cost: f64) {
        let (wf, step_index, role) = match r.workflow.as_ref().filter(|w| !w.is_empty()) {
            Some(wf) => (
                wf.clone(),
                r.step_index,
                r.step_role.clone().unwrap_or_else(|| "(untagged)".into()),
            ),
            None => match self.attribute_to_workflow(r) {
                Some(a) => a,
                None => return,
            },
        };
        let run_id = if !r.trace_id.is_empty() {
            r.trace_id.clone()
        } else {
            r.session_id.clone().unwrap_or_else(|| r.request_id.clone())
        };
        let key = (step_index, role);
        let w = self.workflows.entry(wf).or_default();
        let run = w.runs.entry(run_id.clone()).or_default();
        run.0.insert(key.clone());
        let ok = r.status == RecordStatus::Success;
        if !ok {
            run.1 = true;
        }
        let s = w.steps.entry(key).or_default();
        s.calls += 1;
        if ok {
            s.succeeded += 1;
            s.latencies.push(r.latency_ms);
        } else {
            s.failed += 1;
        }
        s.prompt += r.prompt_tokens;
        s.completion += r.completion_tokens;
        s.cost += cost;
        s.models.insert(r.model.clone());
        s.runs.insert(run_id);
    }

    fn trim_extremes(&mut self) {
        let mut v = std::mem::take(&mut self.requests_ok);
        v.sort_by(|a, b| {
            a.latency_ms
                .total_cmp(&b.latency_ms)
                .then_with(|| a.request_id.cmp(&b.request_id))
        });
        let n = v.len();
        let mut kept: Vec<RequestRef> = v[..TOP_N.min(n)].to_vec();
        if n > TOP_N {
            kept.extend(v[n.saturating_sub(TOP_N).max(TOP_N)..].iter().cloned());
        }
        self.requests_ok = kept;
    }

    fn trim_reasoning(&mut self) {
        self.reasoning_top.sort_by(|a, b| {
            b.reasoning_tokens
                .cmp(&a.reasoning_tokens)
                .then_with(|| a.request_id.cmp(&b.request_id))
        });
        self.reasoning_top.truncate(TOP_REASONING);
    }

    fn finish(mut self) -> Report {
        self.trim_extremes();
        self.trim_reasoning();
        let total_cost: f64 = self.models.values().map(|m| m.cost).sum();
        let mut models = Vec::new();
        let mut unpriced_models = Vec::new();
        let mut logged_total: Option<f64> = None;
        let mut diff_total: Option<f64> = None;
        let mut reasoning_usd = 0.0;
        let mut unpriced_requests = 0;
        let mut accs = Vec::new();
        for (name, mut m) in std::mem::take(&mut self.models) {
            if let Some(l) = m.logged {
                *logged_total.get_or_insert(0.0) += l;
            }
            if m.recomputed_vs_logged.0 > 0 {
                *diff_total.get_or_insert(0.0) += m.recomputed_vs_logged.1 - m.recomputed_vs_logged.2;
            }
            if m.logged_as_free.0 > 0 {
                *diff_total.get_or_insert(0.0) += m.logged_as_free.2;
            }
            if m.unpriced > 0 && m.unpriced_tokens > 0 {
                unpriced_models.push(name.clone());
            }
            unpriced_requests += m.unpriced;
            reasoning_usd += m.reasoning_cost;
            let tokens = m.prompt + m.completion;
            let mut errors: Vec<ErrorExample> = std::mem::take(&mut m.errors)
                .into_iter()
                .map(|(message, (count, request_id))| ErrorExample {
                    message,
                    count,
                    request_id,
                })
                .collect();
            errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.message.cmp(&b.message)));
            errors.truncate(3);
            models.push(ModelReport {
                model: name.clone(),
                upstream_models: m.upstream.iter().cloned().collect(),
                requests: m.requests,
                succeeded: m.succeeded,
                failed: m.failed,
                client_failed: m.client_failed,
                cache_hits: m.hits,
                streamed: m.streamed,
                prompt_tokens: m.prompt,
                completion_tokens: m.completion,
                reasoning_tokens: m.reasoning,
                cached_tokens: m.cached,
                cache_creation_tokens: m.cache_creation,
                cost_usd: m.cost,
                reasoning_cost_usd: m.reasoning_cost,
                cache_read_cost_usd: m.cache_read_cost,
                cache_write_cost_usd: m.cache_write_cost,
                logged_cost_usd: m.logged,
                cost_per_1k_tokens: (tokens > 0 && m.cost > 0.0).then(|| m.cost / tokens as f64 * 1000.0),
                cost_share: (total_cost > 0.0).then(|| m.cost / total_cost),
                reasoning_share: (m.completion > 0).then(|| m.reasoning as f64 / m.completion as f64),
                provider_cache: ProviderCache {
                    prompt_tokens: m.provider_prompt,
                    cached_tokens: m.provider_cached,
                    share: (m.provider_cache_reported && m.provider_prompt > 0)
                        .then(|| m.provider_cached as f64 / m.provider_prompt as f64),
                },
                unpriced_requests: m.unpriced,
                latency_ms: stats::summarize(&mut m.latencies),
                ttft_ms: stats::summarize(&mut m.ttft),
                truncated: m.truncated,
                errors,
            });
            accs.push((name, m));
        }
        // Most expensive first, then by requests, then by name: stable for golden files.
        models.sort_by(|a, b| {
            b.cost_usd
                .total_cmp(&a.cost_usd)
                .then_with(|| b.requests.cmp(&a.requests))
                .then_with(|| a.model.cmp(&b.model))
        });

        let cache = self.cache_report();
        let mut clients: Vec<NamedCount> = self
            .clients
            .iter()
            .map(|(k, v)| NamedCount {
                name: k.clone(),
                requests: *v,
            })
            .collect();
        clients.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.name.cmp(&b.name)));
        let mut endpoints: Vec<EndpointTraffic> = if self.named_endpoints {
            self.endpoints
                .iter()
                .map(|((endpoint, client), (requests, cost))| EndpointTraffic {
                    endpoint: endpoint.clone(),
                    client: client.clone(),
                    requests: *requests,
                    cost_usd: *cost,
                })
                .collect()
        } else {
            Vec::new()
        };
        endpoints.sort_by(|a, b| {
            b.cost_usd
                .total_cmp(&a.cost_usd)
                .then_with(|| b.requests.cmp(&a.requests))
                .then_with(|| (&a.endpoint, &a.client).cmp(&(&b.endpoint, &b.client)))
        });

        let mut fastest = self.requests_ok.clone();
        fastest.sort_by(|a, b| {
            a.latency_ms
                .total_cmp(&b.latency_ms)
                .then_with(|| a.request_id.cmp(&b.request_id))
        });
        let mut slowest = fastest.clone();
        slowest.reverse();
        fastest.truncate(TOP_N);
        slowest.truncate(TOP_N);

        let overhead = if self.overhead.is_empty() {
            None
        } else {
            stats::summarize(&mut self.overhead).map(|s| Overhead {
                samples: s.count,
                avg: s.avg,
                p50: s.p50,
                p95: s.p95,
                max: s.max,
                max_request_id: self.overhead_max.1.clone(),
            })
        };
        let period = Period {
            start: self.start,
            end: self.end,
            duration_s: match (self.start, self.end) {
                (Some(s), Some(e)) => (e - s).num_milliseconds() as f64 / 1000.0,
                _ => 0.0,
            },
        };
        let workflows = self.workflow_reports();
        let (keys, users, teams) = self.spend_reports();
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            inputs: vec![],
            duplicates: self.duplicates,
            filtered_out: self.filtered,
            sources: self.sources.iter().cloned().collect(),
            period,
            requests: Requests {
                total: self.total,
                succeeded: self.succeeded,
                failed: self.failed,
                success_rate: (self.total > 0).then(|| self.succeeded as f64 / self.total as f64),
                streamed: self.streamed,
                cache_hits: self.cache.hit,
            },
            cost: CostTotals {
                total_usd: total_cost,
                logged_usd: logged_total,
                // Float noise from summing the same costs two ways is not a difference.
                difference_usd: diff_total.map(|d| if d.abs() < 1e-12 { 0.0 } else { d }),
                reasoning_usd,
                saved_usd: self.saved,
                unpriced_models,
                unpriced_requests,
            },
            models,
            clients,
            endpoints,
            keys,
            users,
            teams,
            sessions: self.session_report(),
            cache,
            reasoning: ReasoningReport {
                top: std::mem::take(&mut self.reasoning_top),
            },
            tokens: TokenReport {
                prompt: distribution(&mut self.prompt_sizes, &findings::PROMPT_BUCKETS),
                completion: distribution(&mut self.completion_sizes, &findings::COMPLETION_BUCKETS),
            },
            latency: LatencyReport {
                percentile_method: stats::PERCENTILE_METHOD.into(),
                fastest,
                slowest,
            },
            overhead_ms: overhead,
            timeline: std::mem::take(&mut self.timeline).finish(),
            workflows,
            findings: vec![],
        };
        let evidence = findings::Evidence::from_accs(accs.iter().map(|(n, m)| {
            (
                n.as_str(),
                findings::ModelEvidence {
                    slow_ids: {
                        let mut s = m.slow_ids.clone();
                        s.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                        s.into_iter().take(KEEP_IDS).map(|(_, id)| id).collect()
                    },
                    slow_count: m.slow_ids.len() as u64,
                    failure_ids: m.failure_ids.clone(),
                    truncated_ids: m.truncated_ids.clone(),
                    truncated_max_tokens: m.truncated_max_tokens.iter().copied().collect(),
                    oversized: m.oversized,
                    oversized_ids: m.oversized_ids.clone(),
                    oversized_max_prompt: m.oversized_max_prompt,
                    unpriced_logged_zero: m.unpriced_logged_zero,
                    unpriced_tokens: m.unpriced_tokens,
                    recomputed_vs_logged: m.recomputed_vs_logged,
                    logged_as_free: m.logged_as_free,
                    median_provider_prompt: stats::percentile(
                        &{
                            let mut v = m.provider_prompt_sizes.clone();
                            v.sort_by(f64::total_cmp);
                            v
                        },
                        50.0,
                    ),
                },
            )
        }));
        let mut evidence = evidence;
        for m in &report.models {
            let limit = m
                .upstream_models
                .iter()
                .chain(std::iter::once(&m.model))
                .find_map(|name| self.opts.prices.lookup(name).and_then(|p| p.max_input_tokens));
            if let Some(limit) = limit {
                evidence.max_input.insert(m.model.clone(), limit);
            }
            // The rates the report priced this model at, named by the id it found them under.
            if let Some((name, p)) = m
                .upstream_models
                .iter()
                .chain(std::iter::once(&m.model))
                .find_map(|name| {
                    self.opts
                        .prices
                        .lookup(name)
                        .filter(|p| p.is_priced())
                        .map(|p| (name, p))
                })
            {
                evidence.rates.insert(
                    m.model.clone(),
                    (name.clone(), p.input_cost_per_token, p.output_cost_per_token),
                );
            }
        }
        evidence.key_budgets = self.opts.key_budgets.clone();
        report.findings = findings::detect(&report, &evidence, self.opts.lang);
        report
    }

    fn cache_report(&self) -> CacheReport {
        let c = &self.cache;
        let (state, enabled) = match (c.off > 0, c.hit + c.miss + c.bypass > 0) {
            (true, true) => ("mixed", Some(true)),
            (true, false) => ("off", Some(false)),
            (false, true) => ("on", Some(true)),
            (false, false) => ("unknown", None),
        };
        let mut repeat_requests = 0;
        let mut potential = 0.0;
        let mut streamed = 0;
        let mut examples: Vec<&str> = vec![];
        let mut repeats: Vec<&RepeatAcc> = self.repeats.values().collect();
        repeats.sort_by(|a, b| a.example.cmp(&b.example));
        for r in repeats {
            // Of n identical prompts the first must reach the provider (that fills the cache);
            // every later one that also did, instead of hitting the cache, is a missed repeat.
            let missed = r.provider_calls.saturating_sub(1);
            if missed == 0 {
                continue;
            }
            repeat_requests += missed;
            potential += r.cost / r.provider_calls as f64 * missed as f64;
            streamed += r.streamed.min(missed);
            if examples.len() < KEEP_IDS && !r.example.is_empty() {
                examples.push(&r.example);
            }
        }
        // No record told the cache state (payload logs name the cache only on a hit), nothing
        // hit, and exact repeats kept reaching the provider: a working cache would have answered
        // them, so the cache is off or not working. Said so, with the repeats as the evidence.
        let inferred_off = state == "unknown" && c.hit == 0 && repeat_requests >= findings::MIN_REPEATS_CACHE_OFF;
        let (state, enabled) = if inferred_off {
            ("off", Some(false))
        } else {
            (state, enabled)
        };
        CacheReport {
            state: state.into(),
            inferred: inferred_off,
            enabled,
            records: c.clone(),
            hits: c.hit,
            hit_rate: (enabled == Some(true) && self.succeeded > 0).then(|| c.hit as f64 / self.succeeded as f64),
            saved_usd: self.saved,
            repeat_requests,
            potential_savings_usd: potential,
            repeats_streamed: streamed,
            repeat_examples: examples.into_iter().map(str::to_string).collect(),
            fingerprinted: self.fingerprinted,
        }
    }

    fn session_report(&mut self) -> Sessions {
        let mut patterns: HashMap<Vec<String>, u64> = HashMap::new();
        let mut total_req = 0;
        let mut max_req = 0;
        let mut with_failures = 0;
        for calls in self.sessions.values_mut() {
            calls.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            total_req += calls.len() as u64;
            max_req = max_req.max(calls.len() as u64);
            if calls.iter().any(|c| !c.2) {
                with_failures += 1;
            }
            let steps: Vec<String> = calls
                .iter()
                .map(|(_, g, ok)| {
                    let name = self.group_names.get(*g as usize).cloned().unwrap_or_default();
                    if *ok { name } else { format!("{name} ✗") }
                })
                .collect();
            *patterns.entry(steps).or_default() += 1;
        }
        let mut patterns: Vec<SessionPattern> = patterns
            .into_iter()
            .map(|(steps, sessions)| SessionPattern { steps, sessions })
            .collect();
        patterns.sort_by(|a, b| b.sessions.cmp(&a.sessions).then_with(|| a.steps.cmp(&b.steps)));
        patterns.truncate(8);
        let n = self.sessions.len() as u64;
        Sessions {
            total: n,
            requests_with_session: total_req,
            avg_requests: (n > 0).then(|| total_req as f64 / n as f64),
            max_requests: max_req,
            with_failures,
            patterns,
        }
    }

    fn workflow_reports(&mut self) -> Vec<WorkflowReport> {
        let mut out = Vec::new();
        let mut names: BTreeSet<String> = self.workflows.keys().cloned().collect();
        names.extend(self.opts.expected_steps.keys().cloned());
        for name in names {
            let w = self.workflows.remove(&name).unwrap_or_default();
            let runs = w.runs.len() as u64;
            let runs_failed = w.runs.values().filter(|r| r.1).count() as u64;
            let mut missing = Vec::new();
            // Expected roles never seen.
            if let Some(expected) = self.opts.expected_steps.get(&name) {
                for (i, role) in expected.iter().enumerate() {
                    if !w.steps.keys().any(|(_, r)| r == role) {
                        missing.push(MissingStep {
                            role: role.clone(),
                            index: Some(i as u32),
                            runs,
                            reason: "never_ran".into(),
                        });
                    }
                }
            }
            // Indexed steps absent from runs that reached a later step.
            for (idx, role) in w.steps.keys().filter(|(i, _)| i.is_some()) {
                let skipped = w
                    .runs
                    .values()
                    .filter(|(steps, _)| {
                        !steps.iter().any(|(i, r)| i == idx && r == role)
                            && steps.iter().any(|(i, _)| i.is_some_and(|i| Some(i) > *idx))
                    })
                    .count() as u64;
                if skipped > 0 {
                    missing.push(MissingStep {
                        role: role.clone(),
                        index: *idx,
                        runs: skipped,
                        reason: "skipped".into(),
                    });
                }
            }
            let mut steps = Vec::new();
            for ((idx, role), mut s) in w.steps {
                if s.succeeded == 0 && s.calls > 0 {
                    missing.push(MissingStep {
                        role: role.clone(),
                        index: idx,
                        runs: s.runs.len() as u64,
                        reason: "always_failed".into(),
                    });
                }
                steps.push(StepReport {
                    index: idx,
                    role,
                    calls: s.calls,
                    failed: s.failed,
                    runs: s.runs.len() as u64,
                    prompt_tokens: s.prompt,
                    completion_tokens: s.completion,
                    cost_usd: s.cost,
                    latency_ms: stats::summarize(&mut s.latencies),
                    models: s.models.into_iter().filter(|m| !m.is_empty()).collect(),
                });
            }
            out.push(WorkflowReport {
                name,
                runs,
                runs_failed,
                steps,
                missing_steps: missing,
            });
        }
        out
    }
}

fn distribution(values: &mut [u64], bounds: &[(&str, u64, Option<u64>)]) -> TokenDistribution {
    values.sort_unstable();
    let as_f: Vec<f64> = values.iter().map(|v| *v as f64).collect();
    let buckets = bounds
        .iter()
        .map(|(label, lower, upper)| {
            let inside: Vec<u64> = values
                .iter()
                .copied()
                .filter(|v| *v >= *lower && upper.is_none_or(|u| *v < u))
                .collect();
            TokenBucket {
                label: label.to_string(),
                lower: *lower,
                upper: *upper,
                requests: inside.len() as u64,
                min: inside.first().copied(),
                max: inside.last().copied(),
            }
        })
        .collect();
    TokenDistribution {
        buckets,
        p50: stats::percentile(&as_f, 50.0),
        p95: stats::percentile(&as_f, 95.0),
        max: as_f.last().copied(),
    }
}

/// The over-time view's sums, per whole minute (UTC) while records arrive: every bucket width
/// is a whole number of minutes and buckets start on a multiple of their width, so a minute
/// never straddles two buckets. A minute holds its sums and its latencies (the percentiles need
/// them), not its records.
#[derive(Default)]
struct Minutes {
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    minutes: BTreeMap<i64, (TimePoint, Vec<f64>)>,
}

impl Minutes {
    fn add(&mut self, at_ms: i64, failed: bool, prompt: u64, completion: u64, cost: f64, latency_ms: Option<f64>) {
        self.first_ms = Some(self.first_ms.map_or(at_ms, |f| f.min(at_ms)));
        self.last_ms = Some(self.last_ms.map_or(at_ms, |l| l.max(at_ms)));
        let minute = at_ms.div_euclid(60_000) * 60_000;
        let (p, latencies) = self.minutes.entry(minute).or_insert_with(|| empty_bucket(minute));
        p.requests += 1;
        p.failed += u64::from(failed);
        p.prompt_tokens += prompt;
        p.completion_tokens += completion;
        p.cost_usd += cost;
        if let Some(l) = latency_ms {
            latencies.push(l);
        }
    }

    fn finish(self) -> Timeline {
        let (Some(first), Some(last)) = (self.first_ms, self.last_ms) else {
            return Timeline::default();
        };
        let width = BUCKET_WIDTHS_MS
            .iter()
            .copied()
            .find(|w| (last - first) / w < MAX_POINTS)
            .unwrap_or(BUCKET_WIDTHS_MS[BUCKET_WIDTHS_MS.len() - 1]);
        // Buckets start on whole minutes, hours or days (UTC), so rows read as wall-clock times.
        let origin = first.div_euclid(width) * width;
        let mut map: BTreeMap<i64, (TimePoint, Vec<f64>)> = BTreeMap::new();
        for (minute, (m, latencies)) in self.minutes {
            let b = origin + (minute - origin).div_euclid(width) * width;
            let (e, all) = map.entry(b).or_insert_with(|| empty_bucket(b));
            e.requests += m.requests;
            e.failed += m.failed;
            e.prompt_tokens += m.prompt_tokens;
            e.completion_tokens += m.completion_tokens;
            e.cost_usd += m.cost_usd;
            all.extend(latencies);
        }
        // Quiet buckets are rows too: a gap in the traffic shows as a gap, not as adjacent bars.
        let last_bucket = origin + (last - origin).div_euclid(width) * width;
        let mut b = origin;
        while b < last_bucket {
            map.entry(b).or_insert_with(|| empty_bucket(b));
            b += width;
        }
        Timeline {
            bucket_ms: width,
            points: map
                .into_values()
                .map(|(mut p, mut lat)| {
                    lat.sort_by(f64::total_cmp);
                    p.latency_p50_ms = stats::percentile(&lat, 50.0);
                    p.latency_p95_ms = stats::percentile(&lat, 95.0);
                    p
                })
                .collect(),
        }
    }
}

/// Bucket widths of the over-time view: the narrowest that keeps a period within
/// [`MAX_POINTS`] buckets (minutes for a short log, hours for a day, days for a month), else a
/// week.
const BUCKET_WIDTHS_MS: [i64; 6] = [60_000, 300_000, 900_000, 3_600_000, 86_400_000, 604_800_000];
const MAX_POINTS: i64 = 48;

/// A bucket starting at `b` (ms) with nothing in it yet, and its latencies.
fn empty_bucket(b: i64) -> (TimePoint, Vec<f64>) {
    (
        TimePoint {
            start: DateTime::from_timestamp_millis(b).unwrap_or_default(),
            requests: 0,
            failed: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
            latency_p50_ms: None,
            latency_p95_ms: None,
        },
        Vec::new(),
    )
}

/// Folds records into a report. Pure: the same records and options always give the same report.
pub fn build_report(records: impl IntoIterator<Item = Record>, opts: &ReportOptions) -> Report {
    let mut acc = Acc::new(opts);
    for r in records {
        acc.add(r);
    }
    acc.finish()
}

/// A User-Agent's product token: `claude-cli/2.0.14 (external, cli)` → `claude-cli`,
/// `codex_cli_rs/0.46.0 (…)` → `codex_cli_rs`, `OpenAI/Python 2.54.0` → `OpenAI`.
fn client_product(user_agent: Option<&str>) -> String {
    user_agent
        .and_then(|ua| ua.split(['/', ' ']).next())
        .filter(|p| !p.is_empty())
        .unwrap_or("-")
        .to_string()
}
