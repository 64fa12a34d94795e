//! The report as a document: headings, paragraphs, tables and charts, in one language. The
//! markdown, HTML and terminal renderers only lay this out, so the three say the same thing.

use crate::finding::Severity;
use crate::i18n::Lang;
use crate::report::{Report, Spend, TokenDistribution};
use crate::stats::PERCENTILE_METHOD;

#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Requests and errors, cost, and latency per bucket of the over-time view.
    OverTime,
    CostPerModel,
    LatencyPerModel,
    TokensOverTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Title(String),
    H2(String),
    H3(String),
    /// Text; `backticks` mark code.
    P(String),
    Bullets(Vec<String>),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
        numeric: Vec<bool>,
    },
    Code(String),
    Chart(Chart),
}

pub(crate) fn table(head: &[&str], numeric: &[bool], rows: Vec<Vec<String>>) -> Block {
    Block::Table {
        head: head.iter().map(|s| s.to_string()).collect(),
        rows,
        numeric: numeric.to_vec(),
    }
}

fn status(lang: Lang, ok: Option<bool>) -> String {
    match ok {
        Some(true) => lang.pick("ok", "iyi").into(),
        Some(false) => lang.pick("check", "kontrol et").into(),
        None => lang.pick("unknown", "bilinmiyor").into(),
    }
}

pub(crate) fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn duration(lang: Lang, secs: f64) -> String {
    if secs < 60.0 {
        format!("{} s", lang.num(secs, 1))
    } else if secs < 3600.0 {
        format!("{} {}", lang.num(secs / 60.0, 1), lang.pick("min", "dk"))
    } else if secs < 172_800.0 {
        format!("{} {}", lang.num(secs / 3600.0, 1), lang.pick("h", "sa"))
    } else {
        format!("{} {}", lang.num(secs / 86_400.0, 1), lang.pick("days", "gün"))
    }
}

fn opt_ms(lang: Lang, v: Option<f64>) -> String {
    v.map_or_else(|| lang.na().into(), |v| lang.ms(v))
}

fn bucket_label(lang: Lang, label: &str) -> &'static str {
    match label {
        "small" => lang.pick("small", "küçük"),
        "medium" => lang.pick("medium", "orta"),
        _ => lang.pick("large", "büyük"),
    }
}

fn distribution_table(lang: Lang, d: &TokenDistribution) -> Block {
    let rows = d
        .buckets
        .iter()
        .map(|b| {
            let bounds = match b.upper {
                Some(u) => format!("{}–{}", lang.int(b.lower), lang.int(u.saturating_sub(1))),
                None => format!("≥ {}", lang.int(b.lower)),
            };
            let seen = match (b.min, b.max) {
                (Some(a), Some(z)) => format!("{}–{}", lang.int(a), lang.int(z)),
                _ => "-".into(),
            };
            vec![bucket_label(lang, &b.label).into(), bounds, lang.int(b.requests), seen]
        })
        .collect();
    table(
        &[
            lang.pick("Bucket", "Grup"),
            lang.pick("Bounds (tokens)", "Sınırlar (token)"),
            lang.pick("Requests", "İstek"),
            lang.pick("Observed", "Görülen aralık"),
        ],
        &[false, true, true, true],
        rows,
    )
}

pub fn compose(r: &Report, lang: Lang) -> Vec<Block> {
    let l = lang;
    let mut d = Vec::new();
    d.push(Block::Title(
        l.pick("LLM gateway log analysis", "LLM Gateway Log Analizi Raporu")
            .into(),
    ));
    d.push(Block::P(format!(
        "{}: {} – {} ({})",
        l.pick("Period", "Dönem"),
        time(r.period.start),
        time(r.period.end),
        duration(l, r.period.duration_s)
    )));

    // Inputs.
    if !r.inputs.is_empty() {
        let rows = r
            .inputs
            .iter()
            .map(|i| {
                vec![
                    format!("`{}`{}", i.input, if i.gzip { " (gzip)" } else { "" }),
                    i.format.clone().unwrap_or_else(|| {
                        if i.warning.is_some() {
                            l.pick("unreadable: see the warnings", "okunamadı: uyarılara bakın")
                        } else {
                            l.pick("skipped: not a log", "atlandı: log değil")
                        }
                        .into()
                    }),
                    l.int(i.records),
                    l.int(i.corrupt_lines),
                ]
            })
            .collect();
        d.push(table(
            &[
                l.pick("Input", "Girdi"),
                l.pick("Detected as", "Algılanan"),
                l.pick("Records", "Kayıt"),
                l.pick("Corrupt lines", "Bozuk satır"),
            ],
            &[false, false, true, true],
            rows,
        ));
        let corrupt: Vec<String> = r
            .inputs
            .iter()
            .flat_map(|i| {
                i.corrupt.iter().map(move |c| {
                    format!(
                        "`{}` {} {}: {}",
                        i.input,
                        l.pick("line", "satır"),
                        l.int(c.line),
                        c.error
                    )
                })
            })
            .collect();
        if !corrupt.is_empty() {
            d.push(Block::P(
                l.pick("Corrupt lines (skipped):", "Bozuk satırlar (atlandı):").into(),
            ));
            d.push(Block::Bullets(corrupt));
        }
        let implausible: u64 = r.inputs.iter().map(|i| i.implausible_rows).sum();
        if implausible > 0 {
            d.push(Block::P(format!(
                "{}: {}. {}",
                l.pick(
                    "Rows rejected for implausible values (negative, not finite, over 1,000,000,000 tokens or $10,000 for one request)",
                    "Olanaksız değerler nedeniyle reddedilen satırlar (negatif, sonlu olmayan, tek istek için 1.000.000.000 token ya da 10.000 $ üstü)"
                ),
                l.int(implausible),
                l.pick(
                    "They are among the corrupt lines above.",
                    "Yukarıdaki bozuk satırlar arasındadırlar."
                )
            )));
        }
        let warnings: Vec<String> = r
            .inputs
            .iter()
            .filter_map(|i| i.warning.as_ref().map(|w| format!("`{}`: {}", i.input, w)))
            .collect();
        if !warnings.is_empty() {
            d.push(Block::P(
                l.pick(
                    "Warnings (inputs not read to their end):",
                    "Uyarılar (sonuna kadar okunamayan girdiler):",
                )
                .into(),
            ));
            d.push(Block::Bullets(warnings));
        }
    }
    if r.duplicates > 0 || r.filtered_out > 0 {
        d.push(Block::P(format!(
            "{}: {}; {}: {}.",
            l.pick(
                "Duplicate records dropped (same request id)",
                "Atılan tekrar kayıtlar (aynı istek kimliği)"
            ),
            l.int(r.duplicates),
            l.pick("outside the filters", "filtre dışında kalan"),
            l.int(r.filtered_out)
        )));
    }

    if r.requests.total == 0 {
        d.push(Block::H2(l.pick("No requests", "İstek yok").into()));
        d.push(Block::P(
            l.pick(
                "The inputs hold no requests in the selected window.",
                "Girdilerde seçilen aralıkta istek yok.",
            )
            .into(),
        ));
        return d;
    }

    // 1. Overview.
    let q = &r.requests;
    d.push(Block::H2(l.pick("1. Overview", "1. Genel Özet").into()));
    let mut bullets = vec![
        format!("{}: {}", l.pick("Requests", "Toplam istek"), l.int(q.total)),
        format!(
            "{}: {} ({} / {})",
            l.pick("Success rate", "Başarı oranı"),
            l.pct_opt(q.success_rate),
            l.int(q.succeeded),
            l.int(q.total)
        ),
        format!("{}: {}", l.pick("Failed", "Başarısız"), l.int(q.failed)),
        format!("{}: {}", l.pick("Streamed", "Stream"), l.int(q.streamed)),
        format!(
            "{}: {}",
            l.pick("Models (model groups)", "Modeller (model grupları)"),
            r.models
                .iter()
                .map(|m| format!("{} ({})", m.model, l.int(m.requests)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    if !r.clients.is_empty() {
        bullets.push(format!(
            "{}: {}",
            l.pick("Clients (User-Agent)", "İstemciler (User-Agent)"),
            r.clients
                .iter()
                .take(5)
                .map(|c| format!("`{}` ({})", c.name, l.int(c.requests)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !r.endpoints.is_empty() {
        bullets.push(format!(
            "{}: {}",
            l.pick("Traffic by endpoint and client", "Uç nokta ve istemciye göre trafik"),
            r.endpoints
                .iter()
                .take(8)
                .map(|e| format!(
                    "`{}` · {} ({}, {})",
                    e.endpoint,
                    e.client,
                    l.int(e.requests),
                    l.usd(e.cost_usd)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if r.sessions.total > 0 {
        bullets.push(format!(
            "{}: {}",
            l.pick("Sessions", "Oturumlar"),
            l.int(r.sessions.total)
        ));
    }
    bullets.push(format!(
        "{}: {}",
        l.pick("Total cost", "Toplam maliyet"),
        l.usd(r.cost.total_usd)
    ));
    d.push(Block::Bullets(bullets));

    over_time(&mut d, r, l);

    // 2. Cache.
    let c = &r.cache;
    d.push(Block::H2(l.pick("2. Cache", "2. Önbellek (Cache) Durumu").into()));
    let litellm = r.sources.iter().any(|s| s.starts_with("litellm"));
    let state_text = match (c.state.as_str(), litellm) {
        ("off", _) if c.inferred => l.pick(
            "Gateway response cache: **off (or not working)**. The logs do not record the cache's state, but no request hit it and exact repeats still reached the provider; a working cache answers those itself.",
            "Gateway yanıt önbelleği: **kapalı (ya da çalışmıyor)**. Loglar önbelleğin durumunu yazmıyor, ama hiçbir istek ona isabet etmedi ve birebir tekrarlar yine sağlayıcıya gitti; çalışan bir önbellek bunları kendisi yanıtlar.",
        ),
        ("off", true) => l.pick(
            "Gateway response cache: **off**. LiteLLM logged `cache_key = \"Cache OFF\"`, which it writes when its cache object is absent: `litellm_settings.cache: true` was not in effect.",
            "Gateway yanıt önbelleği: **kapalı**. LiteLLM `cache_key = \"Cache OFF\"` kaydetti; bunu önbellek nesnesi yokken yazar: `litellm_settings.cache: true` etkin değildi.",
        ),
        ("off", false) => l.pick("Gateway response cache: **off** (not configured).", "Gateway yanıt önbelleği: **kapalı** (yapılandırılmamış)."),
        ("on", _) => l.pick("Gateway response cache: **on**.", "Gateway yanıt önbelleği: **açık**."),
        ("mixed", _) => l.pick(
            "Gateway response cache: **on for part of the window** (some requests ran with it off).",
            "Gateway yanıt önbelleği: **dönemin bir kısmında açık** (bazı istekler kapalıyken çalıştı).",
        ),
        (_, true) => l.pick(
            "Gateway response cache: **unknown**. A StandardLoggingPayload sets `cache_key` only on a hit, so without hits it cannot tell \"off\" from \"no repeats\"; add the SpendLogs rows (their `cache_key` is `\"Cache OFF\"` when the cache is off).",
            "Gateway yanıt önbelleği: **bilinmiyor**. StandardLoggingPayload `cache_key`'i yalnızca hit'te doldurur; hit yoksa \"kapalı\" ile \"tekrar yok\" ayırt edilemez. SpendLogs satırlarını da ekle (önbellek kapalıyken `cache_key` `\"Cache OFF\"` olur).",
        ),
        (_, false) => l.pick("Gateway response cache: **unknown** (the records do not say).", "Gateway yanıt önbelleği: **bilinmiyor** (kayıtlar belirtmiyor)."),
    };
    d.push(Block::P(state_text.into()));
    d.push(Block::Bullets(vec![
        format!(
            "{}: {} ({}: {})",
            l.pick("Cache hits", "Cache hit"),
            l.int(c.hits),
            l.pick(
                "hit rate, hits / successful requests",
                "hit oranı, hit / başarılı istek"
            ),
            l.pct_opt(c.hit_rate)
        ),
        format!(
            "{}: {}",
            l.pick("Saved by hits", "Hit'lerin kazandırdığı"),
            l.usd(c.saved_usd)
        ),
        format!(
            "{}: {} ({}: {}; {} {})",
            l.pick(
                "Exact repeats that still reached the provider",
                "Birebir tekrar edip yine de sağlayıcıya giden istekler"
            ),
            l.int(c.repeat_requests),
            l.pick("cost, i.e. possible saving", "maliyet, yani olası tasarruf"),
            l.usd(c.potential_savings_usd),
            l.int(c.fingerprinted),
            l.pick("requests had their prompt logged", "isteğin promptu loglanmış")
        ),
        format!(
            "{}: {} {}, {} {}, {} {}, {} {}",
            l.pick("Per-request cache state", "İstek bazında önbellek durumu"),
            l.int(c.records.off),
            l.pick("off", "kapalı"),
            l.int(c.records.miss),
            l.pick("miss", "miss"),
            l.int(c.records.hit),
            l.pick("hit", "hit"),
            l.int(c.records.unknown),
            l.pick("unknown", "bilinmiyor")
        ),
    ]));
    d.push(Block::H3(
        l.pick(
            "Provider prompt caching (not the gateway cache)",
            "Sağlayıcı prompt önbelleği (gateway önbelleği değil)",
        )
        .into(),
    ));
    d.push(Block::P(l.pick(
        "`cached_tokens` are prompt tokens the provider served from its own prefix cache, billed at a lower rate; cache writes are prompt tokens stored in that cache (Anthropic bills them at 1.25× the input rate). \"n/a\" means the provider reported none.",
        "`cached_tokens`, sağlayıcının kendi önek önbelleğinden daha ucuza sunduğu prompt tokenlarıdır; cache yazımları o önbelleğe kaydedilen prompt tokenlarıdır (Anthropic bunları girdi fiyatının 1,25 katından faturalar). \"yok\", sağlayıcının hiç bildirmediği anlamına gelir.",
    ).into()));
    d.push(table(
        &[
            l.pick("Model", "Model"),
            l.pick("Prompt tokens", "Prompt token"),
            l.pick("Cache reads", "Cache okuma"),
            l.pick("Share", "Oran"),
            l.pick("Read cost", "Okuma maliyeti"),
            l.pick("Cache writes", "Cache yazma"),
            l.pick("Write cost", "Yazma maliyeti"),
        ],
        &[false, true, true, true, true, true, true],
        r.models
            .iter()
            .map(|m| {
                vec![
                    m.model.clone(),
                    l.int(m.provider_cache.prompt_tokens),
                    l.int(m.provider_cache.cached_tokens),
                    l.pct_opt(m.provider_cache.share),
                    l.usd(m.cache_read_cost_usd),
                    l.int(m.cache_creation_tokens),
                    l.usd(m.cache_write_cost_usd),
                ]
            })
            .collect(),
    ));

    // 3. Reasoning.
    d.push(Block::H2(
        l.pick("3. Reasoning tokens", "3. Reasoning Token Analizi").into(),
    ));
    d.push(table(
        &[
            l.pick("Model", "Model"),
            l.pick("Reasoning tokens", "Reasoning token"),
            l.pick("Completion tokens", "Completion token"),
            l.pick("Reasoning share", "Reasoning oranı"),
            l.pick("Reasoning cost", "Reasoning maliyeti"),
        ],
        &[false, true, true, true, true],
        r.models
            .iter()
            .filter(|m| m.completion_tokens > 0)
            .map(|m| {
                vec![
                    m.model.clone(),
                    l.int(m.reasoning_tokens),
                    l.int(m.completion_tokens),
                    l.pct_opt(m.reasoning_share),
                    l.usd(m.reasoning_cost_usd),
                ]
            })
            .collect(),
    ));
    if !r.reasoning.top.is_empty() {
        d.push(Block::H3(
            l.pick("Requests with the most reasoning", "En çok reasoning yapan istekler")
                .into(),
        ));
        d.push(table(
            &[
                "#",
                l.pick("Request", "İstek"),
                l.pick("Model", "Model"),
                l.pick("Reasoning", "Reasoning"),
                l.pick("Completion", "Completion"),
                "%",
            ],
            &[true, false, false, true, true, true],
            r.reasoning
                .top
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    vec![
                        (i + 1).to_string(),
                        format!("`{}`", t.request_id),
                        t.model.clone(),
                        l.int(t.reasoning_tokens),
                        l.int(t.completion_tokens),
                        l.pct(t.share),
                    ]
                })
                .collect(),
        ));
    }

    // 4. Cost.
    d.push(Block::H2(l.pick("4. Cost", "4. Maliyet Analizi").into()));
    d.push(table(
        &[
            l.pick("Model", "Model"),
            l.pick("Requests", "İstek"),
            l.pick("Prompt", "Prompt"),
            l.pick("Completion", "Completion"),
            l.pick("Reasoning", "Reasoning"),
            l.pick("Cache read", "Cache okuma"),
            l.pick("Cache write", "Cache yazma"),
            l.pick("Cost", "Maliyet"),
            l.pick("$/1K tokens", "$/1K token"),
            l.pick("Share", "Pay"),
        ],
        &[false, true, true, true, true, true, true, true, true, true],
        r.models
            .iter()
            .map(|m| {
                vec![
                    m.model.clone(),
                    l.int(m.requests),
                    l.int(m.prompt_tokens),
                    l.int(m.completion_tokens),
                    l.int(m.reasoning_tokens),
                    l.int(m.cached_tokens),
                    l.int(m.cache_creation_tokens),
                    l.usd(m.cost_usd),
                    m.cost_per_1k_tokens.map_or_else(|| l.na().into(), |c| l.usd(c)),
                    l.pct_opt(m.cost_share),
                ]
            })
            .collect(),
    ));
    let mut cost_lines = vec![format!(
        "{}: {} ({}: {})",
        l.pick("Total", "Toplam"),
        l.usd(r.cost.total_usd),
        l.pick("of which reasoning", "bunun reasoning kısmı"),
        l.usd(r.cost.reasoning_usd)
    )];
    if let Some(logged) = r.cost.logged_usd {
        cost_lines.push(format!(
            "{}: {}; {}: {}",
            l.pick("Cost as logged", "Logda kayıtlı maliyet"),
            l.usd(logged),
            l.pick(
                "recomputed from the price table minus logged",
                "fiyat tablosundan yeniden hesaplanan eksi kayıtlı"
            ),
            r.cost.difference_usd.map_or_else(|| l.na().into(), |x| l.usd(x))
        ));
    }
    cost_lines.push(if r.cost.unpriced_models.is_empty() {
        l.pick("Every model is priced.", "Tüm modellerin fiyatı var.").into()
    } else {
        format!(
            "{}: {}",
            l.pick("Unpriced models", "Fiyatı olmayan modeller"),
            r.cost.unpriced_models.join(", ")
        )
    });
    d.push(Block::Bullets(cost_lines));
    d.push(Block::Chart(Chart::CostPerModel));
    spend_tables(&mut d, r, l);

    // 5. Tokens.
    d.push(Block::H2(
        l.pick("5. Token usage patterns", "5. Token Kullanım Desenleri").into(),
    ));
    for (title, dist) in [
        (
            l.pick(
                "Prompt tokens per successful request",
                "Başarılı istek başına prompt token",
            ),
            &r.tokens.prompt,
        ),
        (
            l.pick(
                "Completion tokens per successful request",
                "Başarılı istek başına completion token",
            ),
            &r.tokens.completion,
        ),
    ] {
        d.push(Block::H3(title.into()));
        d.push(distribution_table(l, dist));
        d.push(Block::P(format!(
            "p50 {} · p95 {} · max {}",
            dist.p50.map_or("-".into(), |v| l.num(v, 0)),
            dist.p95.map_or("-".into(), |v| l.num(v, 0)),
            dist.max.map_or("-".into(), |v| l.num(v, 0))
        )));
    }
    d.push(Block::Chart(Chart::TokensOverTime));

    // 6. Performance.
    d.push(Block::H2(l.pick("6. Performance", "6. Performans Metrikleri").into()));
    d.push(Block::P(format!(
        "{} ({}: {}).",
        l.pick(
            "Latency from start to end of each successful request that reached the provider (cache hits excluded)",
            "Sağlayıcıya giden her başarılı isteğin başından sonuna gecikme (cache hit'ler hariç)"
        ),
        l.pick("exact percentiles, method", "kesin yüzdelikler, yöntem"),
        PERCENTILE_METHOD
    )));
    d.push(table(
        &[
            l.pick("Model", "Model"),
            "n",
            "min",
            l.pick("avg", "ort."),
            "p50",
            "p95",
            "p99",
            "max",
        ],
        &[false, true, true, true, true, true, true, true],
        r.models
            .iter()
            .map(|m| match &m.latency_ms {
                Some(s) => vec![
                    m.model.clone(),
                    l.int(s.count),
                    l.ms(s.min),
                    l.ms(s.avg),
                    l.ms(s.p50),
                    l.ms(s.p95),
                    l.ms(s.p99),
                    l.ms(s.max),
                ],
                None => {
                    let mut row = vec![m.model.clone(), "0".into()];
                    row.extend(std::iter::repeat_n(l.na().to_string(), 6));
                    row
                }
            })
            .collect(),
    ));
    d.push(Block::Chart(Chart::LatencyPerModel));
    let req_rows = |v: &[crate::report::RequestRef]| -> Vec<Vec<String>> {
        v.iter()
            .map(|x| {
                vec![
                    l.ms(x.latency_ms),
                    x.model.clone(),
                    l.int(x.prompt_tokens + x.completion_tokens),
                    l.int(x.reasoning_tokens),
                    format!("`{}`", x.request_id),
                ]
            })
            .collect()
    };
    let req_head = [
        l.pick("Latency", "Süre"),
        l.pick("Model", "Model"),
        l.pick("Tokens", "Token"),
        l.pick("Reasoning", "Reasoning"),
        l.pick("Request", "İstek"),
    ];
    d.push(Block::H3(l.pick("Fastest requests", "En hızlı istekler").into()));
    d.push(table(
        &req_head,
        &[true, false, true, true, false],
        req_rows(&r.latency.fastest),
    ));
    d.push(Block::H3(l.pick("Slowest requests", "En yavaş istekler").into()));
    d.push(table(
        &req_head,
        &[true, false, true, true, false],
        req_rows(&r.latency.slowest),
    ));
    let ttft: Vec<Vec<String>> = r
        .models
        .iter()
        .filter_map(|m| {
            m.ttft_ms
                .as_ref()
                .map(|s| vec![m.model.clone(), l.int(s.count), l.ms(s.p50), l.ms(s.p95), l.ms(s.max)])
        })
        .collect();
    if !ttft.is_empty() {
        d.push(Block::H3(
            l.pick("Time to first token (streams)", "İlk tokena kadar geçen süre (stream)")
                .into(),
        ));
        d.push(table(
            &[l.pick("Model", "Model"), "n", "p50", "p95", "max"],
            &[false, true, true, true, true],
            ttft,
        ));
    }
    d.push(Block::H3(
        l.pick("Gateway overhead", "Gateway ek yükü (overhead)").into(),
    ));
    d.push(match &r.overhead_ms {
        Some(o) => Block::Bullets(vec![
            format!("{}: {}", l.pick("Average", "Ortalama"), l.ms(o.avg)),
            format!("p50: {} · p95: {}", l.ms(o.p50), l.ms(o.p95)),
            format!(
                "{}: {} (`{}`)",
                l.pick("Max", "En yüksek"),
                l.ms(o.max),
                o.max_request_id
            ),
            format!("{}: {}", l.pick("Samples", "Örnek"), l.int(o.samples)),
        ]),
        None => Block::P(
            l.pick(
                "The logs do not record the gateway's overhead.",
                "Loglar gateway ek yükünü kaydetmiyor.",
            )
            .into(),
        ),
    });

    // 7. Workflows and sessions.
    d.push(Block::H2(
        l.pick("7. Workflows and sessions", "7. Workflow ve Oturumlar").into(),
    ));
    if r.workflows.is_empty() {
        d.push(Block::P(l.pick(
            "No workflow-tagged requests (tollgate workflows, or `x-tollgate-workflow` / `x-tollgate-step` headers from an external orchestrator). The session view below shows what each session called, in order.",
            "Workflow etiketli istek yok (tollgate workflow'ları ya da harici bir orkestratörden `x-tollgate-workflow` / `x-tollgate-step` başlıkları). Aşağıdaki oturum görünümü her oturumun sırayla neyi çağırdığını gösterir.",
        ).into()));
    }
    for w in &r.workflows {
        d.push(Block::H3(format!(
            "{} `{}`: {} {} ({} {})",
            l.pick("Workflow", "Workflow"),
            w.name,
            l.int(w.runs),
            l.pick("runs", "çalıştırma"),
            l.int(w.runs_failed),
            l.pick("with a failure", "hatalı")
        )));
        d.push(table(
            &[
                l.pick("Step", "Adım"),
                l.pick("Model", "Model"),
                l.pick("Runs", "Çalıştırma"),
                l.pick("Calls", "Çağrı"),
                l.pick("Failed", "Başarısız"),
                l.pick("Tokens", "Token"),
                l.pick("Cost", "Maliyet"),
                "p50",
                "p95",
            ],
            &[false, false, true, true, true, true, true, true, true],
            w.steps
                .iter()
                .map(|s| {
                    vec![
                        match s.index {
                            Some(i) => format!("{} {}", i, s.role),
                            None => s.role.clone(),
                        },
                        s.models.join(", "),
                        l.int(s.runs),
                        l.int(s.calls),
                        l.int(s.failed),
                        l.int(s.prompt_tokens + s.completion_tokens),
                        l.usd(s.cost_usd),
                        opt_ms(l, s.latency_ms.map(|x| x.p50)),
                        opt_ms(l, s.latency_ms.map(|x| x.p95)),
                    ]
                })
                .collect(),
        ));
        if !w.missing_steps.is_empty() {
            d.push(Block::Bullets(
                w.missing_steps
                    .iter()
                    .map(|m| {
                        let why = match m.reason.as_str() {
                            "never_ran" => l.pick("configured but never ran", "yapılandırılmış ama hiç çalışmadı"),
                            "skipped" => l.pick(
                                "missing from runs that reached a later step",
                                "sonraki adıma ulaşan çalıştırmalarda yok",
                            ),
                            _ => l.pick("failed every time", "her seferinde başarısız"),
                        };
                        format!(
                            "{}: {} ({} {})",
                            m.role,
                            why,
                            l.int(m.runs),
                            l.pick("runs", "çalıştırma")
                        )
                    })
                    .collect(),
            ));
        }
    }
    let s = &r.sessions;
    if s.total > 0 {
        d.push(Block::H3(l.pick("Sessions", "Oturumlar").into()));
        d.push(Block::Bullets(vec![
            format!(
                "{}: {} ({} {})",
                l.pick("Sessions", "Oturum"),
                l.int(s.total),
                l.int(s.requests_with_session),
                l.pick("requests carry a session id", "istek oturum kimliği taşıyor")
            ),
            format!(
                "{}: {} · {}: {}",
                l.pick("Requests per session, average", "Oturum başına istek, ortalama"),
                s.avg_requests.map_or("-".into(), |a| l.num(a, 1)),
                l.pick("max", "en fazla"),
                l.int(s.max_requests)
            ),
            format!(
                "{}: {}",
                l.pick("Sessions with a failed call", "Başarısız çağrı içeren oturum"),
                l.int(s.with_failures)
            ),
        ]));
        d.push(Block::P(
            l.pick(
                "Most common call sequences (✗ = failed):",
                "En sık çağrı sıraları (✗ = başarısız):",
            )
            .into(),
        ));
        d.push(table(
            &[l.pick("Sequence", "Sıra"), l.pick("Sessions", "Oturum")],
            &[false, true],
            s.patterns
                .iter()
                .map(|p| vec![p.steps.join(" → "), l.int(p.sessions)])
                .collect(),
        ));
    } else {
        d.push(Block::P(
            l.pick("No session ids in the logs.", "Loglarda oturum kimliği yok.")
                .into(),
        ));
    }

    // 8. Findings.
    d.push(Block::H2(l.pick("8. Findings", "8. Tespit Edilen Sorunlar").into()));
    if r.findings.is_empty() {
        d.push(Block::P(l.pick("No problems found.", "Sorun bulunmadı.").into()));
    }
    for f in &r.findings {
        d.push(Block::H3(format!(
            "[{}] {} (`{}`)",
            f.severity.label(l),
            f.message,
            f.id
        )));
        let mut b = vec![
            format!("{}: {}", l.pick("Evidence", "Kanıt"), f.evidence),
            format!("{}: {}", l.pick("Likely cause", "Olası neden"), f.cause),
            format!("{}: {}", l.pick("Fix", "Çözüm"), f.fix),
        ];
        if let Some(s) = f.savings_usd {
            b.push(format!(
                "{}: {}",
                l.pick("Estimated savings", "Tahmini tasarruf"),
                l.usd(s)
            ));
        }
        if !f.request_ids.is_empty() {
            b.push(format!(
                "{}: {}",
                l.pick("Example requests", "Örnek istekler"),
                f.request_ids
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        d.push(Block::Bullets(b));
    }

    // 9. Recommendations, summary, next steps.
    d.push(Block::H2(l.pick("9. Recommendations", "9. Öneriler").into()));
    let mut recs: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for f in &r.findings {
        if seen.insert(f.id.clone()) {
            recs.push(format!("**{}**: {}", f.message, f.fix));
        }
    }
    if recs.is_empty() {
        recs.push(
            l.pick(
                "Nothing to change; keep watching the figures below.",
                "Değiştirilecek bir şey yok; aşağıdaki değerleri izlemeye devam et.",
            )
            .into(),
        );
    }
    d.push(Block::Bullets(recs));
    d.push(Block::H3(l.pick("Summary", "Özet Tablosu").into()));
    let total_reasoning: u64 = r.models.iter().map(|m| m.reasoning_tokens).sum();
    let total_completion: u64 = r.models.iter().map(|m| m.completion_tokens).sum();
    let all_lat: Vec<f64> = r.models.iter().filter_map(|m| m.latency_ms.map(|s| s.p95)).collect();
    let worst_p95 = all_lat
        .iter()
        .copied()
        .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
    let critical = r.findings.iter().filter(|f| f.severity == Severity::Critical).count();
    let rows = vec![
        vec![
            l.pick("Requests", "Toplam istek").into(),
            l.int(q.total),
            status(l, Some(true)),
        ],
        vec![
            l.pick("Success rate", "Başarı oranı").into(),
            l.pct_opt(q.success_rate),
            status(l, q.success_rate.map(|s| s >= 0.95)),
        ],
        vec![
            l.pick("Response cache", "Yanıt önbelleği").into(),
            match c.state.as_str() {
                "on" => l.pick("on", "açık").into(),
                "off" => l.pick("off", "kapalı").into(),
                "mixed" => l.pick("partly on", "kısmen açık").into(),
                _ => l.pick("unknown", "bilinmiyor").into(),
            },
            status(
                l,
                match c.state.as_str() {
                    "on" => Some(c.hits > 0),
                    "off" | "mixed" => Some(false),
                    _ => None,
                },
            ),
        ],
        vec![
            l.pick("Cache hit rate", "Cache hit oranı").into(),
            l.pct_opt(c.hit_rate),
            status(l, c.hit_rate.map(|h| h > 0.0)),
        ],
        vec![
            l.pick(
                "Reasoning share of completion tokens",
                "Completion token içinde reasoning payı",
            )
            .into(),
            l.pct_opt((total_completion > 0).then(|| total_reasoning as f64 / total_completion as f64)),
            status(l, Some(!r.findings.iter().any(|f| f.id == "reasoning_heavy"))),
        ],
        vec![
            l.pick("Worst model p95 latency", "En kötü model p95 gecikmesi").into(),
            opt_ms(l, worst_p95),
            status(l, Some(!r.findings.iter().any(|f| f.id == "slow_requests"))),
        ],
        vec![
            l.pick("Gateway overhead p95", "Gateway ek yükü p95").into(),
            opt_ms(l, r.overhead_ms.as_ref().map(|o| o.p95)),
            status(
                l,
                r.overhead_ms
                    .as_ref()
                    .map(|_| !r.findings.iter().any(|f| f.id == "high_overhead")),
            ),
        ],
        vec![
            l.pick("Total cost", "Toplam maliyet").into(),
            l.usd(r.cost.total_usd),
            status(l, Some(r.cost.unpriced_models.is_empty())),
        ],
        vec![
            l.pick("Findings (critical)", "Bulgular (kritik)").into(),
            format!("{} ({})", l.int(r.findings.len() as u64), l.int(critical as u64)),
            status(l, Some(critical == 0)),
        ],
    ];
    d.push(table(
        &[
            l.pick("Metric", "Metrik"),
            l.pick("Value", "Değer"),
            l.pick("Status", "Durum"),
        ],
        &[false, true, false],
        rows,
    ));
    d.push(Block::H3(l.pick("Next steps", "Sonraki Adımlar").into()));
    let mut steps: Vec<String> = Vec::new();
    for f in r.findings.iter().filter(|f| f.severity != Severity::Info) {
        let step = format!("{}: {}", l.pick("Resolve", "Çöz"), f.message);
        if !steps.contains(&step) && steps.len() < 6 {
            steps.push(step);
        }
    }
    steps.push(
        l.pick(
            "Run `tollgate report` again on the logs after the change and compare.",
            "Değişiklikten sonraki loglarla `tollgate report`'u yeniden çalıştır ve karşılaştır.",
        )
        .into(),
    );
    d.push(Block::Bullets(
        steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {}", i + 1, s))
            .collect(),
    ));
    d
}

/// The over-time bucket in words ("hour", "saat").
pub fn bucket_name(width_ms: i64, l: Lang) -> &'static str {
    match width_ms {
        w if w >= 604_800_000 => l.pick("week", "hafta"),
        w if w >= 86_400_000 => l.pick("day", "gün"),
        w if w >= 3_600_000 => l.pick("hour", "saat"),
        w if w >= 900_000 => l.pick("15 minutes", "15 dakika"),
        w if w >= 300_000 => l.pick("5 minutes", "5 dakika"),
        _ => l.pick("minute", "dakika"),
    }
}

/// A bucket's start: the date alone for daily buckets, else date and time (UTC).
pub fn bucket_start(t: &chrono::DateTime<chrono::Utc>, width_ms: i64) -> String {
    if width_ms >= 86_400_000 {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// Requests, errors, cost and latency per minute, hour or day (chosen from the period).
fn over_time(d: &mut Vec<Block>, r: &Report, l: Lang) {
    let tl = &r.timeline;
    if tl.points.is_empty() {
        return;
    }
    d.push(Block::H3(format!(
        "{} ({} {}, UTC)",
        l.pick("Over time", "Zaman içinde"),
        l.pick("per", "her"),
        bucket_name(tl.bucket_ms, l)
    )));
    d.push(table(
        &[
            l.pick("Start", "Başlangıç"),
            l.pick("Requests", "İstek"),
            l.pick("Failed", "Başarısız"),
            l.pick("Error rate", "Hata oranı"),
            l.pick("Tokens", "Token"),
            l.pick("Cost", "Maliyet"),
            "p50",
            "p95",
        ],
        &[false, true, true, true, true, true, true, true],
        tl.points
            .iter()
            .map(|p| {
                vec![
                    bucket_start(&p.start, tl.bucket_ms),
                    l.int(p.requests),
                    l.int(p.failed),
                    l.pct(p.failed as f64 / p.requests.max(1) as f64),
                    l.int(p.prompt_tokens + p.completion_tokens),
                    l.usd(p.cost_usd),
                    p.latency_p50_ms.map_or_else(|| l.na().into(), |x| l.ms(x)),
                    p.latency_p95_ms.map_or_else(|| l.na().into(), |x| l.ms(x)),
                ]
            })
            .collect(),
    ));
    d.push(Block::Chart(Chart::OverTime));
}

/// Spend by key, by user and by team, under the cost section (the report leaves them empty for
/// master-key-only traffic, and then nothing is shown).
fn spend_tables(d: &mut Vec<Block>, r: &Report, l: Lang) {
    let head = |first: &'static str| {
        [
            first,
            l.pick("Requests", "İstek"),
            l.pick("Failed", "Başarısız"),
            l.pick("Input", "Girdi"),
            l.pick("Cache read", "Cache okuma"),
            l.pick("Cache write", "Cache yazma"),
            l.pick("Output", "Çıktı"),
            l.pick("Reasoning", "Reasoning"),
            l.pick("Cost", "Maliyet"),
            l.pick("Top models", "Başlıca modeller"),
        ]
    };
    let numeric = [false, true, true, true, true, true, true, true, true, false];
    let row = |name: String, s: &Spend| {
        let mut cost = l.usd(s.cost_usd);
        if s.unpriced_requests > 0 {
            cost.push_str(&format!(
                " (+{} {})",
                l.int(s.unpriced_requests),
                l.pick("unpriced", "fiyatsız")
            ));
        }
        vec![
            name,
            l.int(s.requests),
            l.int(s.failed),
            l.int(s.input_tokens),
            l.int(s.cache_read_tokens),
            l.int(s.cache_write_tokens),
            l.int(s.output_tokens),
            l.int(s.reasoning_tokens),
            cost,
            s.top_models
                .iter()
                .map(|m| m.model.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ]
    };
    if !r.keys.is_empty() {
        d.push(Block::H3(l.pick("Spend by key", "Anahtara göre harcama").into()));
        d.push(Block::P(
            l.pick(
                "Keys by alias and the first 16 hex digits of the key's SHA-256; tokens per bucket (input excludes cache reads and writes, output excludes reasoning); cost as in the table above, unpriced requests counted apart.",
                "Anahtarlar takma adları ve SHA-256 özetinin ilk 16 onaltılık hanesiyle; tokenlar gruplara ayrık (girdiye cache okuma ve yazma, çıktıya reasoning dahil değil); maliyet yukarıdaki tablodaki gibi, fiyatsız istekler ayrıca sayılır.",
            )
            .into(),
        ));
        d.push(table(
            &head(l.pick("Key", "Anahtar")),
            &numeric,
            r.keys
                .iter()
                .map(|k| {
                    let name = match (&k.key_alias, &k.key_hash) {
                        (Some(a), Some(h)) => format!("{a} (`{h}`)"),
                        (Some(a), None) => a.clone(),
                        (None, Some(h)) => format!("{} (`{h}`)", l.pick("no alias", "takma adsız")),
                        (None, None) => l.pick("no alias", "takma adsız").into(),
                    };
                    row(name, &k.spend)
                })
                .collect(),
        ));
    }
    if !r.users.is_empty() {
        d.push(Block::H3(l.pick("Spend by user", "Kullanıcıya göre harcama").into()));
        d.push(table(
            &head(l.pick("User", "Kullanıcı")),
            &numeric,
            r.users.iter().map(|u| row(u.user_id.clone(), &u.spend)).collect(),
        ));
    }
    if !r.teams.is_empty() {
        d.push(Block::H3(l.pick("Spend by team", "Takıma göre harcama").into()));
        d.push(table(
            &head(l.pick("Team", "Takım")),
            &numeric,
            r.teams.iter().map(|t| row(t.team_id.clone(), &t.spend)).collect(),
        ));
    }
}
