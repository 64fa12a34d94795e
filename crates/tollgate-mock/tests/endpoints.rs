//! The mock's endpoints beside chat over real HTTP: legacy completions, moderations, images,
//! rerank and transcriptions, each deterministic.

use serde_json::{Value, json};
use tollgate_mock::{MockConfig, parse_fail_rule};

async fn start(rules: &[&str]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let failures = rules.iter().map(|r| parse_fail_rule(r).unwrap()).collect();
    tokio::spawn(tollgate_mock::serve(
        listener,
        MockConfig {
            failures,
            ..MockConfig::default()
        },
    ));
    base
}

async fn post(base: &str, path: &str, body: Value) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn text_completions_answer_plain_and_streamed_with_the_same_text() {
    let base = start(&[]).await;
    let (s, plain) = post(
        &base,
        "/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "one two three"}),
    )
    .await;
    assert_eq!(s, 200);
    let plain: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(plain["object"], "text_completion");
    let (s, sse) = post(
        &base,
        "/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "one two three", "stream": true,
               "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(s, 200);
    let data: Vec<&str> = sse.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, plain["choices"][0]["text"].as_str().unwrap());
    assert_eq!(chunks.last().unwrap()["usage"], plain["usage"]);
}

#[tokio::test]
async fn moderations_images_and_rerank_answer_in_openai_s_and_cohere_s_shapes() {
    let base = start(&["dall-e-3=1.0:429"]).await;
    let (s, m) = post(&base, "/moderations", json!({"input": ["fine", "violence"]})).await;
    assert_eq!(s, 200);
    let m: Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["results"][1]["flagged"], true);
    let (s, img) = post(
        &base,
        "/images/generations",
        json!({"model": "gpt-image-1", "prompt": "x", "n": 3}),
    )
    .await;
    assert_eq!(s, 200);
    let img: Value = serde_json::from_str(&img).unwrap();
    assert_eq!(img["data"].as_array().unwrap().len(), 3);
    assert_eq!(img["usage"]["output_tokens"], 816);
    // Failure injection applies per model here too.
    let (s, _) = post(
        &base,
        "/images/generations",
        json!({"model": "dall-e-3", "prompt": "x"}),
    )
    .await;
    assert_eq!(s, 429);
    let (s, rr) = post(
        &base,
        "/rerank",
        json!({"model": "rerank-v3", "query": "green tea", "documents": ["coffee", "green tea", "tea"]}),
    )
    .await;
    assert_eq!(s, 200);
    let rr: Value = serde_json::from_str(&rr).unwrap();
    let order: Vec<u64> = rr["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(order, [1, 2, 0]);
}

#[tokio::test]
async fn transcriptions_read_the_form() {
    let base = start(&[]).await;
    let body = b"--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n0123456789\r\n--B--\r\n";
    let resp = reqwest::Client::new()
        .post(format!("{base}/audio/transcriptions"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["text"], "mock transcript of 10 bytes");
    assert_eq!(v["usage"]["type"], "duration");
}
