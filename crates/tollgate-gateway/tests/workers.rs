//! Serving workers: one thread per core, each with its own runtime and upstream pool, accepting
//! from the shared socket. Every worker count serves, a long stream on one worker does not hold
//! up the others, and shutdown drains them all and writes every record.

use futures::StreamExt;
use serde_json::json;

mod common;
use common::{KEY, gateway_opts, start_mock_with};

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://{upstream}/v1\n      api_key: k\ngeneral_settings:\n  master_key: {KEY}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_count_serves_and_shutdown_writes_every_record() {
    let upstream = start_mock_with(&[], tollgate_mock::MockConfig::default()).await;
    for workers in [0, 1, 3] {
        let g = gateway_opts(&config(upstream), |o| o.workers = workers).await;
        // A fresh client per request: a new connection each, spread over the workers by the kernel.
        let calls = (0..24).map(|i| {
            let url = format!("{}/v1/chat/completions", g.base);
            async move {
                let stream = i % 3 == 0;
                let resp = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(KEY)
                    .json(&json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": format!("hi {i}")}]}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap();
                (status, stream, body)
            }
        });
        for (status, stream, body) in futures::future::join_all(calls).await {
            assert_eq!(status, 200, "workers={workers}: {body}");
            if stream {
                assert!(body.contains("[DONE]"), "workers={workers}: {body}");
            }
        }
        assert!(
            g.gw.connections().accepted.load(std::sync::atomic::Ordering::Relaxed) >= 24,
            "workers={workers}"
        );
        let summary = g.gw.shutdown().await.unwrap();
        assert_eq!(
            (summary.written, summary.failed, summary.dropped),
            (24, 0, 0),
            "workers={workers}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_on_one_worker_does_not_hold_up_the_others() {
    let slow = tollgate_mock::MockConfig {
        chunk_delay_ms: 20,
        ..tollgate_mock::MockConfig::default()
    };
    let upstream = start_mock_with(&[], slow).await;
    let g = gateway_opts(&config(upstream), |o| o.workers = 2).await;
    let url = format!("{}/v1/chat/completions", g.base);
    // Several slow streams, then plain requests on new connections: whichever worker each lands
    // on, none waits for a stream to end (each worker serves its connections concurrently).
    let mut streams = Vec::new();
    for _ in 0..4 {
        let resp = reqwest::Client::new()
            .post(&url)
            .bearer_auth(KEY)
            .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "long"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        streams.push(resp.bytes_stream());
    }
    let started = std::time::Instant::now();
    for i in 0..6 {
        let resp = reqwest::Client::new()
            .post(&url)
            .bearer_auth(KEY)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": format!("quick {i}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let quick = started.elapsed();
    let mut rest = 0;
    for s in &mut streams {
        while let Some(chunk) = s.next().await {
            rest += chunk.unwrap().len();
        }
    }
    assert!(rest > 0);
    assert!(
        started.elapsed() > quick * 2,
        "the streams should still have been running while the plain requests were answered ({quick:?} vs {:?})",
        started.elapsed()
    );
    g.gw.shutdown().await.unwrap();
}
