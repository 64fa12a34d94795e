//! Property test of request parsing over real HTTP: whatever a client sends to
//! `/v1/chat/completions` — arbitrary bytes, or JSON objects whose fields have any type — the
//! gateway answers without a 5xx of its own, and every refusal is OpenAI's error shape.
//! Bounded case count and a fixed seed, so it runs in CI and is reproducible.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

mod common;
use common::{KEY, gateway, start_mock};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Fields the gateway reads or rewrites, each either left out, valid, or of any type.
fn chat_body() -> impl Strategy<Value = Vec<u8>> {
    let valid_messages = json!([{"role": "user", "content": "hi"}]);
    let fields = [
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "tools",
        "n",
        "cache",
        "metadata",
        "litellm_session_id",
        "litellm_trace_id",
        "user",
    ];
    let optional = prop::collection::vec((0..fields.len(), any_json()), 0..5);
    (
        prop_oneof![Just(json!("m")), Just(json!("nope")), any_json()],
        prop_oneof![Just(valid_messages), any_json()],
        optional,
    )
        .prop_map(move |(model, messages, extra)| {
            let mut m = Map::new();
            m.insert("model".into(), model);
            m.insert("messages".into(), messages);
            for (i, v) in extra {
                m.insert(fields[i].into(), v);
            }
            serde_json::to_vec(&Value::Object(m)).unwrap()
        })
}

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => chat_body(),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

#[test]
fn any_request_body_gets_an_answer_or_an_openai_error_never_a_gateway_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let g = rt.block_on(async {
        let mock = start_mock(&[]).await;
        gateway(&format!(
            "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n      api_base: http://{mock}/v1\n      api_key: k\ngeneral_settings:\n  master_key: {KEY}\n"
        ))
        .await
    });
    let config = Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&bodies(), |body| {
        let (status, text) = rt.block_on(async {
            let r = g
                .http
                .post(format!("{}/v1/chat/completions", g.base))
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        });
        let shown = String::from_utf8_lossy(&body).into_owned();
        prop_assert!(status < 500, "{status} for {shown}: {text}");
        if status != 200 {
            let v: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert!(
                v["error"]["message"].is_string() && v["error"]["type"].is_string(),
                "not OpenAI's error shape for {shown}: {text}"
            );
        }
        Ok(())
    });
    rt.block_on(async { g.records().await });
    result.unwrap();
}
