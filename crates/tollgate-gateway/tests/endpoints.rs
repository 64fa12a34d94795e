//! The endpoints beside chat and embeddings, over real HTTP with `tollgate mock` as the
//! upstream: legacy completions (to a text-completion model and through chat), moderations,
//! rerank, image generation and audio transcription — each authenticated, routed, recorded and
//! priced like chat — and the endpoints clients and health checkers ask about the gateway:
//! `/health`, `/health/readiness`, `/routes`, `/model_group/info`, `/v1/model/info?model=`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{Gw, KEY, call, eventually, gateway, start_mock};
use serde_json::{Value, json};
use tollgate_core::Record;

fn config(mock: SocketAddr, general_extra: &str) -> String {
    format!(
        "model_list:
  - model_name: chatty
    litellm_params:
      model: openai/mock-chat
      api_base: http://{mock}/v1
      api_key: k
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: gem
    litellm_params:
      model: gemini/gemini-2.5-flash
      api_base: http://{mock}
      api_key: k
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: instruct
    litellm_params:
      model: text-completion-openai/gpt-3.5-turbo-instruct
      api_base: http://{mock}/v1
      api_key: k
      input_cost_per_token: 0.0000015
      output_cost_per_token: 0.000002
  - model_name: mod
    litellm_params:
      model: openai/omni-moderation-latest
      api_base: http://{mock}/v1
      api_key: k
    model_info:
      mode: moderation
  - model_name: img
    litellm_params:
      model: openai/gpt-image-1
      api_base: http://{mock}/v1
      api_key: k
      input_cost_per_token: 0.000005
      output_cost_per_token: 0.00004
    model_info:
      mode: image_generation
  - model_name: dalle
    litellm_params:
      model: openai/dall-e-3
      api_base: http://{mock}/v1
      api_key: k
    model_info:
      mode: image_generation
  - model_name: rr
    litellm_params:
      model: cohere/rerank-english-v3.0
      api_base: http://{mock}/v1
      api_key: k
    model_info:
      mode: rerank
  - model_name: jina
    litellm_params:
      model: jina_ai/jina-reranker-v2-base-multilingual
      api_base: http://{mock}/v1
      api_key: k
      input_cost_per_token: 0.00000002
      output_cost_per_token: 0
    model_info:
      mode: rerank
  - model_name: whisper
    litellm_params:
      model: openai/whisper-1
      api_base: http://{mock}/v1
      api_key: k
    model_info:
      mode: audio_transcription
  - model_name: transcribe
    litellm_params:
      model: openai/gpt-4o-transcribe
      api_base: http://{mock}/v1
      api_key: k
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
    model_info:
      mode: audio_transcription
general_settings:
  master_key: {KEY}
{general_extra}"
    )
}

async fn setup() -> Gw {
    let mock = start_mock(&[]).await;
    gateway(&config(mock, "")).await
}

fn success(records: &[Record], group: &str) -> Record {
    records
        .iter()
        .find(|r| r.model_group == group && r.http_status == 200 && r.attempt.is_some())
        .unwrap_or_else(|| panic!("no successful record for {group}: {records:#?}"))
        .clone()
}

/// The data payloads of an SSE body.
fn events(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn completions_reach_a_text_completion_model_and_chat_models_plain_and_streamed() {
    let g = setup().await;
    for group in ["instruct", "chatty", "gem"] {
        let (s, v) = call(
            &g,
            "POST",
            "/v1/completions",
            KEY,
            Some(json!({"model": group, "prompt": "Say hello to the gateway", "max_tokens": 16})),
        )
        .await;
        assert_eq!(s, 200, "{group}: {v}");
        assert_eq!(v["object"], "text_completion", "{group}: {v}");
        assert!(!v["choices"][0]["text"].as_str().unwrap().is_empty(), "{group}: {v}");
        assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0, "{group}: {v}");

        let resp = g
            .http
            .post(format!("{}/completions", g.base))
            .bearer_auth(KEY)
            .json(&json!({"model": group, "prompt": "Say hello to the gateway", "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let data = events(&resp.text().await.unwrap());
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{group}: {data:?}");
        let text: String = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .inspect(|c| assert_eq!(c["object"], "text_completion", "{group}: {c}"))
            .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_string))
            .collect();
        assert!(!text.is_empty(), "{group}: {data:?}");
    }
    let records = g.records().await;
    for group in ["instruct", "chatty", "gem"] {
        let plain: Vec<&Record> = records
            .iter()
            .filter(|r| r.model_group == group && r.http_status == 200 && r.attempt.is_some())
            .collect();
        assert_eq!(plain.len(), 2, "{group}: one plain and one streamed record");
        for r in plain {
            assert!(r.prompt_tokens > 0 && r.completion_tokens > 0, "{r:?}");
            assert!(r.cost_usd.unwrap() > 0.0, "{r:?}");
            assert!(!r.unpriced);
        }
    }
    let instruct = success(&records, "instruct");
    let expected = instruct.prompt_tokens as f64 * 0.0000015 + instruct.completion_tokens as f64 * 0.000002;
    assert!((instruct.cost_usd.unwrap() - expected).abs() < 1e-12);
}

#[tokio::test]
async fn moderations_pass_through_and_are_recorded_unpriced_not_free() {
    let g = setup().await;
    let (s, v) = call(
        &g,
        "POST",
        "/v1/moderations",
        KEY,
        Some(json!({"model": "mod", "input": ["a nice day", "I will kill the process"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"][0]["flagged"], false);
    assert_eq!(v["results"][1]["flagged"], true);
    // A deployment that cannot moderate is refused before anything is sent.
    let (s, v) = call(
        &g,
        "POST",
        "/v1/moderations",
        KEY,
        Some(json!({"model": "gem", "input": "x"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "endpoint_not_supported");
    let (s, v) = call(&g, "POST", "/v1/moderations", KEY, Some(json!({"model": "mod"}))).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "input");
    let r = success(&g.records().await, "mod");
    assert_eq!(r.cost_usd, None);
    assert!(r.unpriced, "no usage and no price: flagged, never $0");
}

#[tokio::test]
async fn images_are_priced_by_their_tokens_where_reported() {
    let g = setup().await;
    let (s, v) = call(
        &g,
        "POST",
        "/v1/images/generations",
        KEY,
        Some(json!({"model": "img", "prompt": "a lighthouse at dusk", "n": 2})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let (s, v) = call(
        &g,
        "POST",
        "/images/generations",
        KEY,
        Some(json!({"model": "dalle", "prompt": "a lighthouse", "response_format": "b64_json"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["data"][0]["b64_json"].is_string());
    let records = g.records().await;
    let img = success(&records, "img");
    assert_eq!(img.completion_tokens, 544);
    let expected = img.prompt_tokens as f64 * 0.000005 + 544.0 * 0.00004;
    assert!((img.cost_usd.unwrap() - expected).abs() < 1e-12, "{img:?}");
    let dalle = success(&records, "dalle");
    assert!(dalle.unpriced && dalle.cost_usd.is_none());
}

#[tokio::test]
async fn rerank_speaks_cohere_s_shape_to_cohere_and_jina() {
    let g = setup().await;
    let body = |model: &str| json!({"model": model, "query": "red apple", "documents": ["a blue sky", "a red apple", {"text": "apple pie"}], "top_n": 2});
    for model in ["rr", "jina"] {
        let (s, v) = call(&g, "POST", "/v1/rerank", KEY, Some(body(model))).await;
        assert_eq!(s, 200, "{v}");
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["index"], 1);
        assert!(results[0]["relevance_score"].as_f64().unwrap() > results[1]["relevance_score"].as_f64().unwrap());
    }
    // Cohere is reached for rerank only.
    let (s, v) = call(
        &g,
        "POST",
        "/v1/chat/completions",
        KEY,
        Some(json!({"model": "rr", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "endpoint_not_supported");
    let (s, v) = call(&g, "POST", "/rerank", KEY, Some(json!({"model": "rr", "query": "x"}))).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "documents");
    let records = g.records().await;
    let jina = success(&records, "jina");
    assert!(jina.prompt_tokens > 0);
    assert!((jina.cost_usd.unwrap() - jina.prompt_tokens as f64 * 0.00000002).abs() < 1e-15);
    // Cohere bills search units, which no token price covers.
    assert!(success(&records, "rr").unpriced);
}

/// A multipart form as the OpenAI SDK sends it.
fn form(fields: &[(&str, &str)], wav: &[u8]) -> (String, Vec<u8>) {
    let boundary = "tollgate-test-boundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(wav);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn transcriptions_pass_the_upload_on_with_the_model_rewritten() {
    let g = setup().await;
    let wav: Vec<u8> = b"RIFF\x24\x00\x00\x00WAVEfmt "
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0u8, 64_000))
        .collect();
    let send = |fields: Vec<(&'static str, &'static str)>| {
        let (ct, body) = form(&fields, &wav);
        g.http
            .post(format!("{}/v1/audio/transcriptions", g.base))
            .bearer_auth(KEY)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let resp = send(vec![("model", "whisper")]).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["text"], format!("mock transcript of {} bytes", wav.len()));
    let resp = send(vec![("model", "transcribe"), ("response_format", "text")])
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(resp.text().await.unwrap().starts_with("mock transcript"));
    let resp = send(vec![("model", "transcribe")]).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Not a form: the client's 400, in OpenAI's shape.
    let (s, v) = call(
        &g,
        "POST",
        "/v1/audio/transcriptions",
        KEY,
        Some(json!({"model": "whisper"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_multipart");
    let records = g.records().await;
    assert!(
        success(&records, "whisper").unpriced,
        "Whisper reports seconds, which no token price covers"
    );
    let priced: Vec<&Record> = records
        .iter()
        .filter(|r| r.model_group == "transcribe" && r.cost_usd.is_some_and(|c| c > 0.0))
        .collect();
    assert_eq!(priced.len(), 1, "the JSON answer reports tokens; the text one cannot");
}

#[tokio::test]
async fn a_virtual_key_reaches_and_sees_only_its_models() {
    let g = setup().await;
    let (s, created) = call(&g, "POST", "/key/generate", KEY, Some(json!({"models": ["chatty"]}))).await;
    assert_eq!(s, 200, "{created}");
    let vk = created["key"].as_str().unwrap().to_string();
    let (s, v) = call(
        &g,
        "POST",
        "/v1/moderations",
        &vk,
        Some(json!({"model": "mod", "input": "x"})),
    )
    .await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = call(
        &g,
        "POST",
        "/v1/completions",
        &vk,
        Some(json!({"model": "chatty", "prompt": "hi"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(&g, "GET", "/model_group/info", &vk, None).await;
    assert_eq!(s, 200);
    let groups: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["model_group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["chatty"]);
    let (_, v) = call(&g, "GET", "/v1/model/info?model=mod", &vk, None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0, "{v}");
    let (_, v) = call(&g, "GET", "/v1/model/info?model=chatty", &vk, None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    // /health makes paid calls to every deployment: the master key's alone, as in LiteLLM.
    let (s, _) = call(&g, "GET", "/health", &vk, None).await;
    assert_eq!(s, 401);
    g.records().await;
}

#[tokio::test]
async fn model_group_info_has_litellm_s_fields() {
    let g = setup().await;
    let (s, v) = call(&g, "GET", "/model_group/info", KEY, None).await;
    assert_eq!(s, 200);
    let by_name: BTreeMap<&str, &Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["model_group"].as_str().unwrap(), d))
        .collect();
    let chatty = by_name["chatty"];
    assert_eq!(chatty["providers"], json!(["openai"]));
    assert_eq!(chatty["input_cost_per_token"], 0.000001);
    assert_eq!(chatty["mode"], "chat");
    assert_eq!(chatty["supports_function_calling"], true);
    assert!(
        chatty["supported_openai_params"]
            .as_array()
            .unwrap()
            .contains(&json!("tools"))
    );
    assert_eq!(by_name["rr"]["providers"], json!(["cohere"]));
    assert_eq!(by_name["img"]["mode"], "image_generation");
    assert!(by_name["mod"]["input_cost_per_token"].is_null());
    let (_, one) = call(&g, "GET", "/model_group/info?model_group=gem", KEY, None).await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    g.records().await;
}

#[tokio::test]
async fn routes_lists_every_route_the_routers_declare() {
    let g = setup().await;
    let (s, v) = call(&g, "GET", "/routes", KEY, None).await;
    assert_eq!(s, 200);
    let listed: BTreeMap<String, Vec<String>> = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let methods = r["methods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
                .collect();
            (r["path"].as_str().unwrap().to_string(), methods)
        })
        .collect();
    // Every literal route in the routers' sources is listed with its methods.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut files = vec![];
    for dir in [src.to_string(), format!("{src}/entity_api"), format!("{src}/ui")] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut seen = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with(".route(\"")) {
            let path = line.split('"').nth(1).unwrap();
            let methods = listed
                .get(path)
                .unwrap_or_else(|| panic!("{path} ({}) is not in /routes", f.display()));
            for m in ["get", "post", "patch", "delete"] {
                if line.contains(&format!("{m}(")) {
                    assert!(
                        methods.contains(&m.to_uppercase()),
                        "{path}: {m} not listed in {methods:?}"
                    );
                }
            }
            seen += 1;
        }
    }
    assert!(seen > 40, "{seen}");
    // And every listed route answers (not the 404 of an unknown path).
    for (path, methods) in &listed {
        let (s, v) = call(&g, &methods[0], path, "wrong-key", None).await;
        assert_ne!(s, 404, "{path}: {v}");
    }
    g.records().await;
}

#[tokio::test]
async fn health_checks_every_deployment_and_names_the_unhealthy() {
    let g = setup().await;
    let (s, v) = call(&g, "GET", "/health", KEY, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["healthy_count"], 10, "{v}");
    assert_eq!(v["unhealthy_count"], 0, "{v}");
    for e in v["healthy_endpoints"].as_array().unwrap() {
        assert!(e["api_base"].as_str().unwrap().starts_with("http://"), "{e}");
        assert!(!e.to_string().contains("\"k\""), "no keys: {e}");
    }
    let (s, one) = call(&g, "GET", "/health?model=chatty", KEY, None).await;
    assert_eq!(s, 200);
    assert_eq!(one["healthy_count"], 1);
    assert_eq!(one["healthy_endpoints"][0]["model"], "openai/mock-chat");
    let (s, _) = call(&g, "GET", "/health?model=nope", KEY, None).await;
    assert_eq!(s, 404);
    // Health checks are not requests: nothing is recorded for them.
    assert!(g.records().await.is_empty());

    let mock = start_mock(&["mock-chat=1.0:401"]).await;
    let g = gateway(&config(mock, "")).await;
    let (_, v) = call(&g, "GET", "/health?model=chatty", KEY, None).await;
    assert_eq!(v["unhealthy_count"], 1, "{v}");
    let e = &v["unhealthy_endpoints"][0];
    assert_eq!(e["model"], "openai/mock-chat");
    assert!(e["error"].as_str().unwrap().contains("401"), "{e}");
    g.records().await;
}

#[tokio::test]
async fn background_health_checks_answer_from_the_latest_round() {
    let mock = start_mock(&[]).await;
    let extra = "  background_health_checks: true\n  health_check_interval: 1\n  health_check_details: false\n";
    let g = gateway(&config(mock, extra)).await;
    // Rounds run without anyone asking: the mock sees the chat check come again.
    eventually("two background rounds", Duration::from_secs(10), || async {
        let stats: BTreeMap<String, u64> = reqwest::get(format!("http://{mock}/mock/stats"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats.get("mock-chat").copied().unwrap_or(0) >= 2
    })
    .await;
    let (s, v) = call(&g, "GET", "/health", KEY, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["healthy_count"], 10, "{v}");
    // `health_check_details: false`: the model only.
    assert_eq!(v["healthy_endpoints"][0].as_object().unwrap().len(), 1, "{v}");
    g.records().await;
}

#[tokio::test]
async fn readiness_adds_litellm_s_fields_to_tollgate_s() {
    let g = setup().await;
    let r = g.readiness().await;
    assert_eq!(r["status"], "healthy");
    assert_eq!(r["db"], "Not connected");
    assert_eq!(r["litellm_version"], r["tollgate_version"]);
    assert!(
        r["success_callbacks"].as_array().unwrap().contains(&json!("sqlite")),
        "{r}"
    );
    // tollgate's own fields stay.
    assert!(
        r["cache"]["state"].is_string() && r["store"]["durability"].is_string(),
        "{r}"
    );
    g.records().await;
}
