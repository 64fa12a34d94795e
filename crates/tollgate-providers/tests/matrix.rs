//! Usage and cost matrix: provider × {plain, stream} × {reasoning, cache read, cache write, tool
//! call}, each checked against buckets and dollars computed by hand from the built-in price
//! table, and the streamed usage checked equal to the plain usage of the same answer.
//!
//! Prices (USD per token, `prices.json`):
//! - claude-sonnet-4-5: input 3e-6, output 1.5e-5, cache read 3e-7, cache write 3.75e-6
//! - gemini-2.5-flash: input 3e-7, output 2.5e-6, cache read 3e-8, reasoning 2.5e-6

use serde_json::{Value, json};
use tollgate_core::{Cost, PriceTable, Usage};
use tollgate_providers::provider::route;
use tollgate_providers::translate::{StreamTranslator, translate_response};
use tollgate_providers::usage::ParsedUsage;

struct Case {
    name: &'static str,
    /// The plain response body.
    plain: Value,
    /// The same answer streamed: (SSE event name, data).
    stream: Vec<(&'static str, Value)>,
    usage: Usage,
    cost: Cost,
    finish: &'static str,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn check(model: &str, case: &Case) {
    let r = route(model, Some("http://upstream")).unwrap();
    let price = PriceTable::builtin().lookup(model).cloned().unwrap();

    // Plain.
    let (resp, plain) = translate_response(&r, &serde_json::to_vec(&case.plain).unwrap(), "g").unwrap();
    assert_eq!(plain.usage, case.usage, "{model} {} plain buckets", case.name);
    assert_eq!(
        resp["usage"],
        case.usage.to_openai_json(),
        "{model} {} plain usage object",
        case.name
    );
    assert_eq!(
        resp["choices"][0]["finish_reason"], case.finish,
        "{model} {} plain finish",
        case.name
    );

    // Streamed.
    let mut t = StreamTranslator::for_route(&r, "g").unwrap();
    let mut chunks = Vec::new();
    for (event, data) in &case.stream {
        chunks.extend(t.on_event(event, &data.to_string()));
    }
    chunks.extend(t.finish());
    assert!(t.done(), "{model} {} stream ends with [DONE]", case.name);
    assert_eq!(chunks.last().map(String::as_str), Some("[DONE]"));
    let usage_chunk: Value = serde_json::from_str(&chunks[chunks.len() - 2]).unwrap();
    let streamed = ParsedUsage {
        usage: t.usage().usage,
        reported_cost_usd: None,
        cache_reported: t.usage().cache_reported,
    };
    assert_eq!(
        streamed.usage, plain.usage,
        "{model} {}: streamed usage equals plain",
        case.name
    );
    assert_eq!(
        usage_chunk["usage"],
        case.usage.to_openai_json(),
        "{model} {} usage chunk",
        case.name
    );
    assert_eq!(usage_chunk["choices"], json!([]));
    let finishes: Vec<Value> = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| serde_json::from_str::<Value>(c).unwrap())
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(|f| json!(f)))
        .collect();
    assert_eq!(
        finishes,
        vec![json!(case.finish)],
        "{model} {} stream finish",
        case.name
    );

    // Cost per bucket.
    let cost = price.cost(&plain.usage).unwrap();
    for (bucket, got, want) in [
        ("input", cost.input, case.cost.input),
        ("cache_read", cost.cache_read, case.cost.cache_read),
        ("cache_write", cost.cache_write, case.cost.cache_write),
        ("output", cost.output, case.cost.output),
        ("reasoning", cost.reasoning, case.cost.reasoning),
    ] {
        assert!(close(got, want), "{model} {} {bucket}: {got} != {want}", case.name);
    }
}

// ---------------------------------------------------------------- Anthropic

fn anthropic_usage(input: u64, read: u64, write: u64, output: u64) -> Value {
    json!({"input_tokens": input, "cache_read_input_tokens": read, "cache_creation_input_tokens": write, "output_tokens": output})
}

/// A plain Anthropic message and its stream: message_start carries the input side and
/// `output_tokens: 1`; message_delta repeats every count cumulatively.
fn anthropic_case(
    name: &'static str,
    blocks: Vec<Value>,
    stop: &str,
    usage: Value,
    want: Usage,
    cost: Cost,
    finish: &'static str,
) -> Case {
    let plain = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": blocks, "stop_reason": stop, "stop_sequence": null, "usage": usage});
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut stream = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "usage": start_usage}}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    for (i, b) in blocks.iter().enumerate() {
        let (start, deltas) = match b["type"].as_str().unwrap() {
            "thinking" => {
                let text = b["thinking"].as_str().unwrap();
                let (a, c) = text.split_at(text.len() / 2);
                (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    vec![
                        json!({"type": "thinking_delta", "thinking": a}),
                        json!({"type": "thinking_delta", "thinking": c}),
                        json!({"type": "signature_delta", "signature": b["signature"]}),
                    ],
                )
            }
            "text" => (
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": b["text"]})],
            ),
            "tool_use" => {
                let args = b["input"].to_string();
                let (a, c) = args.split_at(args.len() / 2);
                (
                    json!({"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}),
                    vec![
                        json!({"type": "input_json_delta", "partial_json": a}),
                        json!({"type": "input_json_delta", "partial_json": c}),
                    ],
                )
            }
            other => panic!("{other}"),
        };
        stream.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": start}),
        ));
        for d in deltas {
            stream.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": d}),
            ));
        }
        stream.push(("content_block_stop", json!({"type": "content_block_stop", "index": i})));
    }
    stream.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": usage}),
    ));
    stream.push(("message_stop", json!({"type": "message_stop"})));
    Case {
        name,
        plain,
        stream,
        usage: want,
        cost,
        finish,
    }
}

#[test]
fn anthropic_matrix() {
    let thinking = "x".repeat(800);
    let cases = [
        // 800 thinking chars → 200 reasoning tokens of the 500 output tokens.
        // 100 × 3e-6 + 300 × 1.5e-5 + 200 × 1.5e-5
        anthropic_case(
            "reasoning",
            vec![
                json!({"type": "thinking", "thinking": thinking, "signature": "sig"}),
                json!({"type": "text", "text": "answer"}),
            ],
            "end_turn",
            anthropic_usage(100, 0, 0, 500),
            Usage {
                input: 100,
                cache_read: 0,
                cache_write: 0,
                output: 300,
                reasoning: 200,
            },
            Cost {
                input: 3e-4,
                cache_read: 0.0,
                cache_write: 0.0,
                output: 4.5e-3,
                reasoning: 3e-3,
            },
            "stop",
        ),
        // input_tokens EXCLUDES cache reads: prompt = 50 + 2000.
        // 50 × 3e-6 + 2000 × 3e-7 + 20 × 1.5e-5
        anthropic_case(
            "cache read",
            vec![json!({"type": "text", "text": "cached"})],
            "end_turn",
            anthropic_usage(50, 2000, 0, 20),
            Usage {
                input: 50,
                cache_read: 2000,
                cache_write: 0,
                output: 20,
                reasoning: 0,
            },
            Cost {
                input: 1.5e-4,
                cache_read: 6e-4,
                cache_write: 0.0,
                output: 3e-4,
                reasoning: 0.0,
            },
            "stop",
        ),
        // Cache writes cost more than input: 50 × 3e-6 + 2000 × 3.75e-6 + 20 × 1.5e-5
        anthropic_case(
            "cache write",
            vec![json!({"type": "text", "text": "written"})],
            "max_tokens",
            anthropic_usage(50, 0, 2000, 20),
            Usage {
                input: 50,
                cache_read: 0,
                cache_write: 2000,
                output: 20,
                reasoning: 0,
            },
            Cost {
                input: 1.5e-4,
                cache_read: 0.0,
                cache_write: 7.5e-3,
                output: 3e-4,
                reasoning: 0.0,
            },
            "length",
        ),
        // 300 × 3e-6 + 40 × 1.5e-5
        anthropic_case(
            "tool call",
            vec![
                json!({"type": "text", "text": "Checking."}),
                json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}),
            ],
            "tool_use",
            anthropic_usage(300, 0, 0, 40),
            Usage {
                input: 300,
                cache_read: 0,
                cache_write: 0,
                output: 40,
                reasoning: 0,
            },
            Cost {
                input: 9e-4,
                cache_read: 0.0,
                cache_write: 0.0,
                output: 6e-4,
                reasoning: 0.0,
            },
            "tool_calls",
        ),
    ];
    for case in &cases {
        check("anthropic/claude-sonnet-4-5", case);
    }
}

// ---------------------------------------------------------------- Gemini

/// A plain Gemini response and its stream: one chunk per part, intermediate chunks with running
/// usage (prompt only), the last with the complete usage and the finish reason.
fn gemini_case(
    name: &'static str,
    parts: Vec<Value>,
    finish_reason: &str,
    usage: Value,
    want: Usage,
    cost: Cost,
    finish: &'static str,
) -> Case {
    let plain = json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish_reason, "index": 0}],
        "usageMetadata": usage, "modelVersion": "gemini-2.5-flash", "responseId": "r1"
    });
    let last = parts.len() - 1;
    let stream = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut candidate = json!({"content": {"role": "model", "parts": [p]}, "index": 0});
            let running = if i == last {
                candidate["finishReason"] = json!(finish_reason);
                usage.clone()
            } else {
                json!({"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]})
            };
            (
                "message",
                json!({"candidates": [candidate], "usageMetadata": running, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
            )
        })
        .collect();
    Case {
        name,
        plain,
        stream,
        usage: want,
        cost,
        finish,
    }
}

#[test]
fn gemini_matrix() {
    let cases = [
        // thoughtsTokenCount is OUTSIDE candidatesTokenCount: completion = 50 + 400.
        // 100 × 3e-7 + 50 × 2.5e-6 + 400 × 2.5e-6
        gemini_case(
            "reasoning",
            vec![json!({"text": "thinking…", "thought": true}), json!({"text": "answer"})],
            "STOP",
            json!({"promptTokenCount": 100, "candidatesTokenCount": 50, "thoughtsTokenCount": 400, "totalTokenCount": 550}),
            Usage {
                input: 100,
                cache_read: 0,
                cache_write: 0,
                output: 50,
                reasoning: 400,
            },
            Cost {
                input: 3e-5,
                cache_read: 0.0,
                cache_write: 0.0,
                output: 1.25e-4,
                reasoning: 1e-3,
            },
            "stop",
        ),
        // cachedContentTokenCount is INSIDE promptTokenCount: 952 uncached.
        // 952 × 3e-7 + 2048 × 3e-8 + 10 × 2.5e-6
        gemini_case(
            "cache read",
            vec![json!({"text": "cached"})],
            "STOP",
            json!({"promptTokenCount": 3000, "cachedContentTokenCount": 2048, "candidatesTokenCount": 10, "totalTokenCount": 3010}),
            Usage {
                input: 952,
                cache_read: 2048,
                cache_write: 0,
                output: 10,
                reasoning: 0,
            },
            Cost {
                input: 2.856e-4,
                cache_read: 6.144e-5,
                cache_write: 0.0,
                output: 2.5e-5,
                reasoning: 0.0,
            },
            "stop",
        ),
        // Gemini bills no cache write per request (explicit caches are created and billed by the
        // cachedContents API): a first, uncached request is all input.
        // 3000 × 3e-7 + 10 × 2.5e-6
        gemini_case(
            "cache write",
            vec![json!({"text": "first"})],
            "MAX_TOKENS",
            json!({"promptTokenCount": 3000, "candidatesTokenCount": 10, "totalTokenCount": 3010}),
            Usage {
                input: 3000,
                cache_read: 0,
                cache_write: 0,
                output: 10,
                reasoning: 0,
            },
            Cost {
                input: 9e-4,
                cache_read: 0.0,
                cache_write: 0.0,
                output: 2.5e-5,
                reasoning: 0.0,
            },
            "length",
        ),
        // 200 × 3e-7 + 15 × 2.5e-6 + 30 × 2.5e-6
        gemini_case(
            "tool call",
            vec![
                json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}),
            ],
            "STOP",
            json!({"promptTokenCount": 200, "candidatesTokenCount": 15, "thoughtsTokenCount": 30, "totalTokenCount": 245}),
            Usage {
                input: 200,
                cache_read: 0,
                cache_write: 0,
                output: 15,
                reasoning: 30,
            },
            Cost {
                input: 6e-5,
                cache_read: 0.0,
                cache_write: 0.0,
                output: 3.75e-5,
                reasoning: 7.5e-5,
            },
            "tool_calls",
        ),
    ];
    for case in &cases {
        check("gemini/gemini-2.5-flash", case);
    }
}

#[test]
fn anthropic_message_delta_usage_is_replaced_not_added() {
    // message_start says 1 output token, message_delta says 20 (cumulative): 20, not 21; the
    // input side repeated in message_delta is not counted twice.
    let r = route("anthropic/claude-sonnet-4-5", None).unwrap();
    let mut t = StreamTranslator::for_route(&r, "g").unwrap();
    let u = json!({"input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0, "output_tokens": 20});
    t.on_event(
        "message_start",
        &json!({"type": "message_start", "message": {"id": "m", "usage":
        {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}}})
        .to_string(),
    );
    t.on_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": u}).to_string(),
    );
    t.on_event("message_stop", r#"{"type":"message_stop"}"#);
    assert_eq!(
        t.usage().usage,
        Usage {
            input: 10,
            cache_read: 5,
            cache_write: 0,
            output: 20,
            reasoning: 0
        }
    );
}
