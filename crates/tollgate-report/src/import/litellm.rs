//! LiteLLM's two log shapes, converted to [`Record`]:
//! - `StandardLoggingPayload`: what every logging callback receives (success and failure);
//! - `LiteLLM_SpendLogs` rows: its database table, `/spend/logs` API and CSV export.
//!
//! Traps (seen in LiteLLM 1.108.7's own output): a response-cache hit reuses the cached response's
//! `id`, so the key is `litellm_call_id`; `cache_hit` is a tri-state (strings in SpendLogs);
//! `cache_key` is `"Cache OFF"` when LiteLLM's cache object is absent; failures carry `error_str`
//! and zero tokens; `response_time` of a stream is its time to first token, so latency is taken
//! from `endTime − startTime`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use tollgate_core::{CacheState, Cost, PriceTable, Record, RecordStatus, Usage};

use super::bounds::{self, RowError};
use super::flex;
use super::scan::Members;

/// The `usage` object as LiteLLM logs it (OpenAI convention plus Anthropic's cache fields).
/// Counts are read as any number so that [`UsageObj::checked`] can reject impossible ones.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UsageObj {
    #[serde(deserialize_with = "flex::num_opt")]
    prompt_tokens: Option<f64>,
    #[serde(deserialize_with = "flex::num_opt")]
    completion_tokens: Option<f64>,
    completion_tokens_details: Option<CompletionDetails>,
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(deserialize_with = "flex::num_opt")]
    cache_read_input_tokens: Option<f64>,
    #[serde(deserialize_with = "flex::num_opt")]
    cache_creation_input_tokens: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CompletionDetails {
    #[serde(deserialize_with = "flex::num_opt")]
    reasoning_tokens: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PromptDetails {
    #[serde(deserialize_with = "flex::num_opt")]
    cached_tokens: Option<f64>,
    #[serde(deserialize_with = "flex::num_opt")]
    cache_creation_tokens: Option<f64>,
}

/// A usage object's counts, each within [`bounds`].
#[derive(Debug, Default, Clone, Copy)]
struct Tokens {
    prompt: Option<u64>,
    completion: Option<u64>,
    reasoning: Option<u64>,
    /// Cache reads: OpenAI's `cached_tokens` or Anthropic's `cache_read_input_tokens`.
    cached: Option<u64>,
    cache_creation: Option<u64>,
}

impl UsageObj {
    fn from_raw(raw: Option<&RawValue>) -> Option<UsageObj> {
        let raw = raw?;
        let text = raw.get();
        if text.starts_with('"') {
            let inner: String = serde_json::from_str(text).ok()?;
            return serde_json::from_str(&inner).ok();
        }
        if !text.starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    fn checked(&self) -> Result<Tokens, RowError> {
        let prompt = self.prompt_tokens_details.as_ref();
        Ok(Tokens {
            prompt: bounds::tokens("prompt_tokens", self.prompt_tokens)?,
            completion: bounds::tokens("completion_tokens", self.completion_tokens)?,
            reasoning: bounds::tokens(
                "reasoning_tokens",
                self.completion_tokens_details.as_ref().and_then(|d| d.reasoning_tokens),
            )?,
            cached: bounds::tokens(
                "cached_tokens",
                prompt.and_then(|d| d.cached_tokens).or(self.cache_read_input_tokens),
            )?,
            cache_creation: bounds::tokens(
                "cache_creation_tokens",
                self.cache_creation_input_tokens
                    .or_else(|| prompt.and_then(|d| d.cache_creation_tokens)),
            )?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorInfo {
    #[serde(deserialize_with = "flex::string_opt")]
    error_code: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    error_class: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    error_message: Option<String>,
}

/// The request headers [`header`] is asked for; the others are skipped unread (a payload logs
/// every header the client sent, each a string and a map entry to build for nothing).
const READ_HEADERS: [&str; 4] = ["x-session-id", "user-agent", "x-tollgate-workflow", "x-tollgate-step"];

/// A logged header map, keeping [`READ_HEADERS`] (any case) in the order sent; a repeated name
/// keeps its last value, as a map would.
#[derive(Debug, Default)]
struct Headers(Vec<(String, serde_json::Value)>);

/// A map key, borrowed from the line when it has no escapes.
struct Key<'a>(std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, read and dropped: accepts exactly what a `serde_json::Value` accepts (a
/// number out of `f64`'s range is an error, unlike with `IgnoredAny`), without building it.
struct AnyValue;

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AnyValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any valid JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<AnyValue, E> {
                Ok(AnyValue)
            }
            fn visit_i64<E>(self, _: i64) -> Result<AnyValue, E> {
                Ok(AnyValue)
            }
            fn visit_u64<E>(self, _: u64) -> Result<AnyValue, E> {
                Ok(AnyValue)
            }
            fn visit_f64<E>(self, _: f64) -> Result<AnyValue, E> {
                Ok(AnyValue)
            }
            fn visit_str<E>(self, _: &str) -> Result<AnyValue, E> {
                Ok(AnyValue)
            }
            fn visit_unit<E>(self) -> Result<AnyValue, E> {
                Ok(AnyValue)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<AnyValue, A::Error> {
                while seq.next_element::<AnyValue>()?.is_some() {}
                Ok(AnyValue)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
                while map.next_key::<Key>()?.is_some() {
                    map.next_value::<AnyValue>()?;
                }
                Ok(AnyValue)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Headers;
            // As a `HashMap`'s, so that an error reads as it did when this was one.
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut kept: Vec<(String, serde_json::Value)> = Vec::new();
                while let Some(Key(k)) = map.next_key()? {
                    if !READ_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(&k)) {
                        map.next_value::<AnyValue>()?;
                        continue;
                    }
                    let v = map.next_value()?;
                    match kept.iter_mut().find(|(n, _)| *n == k) {
                        Some(entry) => entry.1 = v,
                        None => kept.push((k.into_owned(), v)),
                    }
                }
                Ok(Headers(kept))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RequesterMeta {
    #[serde(deserialize_with = "flex::string_opt")]
    session_id: Option<String>,
    headers: Option<Headers>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PayloadMeta<'a> {
    #[serde(deserialize_with = "flex::string_opt")]
    user_agent: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_api_key_alias: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_api_key_hash: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_api_key_user_id: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_api_key_team_id: Option<String>,
    #[serde(borrow)]
    usage_object: Option<&'a RawValue>,
    requester_metadata: Option<RequesterMeta>,
    requester_custom_headers: Option<Headers>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModelParams {
    stream: Option<bool>,
    #[serde(deserialize_with = "flex::u64_opt")]
    max_tokens: Option<u64>,
    #[serde(deserialize_with = "flex::u64_opt")]
    max_completion_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HiddenParams {
    #[serde(deserialize_with = "flex::f64_opt")]
    litellm_overhead_time_ms: Option<f64>,
    #[serde(deserialize_with = "flex::string_opt")]
    litellm_model_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Choice {
    #[serde(deserialize_with = "flex::string_opt")]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResponseObj<'a> {
    choices: Vec<Choice>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
}

/// The fields of a `StandardLoggingPayload` the report reads; everything else is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
#[allow(non_snake_case)]
struct Payload<'a> {
    #[serde(deserialize_with = "flex::string_opt")]
    id: Option<String>,
    /// LiteLLM's call type (`acompletion`, `anthropic_messages`, `aresponses`, …): the endpoint.
    #[serde(deserialize_with = "flex::string_opt")]
    call_type: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    litellm_call_id: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    trace_id: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    session_id: Option<String>,
    #[serde(deserialize_with = "flex::tri_bool")]
    cache_hit: Option<bool>,
    #[serde(deserialize_with = "flex::tri_bool")]
    stream: Option<bool>,
    #[serde(deserialize_with = "flex::string_opt")]
    status: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    custom_llm_provider: Option<String>,
    #[serde(deserialize_with = "flex::num_opt")]
    saved_cache_cost: Option<f64>,
    #[serde(deserialize_with = "flex::time_opt")]
    startTime: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "flex::time_opt")]
    endTime: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "flex::time_opt")]
    completionStartTime: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "flex::f64_opt")]
    response_time: Option<f64>,
    #[serde(deserialize_with = "flex::string_opt")]
    model: Option<String>,
    #[serde(borrow)]
    metadata: Option<PayloadMeta<'a>>,
    #[serde(deserialize_with = "flex::string_opt")]
    cache_key: Option<String>,
    #[serde(deserialize_with = "flex::num_opt")]
    response_cost: Option<f64>,
    #[serde(deserialize_with = "flex::num_opt")]
    prompt_tokens: Option<f64>,
    #[serde(deserialize_with = "flex::num_opt")]
    completion_tokens: Option<f64>,
    #[serde(deserialize_with = "flex::string_opt")]
    api_base: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    model_group: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_agent: Option<String>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    model_parameters: Option<ModelParams>,
    hidden_params: Option<HiddenParams>,
    #[serde(deserialize_with = "flex::string_opt")]
    error_str: Option<String>,
    error_information: Option<ErrorInfo>,
}

/// SHA-256 over the model group and the logged messages, so exact repeats can be counted without
/// keeping prompts. Empty placeholders (`{}`, `[]`, `""`) mean "not logged".
fn prompt_hash(model_group: &str, messages: &str) -> Option<String> {
    prompt_hash_raw(model_group, messages.trim().as_bytes())
}

/// Empty placeholders (`{}`, `[]`, `""`) mean "not logged".
fn is_placeholder(m: &[u8]) -> bool {
    matches!(m, b"" | b"{}" | b"[]" | b"null" | b"\"\"" | b"\"{}\"" | b"\"[]\"")
}

/// [`prompt_hash`] of a JSON value's raw text, which starts and ends with a token, so there is
/// nothing to trim.
fn prompt_hash_raw(model_group: &str, m: &[u8]) -> Option<String> {
    if is_placeholder(m) {
        return None;
    }
    // `tollgate_core::record::prompt_sha256` of the three pieces joined, without copying the
    // prompt (tens of KB a line) to join them.
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(model_group.as_bytes());
    h.update(b"\n");
    h.update(m);
    Some(hex::encode(h.finalize()))
}

fn header(headers: &[Option<&Headers>], name: &str) -> Option<String> {
    debug_assert!(READ_HEADERS.contains(&name));
    headers.iter().flatten().find_map(|h| {
        h.0.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| flex::value_string(v.clone()))
    })
}

/// `x-tollgate-step: coder` or `x-tollgate-step: 2:coder` (index and role).
fn apply_step_tag(r: &mut Record, step: Option<String>) {
    let Some(step) = step else { return };
    match step.split_once(':') {
        Some((i, role)) if i.trim().parse::<u32>().is_ok() => {
            r.step_index = i.trim().parse().ok();
            r.step_role = Some(role.trim().to_string());
        }
        _ => r.step_role = Some(step.trim().to_string()),
    }
}

fn ms_between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<f64> {
    let (a, b) = (a?, b?);
    Some((b - a).num_microseconds()? as f64 / 1000.0)
}

/// Fills token fields and both costs. A response-cache hit cost nothing upstream; what it would
/// have cost is its saving.
fn account(r: &mut Record, usage: Option<&Tokens>, prices: &PriceTable, reported_saved: Option<f64>) {
    let cached_reported = usage.and_then(|u| u.cached);
    r.cached_tokens_reported = cached_reported.is_some();
    let cached = cached_reported.unwrap_or(0);
    let creation = usage.and_then(|u| u.cache_creation).unwrap_or(0);
    let reasoning = usage.and_then(|u| u.reasoning).unwrap_or(0);
    let u = Usage::from_openai(r.prompt_tokens, r.completion_tokens, cached, creation, reasoning);
    r.set_usage(&u);
    let price = prices
        .lookup(&r.model)
        .or_else(|| prices.lookup(&r.model_group))
        .filter(|p| p.is_priced());
    let cost = price.and_then(|p| p.cost(&u));
    if r.cache == CacheState::Hit {
        r.set_cost(Some(Cost::default()));
        r.saved_cost_usd = cost.map(|c| c.total()).or(reported_saved.filter(|s| *s > 0.0));
    } else if r.status == RecordStatus::Failure && r.total_tokens() == 0 {
        // Nothing was billed; keep a failure of an unknown model from counting as "unpriced".
        r.set_cost(Some(Cost::default()));
        r.unpriced = price.is_none();
    } else {
        r.set_cost(cost);
    }
}

/// What LiteLLM logs as the key hash of a request made with its master key.
const LITELLM_MASTER_KEY_HASH: &str = "litellm_proxy_master_key";

/// A logged value, or `None` for the empty string LiteLLM writes for what a key does not have.
fn given(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Who called, named as tollgate's records name it: the key's alias (`master_key` for the master
/// key) and the first 16 hex digits of its hash, so a key reads the same from either gateway's
/// logs, and the key's user and team.
fn apply_caller(
    r: &mut Record,
    alias: Option<String>,
    hash: Option<String>,
    user: Option<String>,
    team: Option<String>,
) {
    let (alias, hash) = (given(alias), given(hash));
    if hash.as_deref() == Some(LITELLM_MASTER_KEY_HASH) {
        r.key_alias = Some(alias.unwrap_or_else(|| "master_key".into()));
    } else {
        r.key_alias = alias;
        r.key_hash = hash.map(|h| h.chars().take(16).collect());
    }
    r.user_id = given(user);
    r.team_id = given(team);
}

fn status_of(s: Option<&str>, error: bool) -> RecordStatus {
    match s.map(str::to_ascii_lowercase).as_deref() {
        Some("failure") | Some("error") | Some("failed") => RecordStatus::Failure,
        Some(_) => RecordStatus::Success,
        None if error => RecordStatus::Failure,
        None => RecordStatus::Success,
    }
}

/// A `StandardLoggingPayload` line, read whole by serde_json.
pub fn payload_to_record(line: &[u8], prices: &PriceTable) -> Result<Record, RowError> {
    let p: Payload = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let messages = p.messages.map(|m| m.get().as_bytes());
    let mut r = payload_record(p, prices)?;
    r.prompt_sha256 = messages.and_then(|m| prompt_hash_raw(&r.model_group, m));
    Ok(r)
}

/// The same record as [`payload_to_record`], without reading the prompt and the other bulk of
/// the line (see [`scan`](super::scan)); a line the field-selective reader does not vouch for, or that does
/// not deserialize, is read by [`payload_to_record`], so the result and any error are its own.
pub fn payload_to_record_fast(line: &[u8], prices: &PriceTable) -> Result<Record, RowError> {
    let (mut r, prompt) = payload_to_record_deferred(line, prices)?;
    if let Some(m) = prompt {
        r.prompt_sha256 = prompt_hash_raw(&r.model_group, m);
    }
    Ok(r)
}

/// [`payload_to_record_fast`] without the prompt fingerprint, which is returned to be computed
/// with other lines' (see `sha_pairs`): the record's `prompt_sha256` is the SHA-256 of its
/// `model_group`, a newline and the returned bytes, or stays `None` when there are none.
pub fn payload_to_record_deferred<'a>(
    line: &'a [u8],
    prices: &PriceTable,
) -> Result<(Record, Option<&'a [u8]>), RowError> {
    let Ok(mut members) = Members::new(line, "messages") else {
        return payload_to_record(line, prices).map(|r| (r, None));
    };
    match Payload::deserialize(&mut members) {
        Ok(p) => {
            let r = payload_record(p, prices)?;
            Ok((r, members.held().filter(|m| !is_placeholder(m))))
        }
        Err(_) => payload_to_record(line, prices).map(|r| (r, None)),
    }
}

/// Everything but the prompt fingerprint, which the callers add from `messages`.
fn payload_record(p: Payload, prices: &PriceTable) -> Result<Record, RowError> {
    let meta = p.metadata.unwrap_or_default();
    let req_meta = meta.requester_metadata.unwrap_or_default();
    let headers = [req_meta.headers.as_ref(), meta.requester_custom_headers.as_ref()];
    let response: ResponseObj = p
        .response
        .filter(|r| r.get().starts_with('{'))
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    let usage = UsageObj::from_raw(meta.usage_object)
        .filter(|u| u.prompt_tokens.is_some() || u.completion_tokens.is_some())
        .or_else(|| UsageObj::from_raw(response.usage))
        .map(|u| u.checked())
        .transpose()?;
    let params = p.model_parameters.unwrap_or_default();
    let hidden = p.hidden_params.unwrap_or_default();
    let err = p.error_information.unwrap_or_default();
    let error_message = p.error_str.clone().or(err.error_message.clone());

    let key = p
        .litellm_call_id
        .clone()
        .or(p.id.clone())
        .ok_or("no litellm_call_id or id")?;
    let mut r = Record {
        request_id: key,
        trace_id: p.trace_id.clone().unwrap_or_default(),
        model_group: p.model_group.clone().unwrap_or_default(),
        model: p
            .model
            .clone()
            .or(hidden.litellm_model_name.clone())
            .unwrap_or_default(),
        provider: p.custom_llm_provider.clone().unwrap_or_default(),
        api_base: p.api_base.clone(),
        source: "litellm-payload".into(),
        ..Record::default()
    };
    if r.model_group.is_empty() {
        r.model_group = r.model.clone();
    }
    r.session_id = p
        .session_id
        .clone()
        .or(req_meta.session_id.clone())
        .or_else(|| header(&headers, "x-session-id"));
    r.status = status_of(p.status.as_deref(), error_message.is_some());
    r.http_status = match r.status {
        RecordStatus::Success => 200,
        RecordStatus::Failure => err.error_code.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0),
    };
    r.stream = p.stream.or(params.stream).unwrap_or(false);
    let start = p.startTime.ok_or("no startTime")?;
    r.start_time = start;
    r.end_time = p.endTime.unwrap_or(start);
    r.latency_ms = ms_between(Some(start), p.endTime)
        .or(p.response_time.map(|s| s * 1000.0))
        .unwrap_or(0.0)
        .max(0.0);
    if r.stream {
        r.ttft_ms = ms_between(Some(start), p.completionStartTime).filter(|t| *t >= 0.0);
    }
    r.overhead_ms = hidden.litellm_overhead_time_ms;
    r.upstream_ms = r.overhead_ms.map(|o| (r.latency_ms - o).max(0.0));
    r.cache = match (p.cache_hit, p.cache_key.as_deref()) {
        (Some(true), _) => CacheState::Hit,
        (_, Some("Cache OFF")) => CacheState::Off,
        // The payload leaves `cache_key` empty on a miss whether or not a cache exists.
        _ => CacheState::Unknown,
    };
    r.prompt_tokens = bounds::tokens("prompt_tokens", p.prompt_tokens)?
        .or(usage.and_then(|u| u.prompt))
        .unwrap_or(0);
    r.completion_tokens = bounds::tokens("completion_tokens", p.completion_tokens)?
        .or(usage.and_then(|u| u.completion))
        .unwrap_or(0);
    r.reported_cost_usd = bounds::cost("response_cost", p.response_cost)?;
    let saved = bounds::cost("saved_cache_cost", p.saved_cache_cost)?;
    account(&mut r, usage.as_ref(), prices, saved);
    r.user_agent = p
        .user_agent
        .clone()
        .or(meta.user_agent.clone())
        .or_else(|| header(&headers, "user-agent"));
    r.endpoint = p.call_type.as_deref().and_then(endpoint_of);
    apply_caller(
        &mut r,
        meta.user_api_key_alias.clone(),
        meta.user_api_key_hash.clone(),
        meta.user_api_key_user_id.clone(),
        meta.user_api_key_team_id.clone(),
    );
    if r.status == RecordStatus::Failure {
        r.error_type = err.error_class.clone();
        r.error_message = error_message;
    }
    r.finish_reason = response.choices.first().and_then(|c| c.finish_reason.clone());
    r.max_tokens = params.max_completion_tokens.or(params.max_tokens);
    r.workflow = header(&headers, "x-tollgate-workflow");
    apply_step_tag(&mut r, header(&headers, "x-tollgate-step"));
    bounds::check_record(&r)?;
    Ok(r)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpendMeta<'a> {
    #[serde(borrow)]
    additional_usage_values: Option<&'a RawValue>,
    #[serde(borrow)]
    usage_object: Option<&'a RawValue>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_agent: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_api_key_alias: Option<String>,
    /// The key's hash, as in the row's `api_key`.
    #[serde(deserialize_with = "flex::string_opt")]
    user_api_key: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_api_key_user_id: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user_api_key_team_id: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    litellm_call_id: Option<String>,
    #[serde(deserialize_with = "flex::f64_opt")]
    litellm_overhead_time_ms: Option<f64>,
    error_information: Option<ErrorInfo>,
    requester_custom_headers: Option<Headers>,
}

/// One `LiteLLM_SpendLogs` row. JSON columns (`metadata`, `messages`) arrive as JSON text in the
/// table dump and CSV export, and as objects from `/spend/logs` and `row_to_json`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
#[allow(non_snake_case)]
struct SpendRow<'a> {
    #[serde(deserialize_with = "flex::string_opt")]
    request_id: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    call_type: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    litellm_call_id: Option<String>,
    #[serde(deserialize_with = "flex::tri_bool")]
    cache_hit: Option<bool>,
    #[serde(deserialize_with = "flex::time_opt")]
    startTime: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "flex::time_opt")]
    endTime: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "flex::time_opt")]
    completionStartTime: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "flex::string_opt")]
    model: Option<String>,
    /// The key's hash (SHA-256 hex; `litellm_proxy_master_key` for the master key).
    #[serde(deserialize_with = "flex::string_opt")]
    api_key: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    user: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    team_id: Option<String>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(deserialize_with = "flex::string_opt")]
    cache_key: Option<String>,
    #[serde(deserialize_with = "flex::num_opt")]
    spend: Option<f64>,
    #[serde(deserialize_with = "flex::num_opt")]
    prompt_tokens: Option<f64>,
    #[serde(deserialize_with = "flex::num_opt")]
    completion_tokens: Option<f64>,
    #[serde(borrow)]
    request_tags: Option<&'a RawValue>,
    #[serde(deserialize_with = "flex::string_opt")]
    api_base: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    model_group: Option<String>,
    #[serde(deserialize_with = "flex::string_opt")]
    custom_llm_provider: Option<String>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(deserialize_with = "flex::string_opt")]
    session_id: Option<String>,
    #[serde(deserialize_with = "flex::f64_opt")]
    request_duration_ms: Option<f64>,
    #[serde(deserialize_with = "flex::string_opt")]
    status: Option<String>,
}

/// A JSON column's text: the string's content if it was stored as a JSON string.
fn json_text(raw: Option<&RawValue>) -> Option<String> {
    let text = raw?.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).ok()
    } else {
        Some(text.to_string())
    }
}

pub fn spendlog_to_record(line: &[u8], prices: &PriceTable) -> Result<Record, RowError> {
    let row: SpendRow = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let meta_text = json_text(row.metadata).unwrap_or_default();
    let meta: SpendMeta = if meta_text.trim_start().starts_with('{') {
        serde_json::from_str(&meta_text).map_err(|e| format!("metadata: {e}"))?
    } else {
        SpendMeta::default()
    };
    let usage = UsageObj::from_raw(meta.usage_object)
        .or_else(|| UsageObj::from_raw(meta.additional_usage_values))
        .map(|u| u.checked())
        .transpose()?;
    let extra = UsageObj::from_raw(meta.additional_usage_values)
        .map(|u| u.checked())
        .transpose()?;
    let err = meta.error_information.unwrap_or_default();
    // A cache hit's `request_id` is the cached response's id (sometimes suffixed `_cache_hit…`);
    // only `litellm_call_id` is unique.
    let key = row
        .litellm_call_id
        .clone()
        .or(meta.litellm_call_id.clone())
        .or(row.request_id.clone())
        .ok_or("no request_id or litellm_call_id")?;
    let mut r = Record {
        request_id: key,
        model_group: row.model_group.clone().unwrap_or_default(),
        model: row.model.clone().unwrap_or_default(),
        provider: row.custom_llm_provider.clone().unwrap_or_default(),
        api_base: row.api_base.clone(),
        source: "litellm-spendlogs".into(),
        ..Record::default()
    };
    if r.model_group.is_empty() {
        r.model_group = r.model.clone();
    }
    r.session_id = row.session_id.clone();
    r.trace_id = r.session_id.clone().unwrap_or_default();
    let error_message = err.error_message.clone();
    r.status = status_of(row.status.as_deref(), error_message.is_some());
    r.http_status = match r.status {
        RecordStatus::Success => 200,
        RecordStatus::Failure => err.error_code.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0),
    };
    let start = row.startTime.ok_or("no startTime")?;
    r.start_time = start;
    r.end_time = row.endTime.unwrap_or(start);
    r.latency_ms = ms_between(Some(start), row.endTime)
        .or(row.request_duration_ms)
        .unwrap_or(0.0)
        .max(0.0);
    // SpendLogs has no stream flag; a first token before the end is what a stream looks like.
    if let (Some(first), Some(end)) = (row.completionStartTime, row.endTime)
        && first < end
    {
        r.stream = true;
        r.ttft_ms = ms_between(Some(start), Some(first)).filter(|t| *t >= 0.0);
    }
    r.overhead_ms = meta.litellm_overhead_time_ms;
    r.upstream_ms = r.overhead_ms.map(|o| (r.latency_ms - o).max(0.0));
    r.cache = match (row.cache_hit, row.cache_key.as_deref()) {
        (Some(true), _) => CacheState::Hit,
        (_, Some("Cache OFF")) => CacheState::Off,
        (_, Some(k)) if !k.trim().is_empty() => CacheState::Miss,
        _ => CacheState::Unknown,
    };
    r.prompt_tokens = bounds::tokens("prompt_tokens", row.prompt_tokens)?
        .or(usage.and_then(|u| u.prompt))
        .unwrap_or(0);
    r.completion_tokens = bounds::tokens("completion_tokens", row.completion_tokens)?
        .or(usage.and_then(|u| u.completion))
        .unwrap_or(0);
    r.reported_cost_usd = bounds::cost("spend", row.spend)?;
    let merged = Tokens {
        prompt: None,
        completion: None,
        reasoning: usage.and_then(|u| u.reasoning).or(extra.and_then(|u| u.reasoning)),
        cached: usage.and_then(|u| u.cached).or(extra.and_then(|u| u.cached)),
        cache_creation: usage
            .and_then(|u| u.cache_creation)
            .or(extra.and_then(|u| u.cache_creation)),
    };
    account(&mut r, Some(&merged), prices, None);
    r.user_agent = meta
        .user_agent
        .clone()
        .or_else(|| user_agent_from_tags(row.request_tags));
    r.endpoint = row.call_type.as_deref().and_then(endpoint_of);
    // The row's columns first; the metadata carries the same for rows written without them.
    apply_caller(
        &mut r,
        meta.user_api_key_alias.clone(),
        given(row.api_key.clone()).or(meta.user_api_key.clone()),
        given(row.user.clone()).or(meta.user_api_key_user_id.clone()),
        given(row.team_id.clone()).or(meta.user_api_key_team_id.clone()),
    );
    if r.status == RecordStatus::Failure {
        r.error_type = err.error_class.clone();
        r.error_message = error_message;
    }
    r.prompt_sha256 = json_text(row.messages).and_then(|m| prompt_hash(&r.model_group, &m));
    let headers = [meta.requester_custom_headers.as_ref()];
    r.workflow = header(&headers, "x-tollgate-workflow");
    apply_step_tag(&mut r, header(&headers, "x-tollgate-step"));
    bounds::check_record(&r)?;
    Ok(r)
}

/// `request_tags` carries `"User-Agent: RooCode/1.0.4"`; the longest such tag is the full agent.
/// The endpoint a LiteLLM call type was served on, in tollgate's words (`Record::endpoint`);
/// the async variants (`acompletion`, `aresponses`, …) are the same endpoints.
fn endpoint_of(call_type: &str) -> Option<String> {
    const ENDPOINTS: [(&str, &str); 9] = [
        ("completion", "chat"),
        ("text_completion", "completions"),
        ("embedding", "embeddings"),
        ("anthropic_messages", "messages"),
        ("responses", "responses"),
        ("image_generation", "images"),
        ("transcription", "transcriptions"),
        ("moderation", "moderations"),
        ("rerank", "rerank"),
    ];
    let find = |name: &str| ENDPOINTS.iter().find(|(c, _)| *c == name).map(|(_, e)| e.to_string());
    find(call_type).or_else(|| call_type.strip_prefix('a').and_then(find))
}

fn user_agent_from_tags(raw: Option<&RawValue>) -> Option<String> {
    let text = json_text(raw)?;
    let tags: Vec<String> = serde_json::from_str(&text).ok()?;
    tags.iter()
        .filter_map(|t| t.strip_prefix("User-Agent: "))
        .max_by_key(|t| t.len())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_types_name_their_endpoints() {
        for (call_type, endpoint) in [
            ("acompletion", Some("chat")),
            ("completion", Some("chat")),
            ("anthropic_messages", Some("messages")),
            ("aresponses", Some("responses")),
            ("aembedding", Some("embeddings")),
            ("atext_completion", Some("completions")),
            ("pass_through_endpoint", None),
        ] {
            assert_eq!(endpoint_of(call_type).as_deref(), endpoint, "{call_type}");
        }
    }

    #[test]
    fn prompt_hash_is_the_core_fingerprint() {
        let m = r#"[{"role": "user", "content": "hi"}]"#;
        assert_eq!(
            prompt_hash("deepseek-v3.2", &format!(" {m}\n")),
            Some(tollgate_core::record::prompt_sha256(
                format!("deepseek-v3.2\n{m}").as_bytes()
            ))
        );
        assert_eq!(prompt_hash("g", "[]"), None);
    }

    /// Header maps are accepted or refused as `HashMap<String, Value>` accepts or refuses them,
    /// with the same error, and keep the last of a repeated name.
    #[test]
    fn headers_read_as_the_map_did() {
        type Map = std::collections::HashMap<String, serde_json::Value>;
        for text in [
            r#"{"User-Agent": "a", "accept": [1, {"x": null}], "user-agent": "b"}"#,
            r#"{"x-session-id": "s", "x-session-id": "t", "other": 1e400}"#,
            r#"{"other": 18446744073709551616, "x": -1.5e-7, "y": "\u00e9"}"#,
            r#"{"other": [[[]]], "x-tollgate-step": 2}"#,
            r#""not a map""#,
            r#"[1, 2]"#,
            r#"{"a": tru}"#,
        ] {
            let old = serde_json::from_str::<Map>(text).map_err(|e| e.to_string());
            let new = serde_json::from_str::<Headers>(text).map_err(|e| e.to_string());
            assert_eq!(old.as_ref().err(), new.as_ref().err(), "{text}");
            if let (Ok(old), Ok(new)) = (old, new) {
                for (k, v) in &new.0 {
                    assert_eq!(old.get(k), Some(v), "{text}");
                }
            }
        }
    }

    /// The fixture's lines take the fast path (a refusal would still give the right record, only
    /// slowly, so this is checked apart).
    #[test]
    fn real_payload_lines_are_read_field_by_field() {
        let text = include_str!("../../tests/fixtures/payload.jsonl");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut members = Members::new(line.as_bytes(), "messages").unwrap();
            let p = Payload::deserialize(&mut members).unwrap();
            assert!(p.litellm_call_id.is_some() && p.metadata.is_some());
            assert!(members.held().is_some());
        }
    }
}
