//! Hostile and broken clients at the HTTP edge, over raw sockets on loopback: half-sent headers,
//! bodies that stop arriving, idle keep-alive connections, more connections than the cap, and
//! requests hyper itself refuses. Timeouts are configured short; every wait polls with a
//! generous deadline, so a slow machine makes a test slower, never wrong.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

mod common;
use common::{Gw, KEY, gateway};

/// Far longer than any timeout configured here: reaching it means the server never acted.
const DEADLINE: Duration = Duration::from_secs(15);

async fn gateway_with(settings: &str) -> Gw {
    let upstream = common::start_mock(&[]).await;
    gateway(&format!(
        r#"model_list:
  - model_name: gpt-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://{upstream}/v1
      api_key: upstream-secret-key-123
general_settings:
  master_key: {KEY}
tollgate_settings:
{settings}"#
    ))
    .await
}

async fn connect(gw: &Gw) -> TcpStream {
    TcpStream::connect(gw.gw.addr).await.unwrap()
}

/// Reads until the server closes the connection (or resets it), within [`DEADLINE`]; returns
/// what arrived. Panics if the connection is still open at the deadline.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open past {DEADLINE:?}");
    out
}

/// One HTTP/1.1 response off the socket: status, lower-cased head, body (by content-length).
async fn read_response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let got = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                if data.len() >= end + 4 + len {
                    let status = head[9..12].parse().unwrap();
                    return (status, head, data[end + 4..end + 4 + len].to_vec());
                }
            }
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before a whole response: {:?}",
                String::from_utf8_lossy(&data)
            );
            data.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    got.unwrap_or_else(|_| panic!("no response within {DEADLINE:?}"))
}

fn assert_openai_error(status: u16, head: &str, body: &[u8], want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{head}\n{}", String::from_utf8_lossy(body));
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    let err = &v["error"];
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(err["type"].is_string(), "{v}");
    assert!(err.get("param").is_some(), "{v}");
    assert_eq!(err["code"], want_code, "{v}");
}

/// Sends the head of an authenticated chat request declaring `len` body bytes, and `first`.
async fn post_declared(gw: &Gw, len: usize, first: &str) -> TcpStream {
    let mut s = connect(gw).await;
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n{first}"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s
}

/// Polls `cond` until it holds, up to [`DEADLINE`].
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let until = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < until, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_half_sent_header_block_is_closed_after_the_header_timeout() {
    let gw = gateway_with("  header_read_timeout: 0.3\n  keepalive_timeout: 60\n").await;
    let mut s = connect(&gw).await;
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: appl")
        .await
        .unwrap();
    let rest = read_until_closed(&mut s).await;
    assert!(rest.is_empty(), "no answer to half a request: {rest:?}");
    assert_eq!(gw.gw.connections().closed_header_timeout.load(Ordering::Relaxed), 1);

    // A connection that sends nothing at all is held no longer.
    let mut silent = connect(&gw).await;
    read_until_closed(&mut silent).await;
    assert_eq!(gw.gw.connections().closed_header_timeout.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_a_huge_declared_body_gets_413_unread() {
    let gw = gateway_with("  body_read_timeout: 0.3\n").await;
    // One byte of a declared 1 MB body, then nothing.
    let mut s = post_declared(&gw, 1_000_000, "{").await;
    let (status, head, body) = read_response(&mut s).await;
    assert_openai_error(status, &head, &body, 408, "body_read_timeout");
    // The unread rest of the body cannot be skipped cheaply: the connection is closed.
    read_until_closed(&mut s).await;

    // A 50 MB body over the 32 MB limit is refused from its Content-Length, before it is read.
    let mut s = post_declared(&gw, 50 * 1024 * 1024, "{").await;
    let (status, head, body) = read_response(&mut s).await;
    assert_openai_error(status, &head, &body, 413, "413");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    assert_eq!(gw.gw.app.body_budget.used(), 0, "no body bytes stay reserved");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let gw = gateway_with("  header_read_timeout: 30\n  keepalive_timeout: 0.3\n").await;
    let mut s = connect(&gw).await;
    s.write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut s).await;
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "kept alive: {head}");
    // Idle now; the 30 s header timeout is not what closes it.
    let rest = read_until_closed(&mut s).await;
    assert!(rest.is_empty());
    let c = gw.gw.connections();
    assert_eq!(c.closed_idle.load(Ordering::Relaxed), 1);
    assert_eq!(c.closed_header_timeout.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn over_the_connection_cap_new_clients_wait_and_are_served_when_a_slot_frees() {
    let gw = gateway_with("  max_connections: 2\n  header_read_timeout: 120\n").await;
    let c = gw.gw.connections();
    // Two stalled connections take both slots.
    let stalled_1 = connect(&gw).await;
    let mut stalled_2 = connect(&gw).await;
    stalled_2.write_all(b"GET /health/liv").await.unwrap();
    eventually("both stalled connections accepted and the cap reached", || {
        c.accepted.load(Ordering::Relaxed) == 2 && c.cap_reached.load(Ordering::Relaxed) >= 1
    })
    .await;
    // A real client connects (the kernel completes the handshake) and sends its request…
    let mut real = connect(&gw).await;
    real.write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // …and waits in the backlog: the accept loop is parked until a slot frees, so nothing
    // else was accepted (this holds for as long as the 120 s header timeout keeps both slots).
    assert_eq!(c.accepted.load(Ordering::Relaxed), 2);
    assert_eq!(c.open.load(Ordering::Relaxed), 2);
    drop(stalled_1);
    let (status, _, body) = read_response(&mut real).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), "I'm alive!");
    assert_eq!(c.accepted.load(Ordering::Relaxed), 3);
    drop(stalled_2);
}

#[tokio::test]
async fn stalled_connections_under_a_small_cap_do_not_block_real_requests_for_good() {
    // The D2 attack with the cap and timeouts working together: the cap's worth of stalled
    // connections are cut at the header timeout and the real request that waited is served.
    let gw = gateway_with("  max_connections: 3\n  header_read_timeout: 0.3\n").await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&gw).await;
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    let resp = tokio::time::timeout(
        DEADLINE,
        gw.http
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"model": "gpt-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send(),
    )
    .await
    .expect("served once the stalled connections timed out")
    .unwrap();
    assert_eq!(resp.status(), 200);
    let c = gw.gw.connections();
    assert!(c.closed_header_timeout.load(Ordering::Relaxed) >= 1);
    for mut s in stalled {
        read_until_closed(&mut s).await;
    }
}

#[tokio::test]
async fn errors_the_server_itself_produces_are_openai_shaped() {
    let gw = gateway_with("  max_inflight_request_mb: 1\n").await;

    // 405 from the router.
    let resp = gw
        .http
        .get(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.headers().get("allow").is_some());
    let head = format!("content-type: {}", resp.headers()["content-type"].to_str().unwrap());
    let body = resp.bytes().await.unwrap();
    assert_openai_error(405, &head, &body, 405, "method_not_allowed");

    // 400, 414 and 431 come from hyper's parser, before any route is chosen.
    let many_headers: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    let long_uri = format!("/v1/models?q={}", "a".repeat(70_000));
    let cases: [(String, u16, &str); 3] = [
        ("GARBAGE\r\n\r\n".to_string(), 400, "malformed_request"),
        (
            format!("GET {long_uri} HTTP/1.1\r\nhost: x\r\n\r\n"),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /v1/models HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
    ];
    for (request, want, code) in cases {
        let mut s = connect(&gw).await;
        s.write_all(request.as_bytes()).await.unwrap();
        let (status, head, body) = read_response(&mut s).await;
        assert_openai_error(status, &head, &body, want, code);
        assert!(head.contains("connection: close"), "{head}");
    }

    // 413 when one body is more than all bodies may hold at once (here 1 MB).
    let mut s = post_declared(&gw, 2 * 1024 * 1024, "{").await;
    let (status, head, body) = read_response(&mut s).await;
    assert_openai_error(status, &head, &body, 413, "413");
    assert!(String::from_utf8_lossy(&body).contains("max_inflight_request_mb"));
}

#[tokio::test]
async fn bodies_over_the_in_flight_budget_wait_their_turn_with_503() {
    let gw = gateway_with("  max_inflight_request_mb: 1\n  body_read_timeout: 60\n").await;
    // A first request reserves 800 KB and sends only its first byte.
    let first = post_declared(&gw, 800_000, "{").await;
    let budget = gw.gw.app.body_budget.clone();
    eventually("the first body's bytes are reserved", || budget.used() == 800_000).await;
    // A second one of the same size does not fit beside it.
    let mut second = post_declared(&gw, 800_000, "{").await;
    let (status, head, body) = read_response(&mut second).await;
    assert_openai_error(status, &head, &body, 503, "server_busy");
    // The first client leaves: its reservation is given back.
    drop(first);
    eventually("the reservation is released", || budget.used() == 0).await;
}

/// An upstream that answers only when told to, and says when a request has arrived.
async fn held_upstream() -> (std::net::SocketAddr, Arc<Notify>, Arc<Notify>) {
    let arrived = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (a, r) = (arrived.clone(), release.clone());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let (a, r) = (a.clone(), r.clone());
            async move {
                a.notify_one();
                r.notified().await;
                axum::Json(serde_json::json!({"id": "c", "object": "chat.completion", "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}))
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, arrived, release)
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_lets_in_flight_requests_finish() {
    let (upstream, arrived, release) = held_upstream().await;
    let gw = gateway(&format!(
        "model_list:\n  - model_name: held\n    litellm_params: {{model: openai/held, api_base: \"http://{upstream}/v1\"}}\n\
         general_settings:\n  master_key: {KEY}\n"
    ))
    .await;
    // An idle kept-alive connection…
    let mut idle = connect(&gw).await;
    idle.write_all(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    // …and a request waiting on its upstream.
    let http = gw.http.clone();
    let url = format!("{}/v1/chat/completions", gw.base);
    let request = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(KEY)
            .json(&serde_json::json!({"model": "held", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
    });
    tokio::time::timeout(DEADLINE, arrived.notified()).await.unwrap();
    let stopping = tokio::spawn(gw.records());
    // The idle connection is closed at once (its 75 s keep-alive is not waited for)…
    read_until_closed(&mut idle).await;
    assert!(!stopping.is_finished(), "shutdown waits for the request in flight");
    // …and the request in flight is answered and recorded before shutdown returns.
    release.notify_one();
    let resp = request.await.unwrap();
    assert_eq!(resp.status(), 200);
    let records = tokio::time::timeout(DEADLINE, stopping).await.unwrap().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].model_group, "held");
}

#[tokio::test]
async fn a_slow_but_steady_body_is_not_cut_off() {
    // The body timeout bounds the gap between pieces, not the whole upload: here the body takes
    // about 2.4 s in all against a 2 s timeout, with pauses of 0.3 s (a seventh of it).
    let gw = gateway_with("  body_read_timeout: 2\n").await;
    let body = serde_json::json!({"model": "gpt-mini", "messages": [{"role": "user", "content": "x".repeat(4000)}]})
        .to_string()
        .into_bytes();
    let mut s = post_declared(&gw, body.len(), "").await;
    for piece in body.chunks(body.len().div_ceil(8)) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (status, _, body) = read_response(&mut s).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn the_limits_in_force_are_one_line_of_the_startup_summary() {
    let gw = gateway_with("  header_read_timeout: 5\n  max_connections: 300\n").await;
    let lines = tollgate_gateway::startup_summary(
        &gw.gw.app.live.load(),
        "x",
        &tollgate_gateway::ServeOptions::default(),
        true,
    );
    let limits: Vec<&String> = lines.iter().filter(|l| l.trim_start().starts_with("limits:")).collect();
    assert_eq!(limits.len(), 1, "{lines:#?}");
    let l = limits[0];
    assert!(l.contains("headers within 5 s"), "{l}");
    assert!(l.contains("idle keep-alive 75 s"), "{l}");
    assert!(l.contains("300 connections (tollgate_settings.max_connections)"), "{l}");
    assert!(l.contains("256 MB of request bodies in flight"), "{l}");
}
