//! One finding: its severity, the numbers behind it, and its text in each language. Kept apart
//! from the detection in [`findings`](crate::findings) because the [`Report`](crate::Report)
//! holds findings while the detection reads the report.
//!
//! The text is generated from the finding's `data` for a language, so a report built once can
//! be rendered in English and Turkish.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::i18n::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            Severity::Critical => lang.pick("critical", "kritik"),
            Severity::Warning => lang.pick("warning", "uyarı"),
            Severity::Info => lang.pick("info", "bilgi"),
        }
    }
}

/// The numbers behind a finding; its text is generated from these.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FindingData {
    CacheDisabled {
        off_records: u64,
        total: u64,
        litellm: bool,
        repeats: u64,
        potential_usd: f64,
    },
    /// No record says whether a cache was configured (payload logs carry `cache_key` only on
    /// hits), but nothing ever hit and exact repeats kept reaching the provider: the cache is off
    /// or not working. Same id as [`FindingData::CacheDisabled`]; the evidence differs.
    CacheOffInferred {
        requests: u64,
        repeats: u64,
        streamed: u64,
        potential_usd: f64,
        litellm: bool,
    },
    CacheNoHits {
        requests: u64,
        litellm: bool,
    },
    CacheRepeatsMissed {
        repeats: u64,
        streamed: u64,
        potential_usd: f64,
        cache_state: String,
        litellm: bool,
    },
    ProviderCacheLow {
        prompt_tokens: u64,
        cached_tokens: u64,
        share: f64,
        median_prompt: f64,
        requests: u64,
    },
    ModelAlwaysFailing {
        failures: u64,
        error: String,
        upstream: String,
    },
    HighErrorRate {
        failures: u64,
        requests: u64,
        rate: f64,
        error: String,
    },
    UnpricedModel {
        requests: u64,
        tokens: u64,
        upstream: String,
    },
    /// The logging gateway wrote `response_cost: 0` for requests that used tokens of a model the
    /// price table prices: it had no price for it. Same id as [`FindingData::UnpricedModel`].
    LoggedAsFree {
        requests: u64,
        tokens: u64,
        upstream: String,
        recomputed_usd: f64,
        input_per_token: Option<f64>,
        output_per_token: Option<f64>,
        litellm: bool,
    },
    CostMismatch {
        requests: u64,
        recomputed_usd: f64,
        logged_usd: f64,
    },
    ReasoningHeavy {
        reasoning_tokens: u64,
        completion_tokens: u64,
        share: f64,
        cost_usd: f64,
    },
    SlowRequests {
        slow: u64,
        requests: u64,
        p95_ms: f64,
        threshold_ms: f64,
    },
    HighOverhead {
        samples: u64,
        p50_ms: f64,
        p95_ms: f64,
        max_ms: f64,
    },
    TruncatedOutputs {
        truncated: u64,
        requests: u64,
        max_tokens: Vec<u64>,
    },
    WorkflowStepMissing {
        workflow: String,
        role: String,
        index: Option<u32>,
        runs: u64,
        total_runs: u64,
        reason: String,
    },
    OversizedPrompts {
        requests: u64,
        max_prompt: u64,
        max_input: Option<u64>,
    },
    /// A virtual key near its budget, from the key store (records carry no budgets).
    BudgetNearLimit {
        /// The key's alias, else its `key_name` (`sk-...abcd`); never the token.
        key: String,
        /// The limit reached: `max_budget` (80 % of it or more) or `soft_budget` (all of it).
        limit: String,
        spend_usd: f64,
        /// The value of that limit.
        budget_usd: f64,
        /// spend / budget.
        share: f64,
        max_budget_usd: Option<f64>,
        soft_budget_usd: Option<f64>,
        budget_duration: Option<String>,
        /// The start of the budget period the spend belongs to, when the store keeps it.
        period_start: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    /// The model group concerned, if any.
    pub model: Option<String>,
    pub message: String,
    pub evidence: String,
    pub cause: String,
    pub fix: String,
    /// Estimated money a fix would save over the report's window.
    pub savings_usd: Option<f64>,
    /// Example request ids (the unique key: `litellm_call_id` / tollgate's `request_id`).
    pub request_ids: Vec<String>,
    pub data: FindingData,
}

impl Finding {
    pub(crate) fn new(
        severity: Severity,
        model: Option<&str>,
        savings_usd: Option<f64>,
        request_ids: Vec<String>,
        data: FindingData,
        lang: Lang,
    ) -> Self {
        let mut f = Finding {
            id: data.id().into(),
            severity,
            model: model.map(str::to_string),
            message: String::new(),
            evidence: String::new(),
            cause: String::new(),
            fix: String::new(),
            savings_usd,
            request_ids,
            data,
        };
        f.localize(lang);
        f
    }

    /// Regenerates the texts in `lang`.
    pub fn localize(&mut self, lang: Lang) {
        let t = texts(&self.data, self.model.as_deref().unwrap_or(""), lang);
        self.message = t.0;
        self.evidence = t.1;
        self.cause = t.2;
        self.fix = t.3;
    }
}

impl FindingData {
    pub fn id(&self) -> &'static str {
        match self {
            FindingData::CacheDisabled { .. } => "cache_disabled",
            FindingData::CacheOffInferred { .. } => "cache_disabled",
            FindingData::CacheNoHits { .. } => "cache_no_hits",
            FindingData::CacheRepeatsMissed { .. } => "cache_repeats_missed",
            FindingData::ProviderCacheLow { .. } => "provider_cache_low",
            FindingData::ModelAlwaysFailing { .. } => "model_always_failing",
            FindingData::HighErrorRate { .. } => "high_error_rate",
            FindingData::UnpricedModel { .. } => "unpriced_model",
            FindingData::LoggedAsFree { .. } => "unpriced_model",
            FindingData::CostMismatch { .. } => "cost_mismatch",
            FindingData::ReasoningHeavy { .. } => "reasoning_heavy",
            FindingData::SlowRequests { .. } => "slow_requests",
            FindingData::HighOverhead { .. } => "high_overhead",
            FindingData::TruncatedOutputs { .. } => "truncated_outputs",
            FindingData::WorkflowStepMissing { .. } => "workflow_step_missing",
            FindingData::OversizedPrompts { .. } => "oversized_prompts",
            FindingData::BudgetNearLimit { .. } => "budget_near_limit",
        }
    }
}

/// A per-token price as LiteLLM's setting writes it (`2.8e-7`).
fn per_token(p: &Option<f64>) -> String {
    p.map(|v| format!("{v:e}")).unwrap_or_else(|| "…".into())
}

/// A per-token price per 1M tokens (`$0.28`), without float noise.
fn per_mtok(p: &Option<f64>) -> String {
    match p {
        Some(v) => {
            let s = format!("{:.6}", v * 1e6);
            format!("${}", s.trim_end_matches('0').trim_end_matches('.'))
        }
        None => "?".into(),
    }
}

/// (message, evidence, cause, fix) for a finding in a language.
fn texts(d: &FindingData, model: &str, l: Lang) -> (String, String, String, String) {
    let en = l == Lang::En;
    let n = |x: u64| l.int(x);
    let usd = |x: f64| l.usd(x);
    let pct = |x: f64| l.pct(x);
    let ms = |x: f64| l.ms(x);
    match d {
        FindingData::CacheDisabled {
            off_records,
            total,
            litellm,
            repeats,
            potential_usd,
        } => {
            let repeat_txt = if *repeats > 0 {
                if en {
                    format!(
                        " {} exact repeat requests went to the provider ({}).",
                        n(*repeats),
                        usd(*potential_usd)
                    )
                } else {
                    format!(
                        " {} birebir tekrar eden istek sağlayıcıya gitti ({}).",
                        n(*repeats),
                        usd(*potential_usd)
                    )
                }
            } else {
                String::new()
            };
            if *litellm {
                if en {
                    (
                        "LiteLLM's response cache is off".into(),
                        format!("{} of {} requests logged cache_key \"Cache OFF\"; no cache hits.{repeat_txt}", n(*off_records), n(*total)),
                        "LiteLLM logs cache_key \"Cache OFF\" when its cache object is absent: `cache: true` was not set under `litellm_settings` when the proxy started. A cache block under `general_settings`, or `cache:` written as a mapping, is ignored without a warning, so a restart does not help. (`cached_tokens` in the usage is the provider's prompt cache, a different thing.)".into(),
                        "In config.yaml set `litellm_settings: {cache: true, cache_params: {type: redis, host: …, port: …, ttl: 600}}` (`type: local` for a single instance), restart once, and check that a repeated request logs `cache_hit: true`.".into(),
                    )
                } else {
                    (
                        "LiteLLM yanıt önbelleği kapalı".into(),
                        format!("{} isteğin {} tanesi cache_key \"Cache OFF\" kaydetti; hiç cache hit yok.{repeat_txt}", n(*total), n(*off_records)),
                        "LiteLLM, önbellek nesnesi yoksa cache_key olarak \"Cache OFF\" yazar: proxy başlarken `litellm_settings` altında `cache: true` yoktu. `general_settings` altındaki bir cache bloğu ya da eşleme (mapping) olarak yazılmış `cache:` uyarı vermeden yok sayılır; yeniden başlatmak işe yaramaz. (Kullanımdaki `cached_tokens` sağlayıcının prompt önbelleğidir, başka bir şeydir.)".into(),
                        "config.yaml içinde `litellm_settings: {cache: true, cache_params: {type: redis, host: …, port: …, ttl: 600}}` ayarla (tek sunucu için `type: local`), bir kez yeniden başlat ve tekrarlanan bir isteğin `cache_hit: true` kaydettiğini kontrol et.".into(),
                    )
                }
            } else if en {
                (
                    "The gateway's response cache is off".into(),
                    format!("{} of {} requests ran with no response cache configured.{repeat_txt}", n(*off_records), n(*total)),
                    "tollgate's config has no enabled `cache` section.".into(),
                    "Enable the response cache in tollgate's config, in LiteLLM's syntax: `litellm_settings: {cache: true, cache_params: {type: local, ttl: 600}}` (or `type: redis`); tollgate reloads on save and repeated prompts are then answered without a provider call.".into(),
                )
            } else {
                (
                    "Gateway yanıt önbelleği kapalı".into(),
                    format!("{} isteğin {} tanesi yanıt önbelleği olmadan çalıştı.{repeat_txt}", n(*total), n(*off_records)),
                    "tollgate yapılandırmasında etkin bir `cache` bölümü yok.".into(),
                    "tollgate yapılandırmasında yanıt önbelleğini LiteLLM sözdizimiyle aç: `litellm_settings: {cache: true, cache_params: {type: local, ttl: 600}}` (ya da `type: redis`); tollgate kaydedince yeniden yükler ve tekrar eden promptlar sağlayıcıya gitmeden yanıtlanır.".into(),
                )
            }
        }
        FindingData::CacheOffInferred {
            requests,
            repeats,
            streamed,
            potential_usd,
            litellm,
        } => {
            let who = if *litellm { "LiteLLM" } else { "gateway" };
            if en {
                (
                    format!(
                        "The response cache is off (or not working){}",
                        if *litellm { " in LiteLLM" } else { "" }
                    ),
                    format!(
                        "0 cache hits in {} requests, yet {} of them repeated an earlier prompt exactly and still reached the provider ({} streamed), costing {}. A working cache answers such repeats itself. (These logs do not record whether a cache was configured: a StandardLoggingPayload names the cache only on a hit.)",
                        n(*requests),
                        n(*repeats),
                        n(*streamed),
                        usd(*potential_usd)
                    ),
                    if *litellm {
                        "LiteLLM only caches when `cache: true` sits under `litellm_settings` when the proxy starts. A cache block under `general_settings`, or `cache:` written as a mapping, is ignored without a warning, so the proxy runs with no cache at all. (`cached_tokens` in the usage is the provider's prompt cache, a different thing.)".into()
                    } else {
                        format!(
                            "The {who}'s response cache is not enabled, or every repeat bypassed it (e.g. `cache: {{no-cache: true}}` sent by the client)."
                        )
                    },
                    if *litellm {
                        "In config.yaml set `litellm_settings: {cache: true, cache_params: {type: redis, host: …, port: …, ttl: 600}}` (`type: local` for a single instance), restart once, send the same request twice and check that the second logs `cache_hit: true`. tollgate reads the same block and shows `cache: on` at startup and in `/health/readiness`.".into()
                    } else {
                        "Enable the response cache: `litellm_settings: {cache: true, cache_params: {type: local, ttl: 600}}` (or `type: redis`); tollgate reloads on save, and its startup line and `/health/readiness` say whether the cache is on.".into()
                    },
                )
            } else {
                (
                    format!(
                        "Yanıt önbelleği kapalı (ya da çalışmıyor){}",
                        if *litellm { ": LiteLLM" } else { "" }
                    ),
                    format!(
                        "{} istekte 0 cache hit; yine de {} istek önceki bir promptu birebir tekrarladı ve sağlayıcıya gitti (bunların {} tanesi stream), maliyetleri {}. Çalışan bir önbellek bu tekrarları kendisi yanıtlar. (Bu loglar önbelleğin yapılandırılıp yapılandırılmadığını yazmaz: StandardLoggingPayload önbelleği yalnızca hit'te anar.)",
                        n(*requests),
                        n(*repeats),
                        n(*streamed),
                        usd(*potential_usd)
                    ),
                    if *litellm {
                        "LiteLLM yalnızca proxy başlarken `litellm_settings` altında `cache: true` varsa önbellek kullanır. `general_settings` altındaki bir cache bloğu ya da eşleme (mapping) olarak yazılmış `cache:` uyarı vermeden yok sayılır; proxy hiç önbelleksiz çalışır. (Kullanımdaki `cached_tokens` sağlayıcının prompt önbelleğidir, başka bir şeydir.)".into()
                    } else {
                        "Gateway'in yanıt önbelleği açık değil ya da her tekrar onu atladı (ör. istemcinin gönderdiği `cache: {no-cache: true}`).".into()
                    },
                    if *litellm {
                        "config.yaml içinde `litellm_settings: {cache: true, cache_params: {type: redis, host: …, port: …, ttl: 600}}` ayarla (tek sunucu için `type: local`), bir kez yeniden başlat, aynı isteği iki kez gönder ve ikincisinin `cache_hit: true` kaydettiğini kontrol et. tollgate aynı bloğu okur ve başlangıçta ve `/health/readiness` içinde `cache: on` gösterir.".into()
                    } else {
                        "Yanıt önbelleğini aç: `litellm_settings: {cache: true, cache_params: {type: local, ttl: 600}}` (ya da `type: redis`); tollgate kaydedince yeniden yükler, başlangıç satırı ve `/health/readiness` önbelleğin açık olup olmadığını söyler.".into()
                    },
                )
            }
        }
        FindingData::CacheNoHits { requests, litellm } => {
            if en {
                (
                    "The response cache is on but never hit".into(),
                    format!("0 cache hits in {} successful requests.", n(*requests)),
                    "No two requests were identical (every prompt differs, e.g. a timestamp in the system prompt), or the TTL is shorter than the time between repeats.".into(),
                    if *litellm {
                        "Send the same request twice and check `cache_hit`; remove volatile content from prompts; raise `cache_params.ttl`; set `cache_params.supported_call_types` to include the calls you make.".into()
                    } else {
                        "Send the same request twice and check the record's `cache` field; remove volatile content from prompts; raise the cache TTL.".into()
                    },
                )
            } else {
                (
                    "Yanıt önbelleği açık ama hiç hit yok".into(),
                    format!("{} başarılı istekte 0 cache hit.", n(*requests)),
                    "Birebir aynı iki istek yok (her prompt farklı, ör. sistem promptunda zaman damgası) ya da TTL tekrarlar arasındaki süreden kısa.".into(),
                    "Aynı isteği iki kez gönderip cache_hit alanına bak; promptlardan değişken içeriği çıkar; TTL'yi artır.".into(),
                )
            }
        }
        FindingData::CacheRepeatsMissed {
            repeats,
            streamed,
            potential_usd,
            cache_state,
            litellm,
        } => {
            let on = cache_state != "unknown";
            if en {
                (
                    "Exact repeat requests were sent to the provider".into(),
                    format!(
                        "{} successful requests repeated an earlier prompt exactly and still reached the provider ({} of them streamed); they cost {}.",
                        n(*repeats),
                        n(*streamed),
                        usd(*potential_usd)
                    ),
                    if on {
                        "The cache stored the answer too late (concurrent identical requests), the TTL expired, or these requests bypassed the cache; streamed requests are the usual suspect.".into()
                    } else {
                        "These logs do not say whether a response cache was configured (a StandardLoggingPayload sets `cache_key` only on hits); either it is off or these requests bypassed it.".into()
                    },
                    if *litellm {
                        "Make sure `litellm_settings.cache: true` is set, check `cache_params.ttl`, and that streamed calls are cached; add SpendLogs rows to the report to see the cache state.".into()
                    } else {
                        "Check the cache TTL and whether the client disables caching per request.".into()
                    },
                )
            } else {
                (
                    "Birebir tekrar eden istekler sağlayıcıya gönderildi".into(),
                    format!(
                        "{} başarılı istek önceki bir promptu birebir tekrarladı ve yine de sağlayıcıya gitti (bunların {} tanesi stream); maliyetleri {}.",
                        n(*repeats),
                        n(*streamed),
                        usd(*potential_usd)
                    ),
                    if on {
                        "Yanıt önbelleğe geç yazıldı (eşzamanlı aynı istekler), TTL doldu ya da bu istekler önbelleği atladı; genellikle stream istekler.".into()
                    } else {
                        "Bu loglar yanıt önbelleğinin açık olup olmadığını söylemiyor (StandardLoggingPayload `cache_key`'i yalnızca hit'te doldurur); ya kapalı ya da bu istekler önbelleği atladı.".into()
                    },
                    "`litellm_settings.cache: true` ayarını, `cache_params.ttl` değerini ve stream isteklerin önbelleğe alındığını kontrol et; önbellek durumunu görmek için rapora SpendLogs satırlarını da ekle.".into(),
                )
            }
        }
        FindingData::ProviderCacheLow {
            prompt_tokens,
            cached_tokens,
            share,
            median_prompt,
            requests,
        } => {
            if en {
                (
                    format!("Provider prompt caching barely works for {model}"),
                    format!(
                        "{} of {} prompt tokens were served from the provider's prompt cache ({}) over {} requests with a median prompt of {} tokens.",
                        n(*cached_tokens),
                        n(*prompt_tokens),
                        pct(*share),
                        n(*requests),
                        l.num(*median_prompt, 0)
                    ),
                    "Provider prompt caching (DeepSeek, Gemini, OpenAI: automatic on an identical prefix; Anthropic: with cache_control) needs the start of the prompt to stay byte-identical between calls; a changing system prompt, tool list or message order defeats it. This is not the gateway's response cache.".into(),
                    "Keep the system prompt and tool definitions first and unchanged, append new turns at the end, and for Anthropic models add cache_control breakpoints.".into(),
                )
            } else {
                (
                    format!("{model} için sağlayıcı prompt önbelleği neredeyse hiç çalışmıyor"),
                    format!(
                        "Medyan promptu {} token olan {} istekte {} prompt tokenın {} tanesi sağlayıcının prompt önbelleğinden geldi ({}).",
                        l.num(*median_prompt, 0),
                        n(*requests),
                        n(*prompt_tokens),
                        n(*cached_tokens),
                        pct(*share)
                    ),
                    "Sağlayıcı prompt önbelleği (DeepSeek, Gemini, OpenAI: aynı önekte otomatik; Anthropic: cache_control ile) promptun başının çağrılar arasında birebir aynı kalmasını ister; değişen sistem promptu, araç listesi ya da mesaj sırası bunu bozar. Bu, gateway'in yanıt önbelleği değildir.".into(),
                    "Sistem promptunu ve araç tanımlarını başta ve değişmeden tut, yeni mesajları sona ekle; Anthropic modellerinde cache_control kırılma noktaları ekle.".into(),
                )
            }
        }
        FindingData::ModelAlwaysFailing {
            failures,
            error,
            upstream,
        } => {
            if en {
                (
                    format!("{model} failed on every request"),
                    format!("{} requests, 0 succeeded (upstream {upstream}). Error: {error}", n(*failures)),
                    "The deployment cannot serve: the provider answers with an error (overloaded, wrong model name, bad key or api_base). Every workflow step routed to it is lost, which is why its output never appears downstream.".into(),
                    format!("Send one request straight to the provider with the same model name and key; fix the deployment of `{model}` or route the step to a working model, and add a fallback (LiteLLM: `router_settings.fallbacks`)."),
                )
            } else {
                (
                    format!("{model} her istekte başarısız oldu"),
                    format!("{} istek, 0 başarılı (upstream {upstream}). Hata: {error}", n(*failures)),
                    "Bu dağıtım hizmet veremiyor: sağlayıcı hata dönüyor (aşırı yük, yanlış model adı, hatalı anahtar ya da api_base). Buna yönlendirilen her workflow adımı kayboluyor; çıktısının sonraki adımlarda hiç görünmemesinin nedeni bu.".into(),
                    format!("Aynı model adı ve anahtarla sağlayıcıya doğrudan bir istek gönder; `{model}` dağıtımını düzelt ya da adımı çalışan bir modele yönlendir ve bir fallback ekle (LiteLLM: `router_settings.fallbacks`)."),
                )
            }
        }
        FindingData::HighErrorRate {
            failures,
            requests,
            rate,
            error,
        } => {
            if en {
                (
                    format!("{model} fails often"),
                    format!("{} of {} requests failed ({}). Most common error: {error}", n(*failures), n(*requests), pct(*rate)),
                    "Provider errors (rate limits, overload, timeouts) or invalid requests from the client.".into(),
                    "Look at the error breakdown; add retries with backoff and a fallback model for provider errors; fix the client for 4xx errors.".into(),
                )
            } else {
                (
                    format!("{model} sık hata veriyor"),
                    format!("{} isteğin {} tanesi başarısız ({}). En sık hata: {error}", n(*requests), n(*failures), pct(*rate)),
                    "Sağlayıcı hataları (hız sınırı, aşırı yük, zaman aşımı) ya da istemciden gelen geçersiz istekler.".into(),
                    "Hata dağılımına bak; sağlayıcı hataları için geri çekilmeli yeniden deneme ve fallback model ekle; 4xx hataları için istemciyi düzelt.".into(),
                )
            }
        }
        FindingData::UnpricedModel {
            requests,
            tokens,
            upstream,
        } => {
            if en {
                (
                    format!("{model} has no price: its cost is logged as $0"),
                    format!("{} requests used {} tokens (upstream {upstream}) with no price in the table and a logged cost of 0 or none.", n(*requests), n(*tokens)),
                    "The model name is not in the price table (a custom name, an alias or a new model), so cost tracking silently counts it as free.".into(),
                    "Add the model's prices (`input_cost_per_token`, `output_cost_per_token`) to the price table (`--prices FILE` here; `model_info` in LiteLLM's config).".into(),
                )
            } else {
                (
                    format!("{model} için fiyat yok: maliyeti $0 olarak kaydedilmiş"),
                    format!("{} istek {} token kullandı (upstream {upstream}); fiyat tablosunda fiyatı yok ve kaydedilen maliyet 0 ya da boş.", n(*requests), n(*tokens)),
                    "Model adı fiyat tablosunda yok (özel ad, takma ad ya da yeni model); maliyet takibi onu sessizce bedava sayıyor.".into(),
                    "Modelin fiyatlarını (`input_cost_per_token`, `output_cost_per_token`) fiyat tablosuna ekle (burada `--prices DOSYA`; LiteLLM yapılandırmasında `model_info`).".into(),
                )
            }
        }
        FindingData::LoggedAsFree {
            requests,
            tokens,
            upstream,
            recomputed_usd,
            input_per_token,
            output_per_token,
            litellm,
        } => {
            let rate = |x: &Option<f64>| per_mtok(x);
            let logger = if *litellm { "LiteLLM" } else { "The logging gateway" };
            if en {
                (
                    format!("{model} is logged as free: the logger had no price for {upstream}"),
                    format!(
                        "{} requests used {} tokens and every one was logged with a cost of $0. At {upstream}'s prices ({} input, {} output per 1M tokens) they cost {}: the logged spend understates the real one by {}.",
                        n(*requests),
                        n(*tokens),
                        rate(input_per_token),
                        rate(output_per_token),
                        usd(*recomputed_usd),
                        usd(*recomputed_usd)
                    ),
                    format!(
                        "{logger} found no price for {upstream} in its price map, so it logged $0 without a warning. Zero logged for requests that used tokens has no other cause."
                    ),
                    if *litellm {
                        format!(
                            "Give the deployment its price in LiteLLM's config.yaml: under the model's `litellm_params` (or `model_info`) set `input_cost_per_token` and `output_cost_per_token` (per token, e.g. {} and {}), then restart. tollgate already prices {upstream} and records its real cost.",
                            per_token(input_per_token),
                            per_token(output_per_token)
                        )
                    } else {
                        format!(
                            "Add the price for {upstream} to the logging gateway's price map (`input_cost_per_token`, `output_cost_per_token`). tollgate already prices it."
                        )
                    },
                )
            } else {
                let logger = if *litellm { "LiteLLM" } else { "Log yazan gateway" };
                (
                    format!("{model} bedava olarak kaydedilmiş: log yazanın {upstream} için fiyatı yoktu"),
                    format!(
                        "{} istek {} token kullandı ve her biri $0 maliyetle kaydedildi. {upstream} fiyatlarıyla (1M token başına girdi {}, çıktı {}) maliyetleri {}: kaydedilen harcama gerçeğinden {} eksik.",
                        n(*requests),
                        n(*tokens),
                        rate(input_per_token),
                        rate(output_per_token),
                        usd(*recomputed_usd),
                        usd(*recomputed_usd)
                    ),
                    format!(
                        "{logger} fiyat listesinde {upstream} için fiyat bulamadı ve uyarı vermeden $0 yazdı. Token kullanmış isteklerin $0 kaydedilmesinin başka bir nedeni yok."
                    ),
                    if *litellm {
                        format!(
                            "LiteLLM'in config.yaml dosyasında modelin `litellm_params` (ya da `model_info`) altına `input_cost_per_token` ve `output_cost_per_token` yaz (token başına, ör. {} ve {}), sonra yeniden başlat. tollgate {upstream} fiyatını zaten biliyor ve gerçek maliyeti kaydediyor.",
                            per_token(input_per_token),
                            per_token(output_per_token)
                        )
                    } else {
                        format!(
                            "{upstream} fiyatını log yazan gateway'in fiyat listesine ekle (`input_cost_per_token`, `output_cost_per_token`). tollgate onu zaten fiyatlandırıyor."
                        )
                    },
                )
            }
        }
        FindingData::CostMismatch {
            requests,
            recomputed_usd,
            logged_usd,
        } => {
            if en {
                (
                    format!("Logged cost of {model} differs from the price table"),
                    format!("Over {} requests the log says {}, the price table gives {} (difference {}).", n(*requests), usd(*logged_usd), usd(*recomputed_usd), usd(recomputed_usd - logged_usd)),
                    "The logging gateway used different prices (an outdated price map, a custom price, a discount) or counted tokens differently (cached or reasoning tokens).".into(),
                    "Check which prices are right for your contract and pass them with `--prices`; update the gateway's price map.".into(),
                )
            } else {
                (
                    format!("{model} için kaydedilen maliyet fiyat tablosundan farklı"),
                    format!("{} istekte log {} diyor, fiyat tablosu {} veriyor (fark {}).", n(*requests), usd(*logged_usd), usd(*recomputed_usd), usd(recomputed_usd - logged_usd)),
                    "Log yazan gateway farklı fiyatlar kullandı (eski fiyat listesi, özel fiyat, indirim) ya da tokenları farklı saydı (önbellekli ya da reasoning tokenlar).".into(),
                    "Sözleşmene göre doğru fiyatları belirle ve `--prices` ile ver; gateway'in fiyat listesini güncelle.".into(),
                )
            }
        }
        FindingData::ReasoningHeavy {
            reasoning_tokens,
            completion_tokens,
            share,
            cost_usd,
        } => {
            if en {
                (
                    format!("Most of {model}'s output is reasoning"),
                    format!("{} of {} completion tokens are reasoning ({}), costing {}.", n(*reasoning_tokens), n(*completion_tokens), pct(*share), usd(*cost_usd)),
                    "The model thinks at length before answering; on simple steps this is paid for without improving the answer.".into(),
                    "Keep reasoning for planning and hard steps; lower `reasoning_effort` (or the thinking budget) for simple ones, or route them to a non-reasoning model.".into(),
                )
            } else {
                (
                    format!("{model} çıktısının çoğu reasoning"),
                    format!("{} completion tokenın {} tanesi reasoning ({}), maliyeti {}.", n(*completion_tokens), n(*reasoning_tokens), pct(*share), usd(*cost_usd)),
                    "Model yanıtlamadan önce uzun düşünüyor; basit adımlarda bunun bedeli ödeniyor ama yanıt iyileşmiyor.".into(),
                    "Reasoning'i planlama ve zor adımlar için tut; basit adımlarda `reasoning_effort`'u (ya da thinking bütçesini) düşür veya onları reasoning yapmayan bir modele yönlendir.".into(),
                )
            }
        }
        FindingData::SlowRequests {
            slow,
            requests,
            p95_ms,
            threshold_ms,
        } => {
            if en {
                (
                    format!("{model} is often slow"),
                    format!("{} of {} requests took longer than {} (p95 {}).", n(*slow), n(*requests), ms(*threshold_ms), ms(*p95_ms)),
                    "Long outputs (reasoning included), large prompts or a congested provider.".into(),
                    "Stream responses so users see the first token early; cap `max_tokens`; lower reasoning effort on simple steps; add a faster fallback.".into(),
                )
            } else {
                (
                    format!("{model} sık sık yavaş"),
                    format!("{} isteğin {} tanesi {} üzerinde sürdü (p95 {}).", n(*requests), n(*slow), ms(*threshold_ms), ms(*p95_ms)),
                    "Uzun çıktılar (reasoning dahil), büyük promptlar ya da yoğun sağlayıcı.".into(),
                    "İlk token erken görünsün diye stream kullan; `max_tokens`'ı sınırla; basit adımlarda reasoning'i azalt; daha hızlı bir fallback ekle.".into(),
                )
            }
        }
        FindingData::HighOverhead {
            samples,
            p50_ms,
            p95_ms,
            max_ms,
        } => {
            if en {
                (
                    "The gateway adds noticeable latency".into(),
                    format!("Gateway overhead over {} requests: p50 {}, p95 {}, max {}.", n(*samples), ms(*p50_ms), ms(*p95_ms), ms(*max_ms)),
                    "Work done in the gateway on the request path: synchronous logging callbacks, database writes, a slow cache backend, or CPU starvation.".into(),
                    "Move logging off the request path (batch writers), check the cache and database latency, and give the gateway its own cores.".into(),
                )
            } else {
                (
                    "Gateway belirgin gecikme ekliyor".into(),
                    format!("{} istekte gateway ek yükü: p50 {}, p95 {}, en yüksek {}.", n(*samples), ms(*p50_ms), ms(*p95_ms), ms(*max_ms)),
                    "İstek yolunda gateway içinde yapılan iş: senkron log callback'leri, veritabanı yazmaları, yavaş önbellek ya da CPU yetersizliği.".into(),
                    "Loglamayı istek yolundan çıkar (toplu yazıcılar), önbellek ve veritabanı gecikmesini kontrol et, gateway'e ayrı çekirdek ver.".into(),
                )
            }
        }
        FindingData::TruncatedOutputs {
            truncated,
            requests,
            max_tokens,
        } => {
            let limits = max_tokens.iter().map(|m| n(*m)).collect::<Vec<_>>().join(", ");
            if en {
                (
                    format!("{model} answers are cut off"),
                    format!("{} of {} successful answers ended with finish_reason \"length\"{}.", n(*truncated), n(*requests), if limits.is_empty() { String::new() } else { format!(" (max_tokens: {limits})") }),
                    "The output limit (`max_tokens`) is lower than what the task needs, or reasoning used up the budget.".into(),
                    "Raise `max_tokens` for these calls (within the model's output limit) or ask for shorter answers.".into(),
                )
            } else {
                (
                    format!("{model} yanıtları kesiliyor"),
                    format!(
                        "{} başarılı yanıtın {} tanesi finish_reason \"length\" ile bitti{}.",
                        n(*requests),
                        n(*truncated),
                        if limits.is_empty() {
                            String::new()
                        } else {
                            format!(" (max_tokens: {limits})")
                        }
                    ),
                    "Çıktı sınırı (`max_tokens`) görevin gerektirdiğinden düşük ya da reasoning bütçeyi tüketti."
                        .into(),
                    "Bu çağrılar için `max_tokens`'ı (modelin çıktı sınırı içinde) artır ya da daha kısa yanıt iste."
                        .into(),
                )
            }
        }
        FindingData::WorkflowStepMissing {
            workflow,
            role,
            index,
            runs,
            total_runs,
            reason,
        } => {
            let step = match index {
                Some(i) => format!("{role} (#{i})"),
                None => role.clone(),
            };
            let ev = match (reason.as_str(), en) {
                ("never_ran", true) => format!(
                    "Step {step} of workflow {workflow} never ran in {} runs.",
                    n(*total_runs)
                ),
                ("never_ran", false) => format!(
                    "{workflow} workflow'unun {step} adımı {} çalıştırmada hiç çalışmadı.",
                    n(*total_runs)
                ),
                ("skipped", true) => format!(
                    "Step {step} of workflow {workflow} is missing from {} of {} runs that reached a later step.",
                    n(*runs),
                    n(*total_runs)
                ),
                ("skipped", false) => format!(
                    "{workflow} workflow'unun {step} adımı, sonraki bir adıma ulaşan {} çalıştırmanın {} tanesinde yok.",
                    n(*total_runs),
                    n(*runs)
                ),
                (_, true) => format!(
                    "Step {step} of workflow {workflow} failed in every one of its {} runs.",
                    n(*runs)
                ),
                (_, false) => format!(
                    "{workflow} workflow'unun {step} adımı çalıştığı {} çalıştırmanın hepsinde başarısız oldu.",
                    n(*runs)
                ),
            };
            if en {
                (
                    format!("Workflow {workflow}: step {step} never produces output"),
                    ev,
                    "The step's model fails (see model_always_failing), the orchestrator skips it, or the client cannot call the workflow at all and only reaches the first step.".into(),
                    "Check the step's model on its own, give the step a fallback model, and run the workflow end to end through the gateway rather than from a client that only sees one model.".into(),
                )
            } else {
                (
                    format!("{workflow} workflow'u: {step} adımı hiç çıktı üretmiyor"),
                    ev,
                    "Adımın modeli başarısız oluyor (bkz. model_always_failing), orkestratör adımı atlıyor ya da istemci workflow'u hiç çağıramıyor ve yalnızca ilk adıma ulaşıyor.".into(),
                    "Adımın modelini tek başına dene, adıma bir fallback model ver ve workflow'u tek bir model gören bir istemciden değil, gateway üzerinden uçtan uca çalıştır.".into(),
                )
            }
        }
        FindingData::OversizedPrompts {
            requests,
            max_prompt,
            max_input,
        } => {
            let window = max_input.map(&n).unwrap_or_else(|| l.na().into());
            if en {
                (
                    format!("{model} requests hit the context window"),
                    format!("{} requests were near or over the model's limits (largest prompt {} tokens; context window {window}), or failed with a context-length error.", n(*requests), n(*max_prompt)),
                    "The client sends the whole conversation or asks for `max_tokens` equal to the whole context window, leaving no room for the prompt; the provider answers 400.".into(),
                    "Ask for a `max_tokens` well below the model's output limit, trim or summarise old turns, and keep prompts under ~80% of the context window.".into(),
                )
            } else {
                (
                    format!("{model} istekleri bağlam penceresine dayanıyor"),
                    format!("{} istek modelin sınırlarına yakın ya da üstündeydi (en büyük prompt {} token; bağlam penceresi {window}) ya da bağlam uzunluğu hatasıyla başarısız oldu.", n(*requests), n(*max_prompt)),
                    "İstemci tüm konuşmayı gönderiyor ya da `max_tokens`'ı tüm bağlam penceresine eşit istiyor, prompta yer kalmıyor; sağlayıcı 400 dönüyor.".into(),
                    "`max_tokens`'ı modelin çıktı sınırının epey altında iste, eski mesajları kırp ya da özetle, promptları bağlam penceresinin ~%80'inin altında tut.".into(),
                )
            }
        }
        FindingData::BudgetNearLimit {
            key,
            limit,
            spend_usd,
            budget_usd,
            share,
            max_budget_usd,
            soft_budget_usd: _,
            budget_duration,
            period_start,
        } => budget_texts(
            l,
            key,
            limit == "soft_budget",
            (*spend_usd, *budget_usd, *share, *max_budget_usd),
            budget_duration.as_deref(),
            *period_start,
        ),
    }
}

/// The texts of `budget_near_limit`. `figures`: spend, the limit reached, spend / limit, and
/// `max_budget` (which a soft-budget finding names too).
fn budget_texts(
    l: Lang,
    key: &str,
    soft: bool,
    figures: (f64, f64, f64, Option<f64>),
    duration: Option<&str>,
    start: Option<DateTime<Utc>>,
) -> (String, String, String, String) {
    let (spend, budget, share, max_budget) = figures;
    let en = l == Lang::En;
    let usd = |x: f64| l.usd(x);
    let pct = |x: f64| l.pct(x);
    let start = start.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
    let period = match (duration, start, en) {
        (Some(d), Some(t), true) => format!(" in the budget period that started {t} (budget_duration {d})"),
        (Some(d), Some(t), false) => format!(" ({t} tarihinde başlayan bütçe döneminde, budget_duration {d})"),
        (Some(d), None, true) => format!(" in the current budget period (budget_duration {d})"),
        (Some(d), None, false) => format!(" (geçerli bütçe döneminde, budget_duration {d})"),
        (None, _, true) => " since the key was created (no budget_duration: the spend never resets)".into(),
        (None, _, false) => " (anahtar oluşturulduğundan beri; budget_duration yok, harcama hiç sıfırlanmaz)".into(),
    };
    if soft {
        let max_part = match (max_budget, en) {
            (Some(m), true) => format!("; max_budget is {} ({})", usd(m), pct(spend / m)),
            (Some(m), false) => format!("; max_budget {} ({})", usd(m), pct(spend / m)),
            (None, true) => "; the key has no max_budget".into(),
            (None, false) => "; anahtarın max_budget değeri yok".into(),
        };
        return if en {
            (
                format!("Key {key} is past its soft budget"),
                format!(
                    "The key store records {} spent{period}: {} of soft_budget {}{max_part}.",
                    usd(spend),
                    pct(share),
                    usd(budget)
                ),
                "soft_budget is an alert threshold: the key keeps working, but its spend passed the level set to warn you.".into(),
                format!(
                    "If this spend is expected, raise `soft_budget` with `POST /key/update` (the key, or its token as `GET /key/list` lists it); if not, find what drives it{}.",
                    if max_budget.is_none() {
                        ", and set a `max_budget` so the gateway stops the spend at a limit"
                    } else {
                        ""
                    }
                ),
            )
        } else {
            (
                format!("{key} anahtarı soft_budget sınırını geçti"),
                format!(
                    "Anahtar deposuna göre harcama{period}: {}, soft_budget {} ({}){max_part}.",
                    usd(spend),
                    usd(budget),
                    pct(share)
                ),
                "soft_budget yalnızca bir uyarı eşiğidir: anahtar çalışmaya devam eder, ama harcaması uyarı için belirlenen düzeyi geçti.".into(),
                format!(
                    "Bu harcama bekleniyorsa `POST /key/update` ile (anahtarla ya da `GET /key/list` ile listelenen token'ıyla) `soft_budget` değerini yükselt; beklenmiyorsa harcamayı neyin artırdığını bul{}.",
                    if max_budget.is_none() {
                        " ve gateway harcamayı bir sınırda durdursun diye bir `max_budget` ayarla"
                    } else {
                        ""
                    }
                ),
            )
        };
    }
    let used_up = share >= 1.0;
    if en {
        (
            if used_up {
                format!("Key {key} has used up its budget")
            } else {
                format!("Key {key} is near its budget")
            },
            format!(
                "The key store records {} spent{period}: {} of max_budget {}. At max_budget the gateway refuses the key's requests with 429 budget_exceeded.",
                usd(spend),
                pct(share),
                usd(budget)
            ),
            if duration.is_some() {
                "The key's traffic spends its budget faster than its budget_duration period renews it.".into()
            } else {
                "The key has no budget_duration, so its spend only grows toward max_budget.".into()
            },
            format!(
                "If this spend is expected, raise the limit: `POST /key/update` with the key (or its token, as `GET /key/list` lists it) and a higher `max_budget`, {}. If not, find what drives the spend before the key's requests are refused.",
                if duration.is_some() {
                    "or a shorter `budget_duration` so the budget renews sooner"
                } else {
                    "or give the key a `budget_duration` (e.g. `\"30d\"`) so its spend starts from 0 each period"
                }
            ),
        )
    } else {
        (
            if used_up {
                format!("{key} anahtarı bütçesini tüketti")
            } else {
                format!("{key} anahtarı bütçesinin sınırına yaklaştı")
            },
            format!(
                "Anahtar deposuna göre harcama{period}: {}, max_budget {} ({}). max_budget'a ulaşılınca gateway anahtarın isteklerini 429 budget_exceeded ile reddeder.",
                usd(spend),
                usd(budget),
                pct(share)
            ),
            if duration.is_some() {
                "Anahtarın trafiği bütçeyi, budget_duration dönemi onu yenilemeden önce harcıyor.".into()
            } else {
                "Anahtarın budget_duration değeri yok; harcaması yalnızca max_budget'a doğru artar.".into()
            },
            format!(
                "Bu harcama bekleniyorsa sınırı yükselt: `POST /key/update` ile anahtarı (ya da `GET /key/list` ile listelenen token'ını) ve daha yüksek bir `max_budget` gönder, {}. Beklenmiyorsa, anahtarın istekleri reddedilmeden önce harcamayı neyin artırdığını bul.",
                if duration.is_some() {
                    "ya da bütçe daha erken yenilensin diye daha kısa bir `budget_duration` ver"
                } else {
                    "ya da harcaması her dönem sıfırdan başlasın diye anahtara bir `budget_duration` (ör. `\"30d\"`) ver"
                }
            ),
        )
    }
}
