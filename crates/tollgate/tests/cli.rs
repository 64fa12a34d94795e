//! The `report` and `demo` commands end to end: the built binary, run as a user runs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .expect("run the tollgate binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The report crate's fixtures (trimmed from LiteLLM 1.108.7's own logs).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tollgate-report/tests/fixtures")
        .join(name)
}

fn report_json(inputs: &[&str]) -> Value {
    let mut args = vec!["report", "--format", "json", "--no-progress"];
    args.extend_from_slice(inputs);
    let out = tollgate(&args);
    assert!(out.status.success(), "{:?}: {}", out.status, text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--format json prints JSON")
}

fn sum(models: &Value, key: &str) -> u64 {
    models
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m[key].as_u64().expect(key))
        .sum()
}

/// payload.jsonl, by hand: gemini 836a (8242/105 tokens, $0.00271782), its cache hit 145f (the
/// same tokens, $0), a deepseek stream 6b62 (1210/121, $0.0003872), a failed grok call ee20
/// (no tokens), a minimax call 001d (283/223, $0.0003525).
const PAYLOAD_REQUESTS: u64 = 5;
const PAYLOAD_PROMPT: u64 = 8242 * 2 + 1210 + 283;
const PAYLOAD_COMPLETION: u64 = 105 * 2 + 121 + 223;
const PAYLOAD_COST: f64 = 0.00271782 + 0.0003872 + 0.0003525;

/// spend_logs.*, by hand: gemini 836a (8242/105, $0.00271782) and two cache hits of it (the
/// same tokens, $0), a minimax cache hit b110 (290/246, $0), the deepseek stream 6b62
/// (1210/121, $0.0003872).
const SPEND_REQUESTS: u64 = 5;
const SPEND_PROMPT: u64 = 8242 * 3 + 290 + 1210;
const SPEND_COMPLETION: u64 = 105 * 3 + 246 + 121;
const SPEND_COST: f64 = 0.00271782 + 0.0003872;

#[test]
fn report_totals_match_the_fixtures_in_every_input_format() {
    let payload = (PAYLOAD_REQUESTS, PAYLOAD_PROMPT, PAYLOAD_COMPLETION, PAYLOAD_COST);
    let spend = (SPEND_REQUESTS, SPEND_PROMPT, SPEND_COMPLETION, SPEND_COST);
    for (name, (requests, prompt, completion, cost)) in [
        ("payload.jsonl", payload),
        ("payload.jsonl.gz", payload),
        ("spend_logs.jsonl", spend),
        ("spend_logs.json", spend),
        ("spend_logs.csv", spend),
    ] {
        let path = fixture(name);
        let r = report_json(&[path.to_str().unwrap()]);
        assert_eq!(r["requests"]["total"], requests, "{name}");
        assert_eq!(sum(&r["models"], "prompt_tokens"), prompt, "{name}");
        assert_eq!(sum(&r["models"], "completion_tokens"), completion, "{name}");
        let total = r["cost"]["total_usd"].as_f64().unwrap();
        assert!((total - cost).abs() < 1e-12, "{name}: {total}");
        assert_eq!(r["inputs"][0]["corrupt_lines"], 0, "{name}");
    }
}

#[test]
fn report_totals_of_tollgate_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    // Three requests written by hand: 1000/200 tokens at $0.01, 500/50 at $0.002, a failure.
    for (i, (prompt, completion, cost, status)) in [
        (1000, 200, Some(0.01), "success"),
        (500, 50, Some(0.002), "success"),
        (0, 0, Some(0.0), "failure"),
    ]
    .into_iter()
    .enumerate()
    {
        let rec = serde_json::json!({
            "request_id": format!("req-{i}"),
            "trace_id": format!("req-{i}"),
            "model_group": "deepseek-v3.2",
            "model": "deepseek/deepseek-v3.2",
            "status": status,
            "http_status": if status == "success" { 200 } else { 500 },
            "start_time": format!("2026-01-01T13:33:0{i}Z"),
            "end_time": format!("2026-01-01T13:33:0{i}.500Z"),
            "latency_ms": 500.0,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost_usd": cost,
            "cache": "miss",
        });
        writeln!(f, "{rec}").unwrap();
    }
    drop(f);
    let r = report_json(&[path.to_str().unwrap()]);
    assert_eq!(r["requests"]["total"], 3);
    assert_eq!(r["requests"]["failed"], 1);
    assert_eq!(sum(&r["models"], "prompt_tokens"), 1500);
    assert_eq!(sum(&r["models"], "completion_tokens"), 250);
    assert!((r["cost"]["total_usd"].as_f64().unwrap() - 0.012).abs() < 1e-12);
}

#[test]
fn report_renders_every_format_in_both_languages() {
    let input = fixture("payload.jsonl");
    let input = input.to_str().unwrap();
    for (format, en, tr) in [
        ("table", "LLM GATEWAY LOG ANALYSIS", "LLM GATEWAY LOG ANALIZI RAPORU"),
        ("md", "# LLM gateway log analysis", "# LLM Gateway Log Analizi Raporu"),
        ("html", "<html lang=\"en\">", "<html lang=\"tr\">"),
        ("json", "\"schema_version\"", "\"schema_version\""),
    ] {
        for (lang, marker) in [("en", en), ("tr", tr)] {
            let out = tollgate(&["report", "--format", format, "--lang", lang, "--no-progress", input]);
            assert!(out.status.success(), "{format}/{lang}: {}", text(&out.stderr));
            let stdout = text(&out.stdout);
            assert!(stdout.contains(marker), "{format}/{lang}: no {marker:?} in\n{stdout}");
            // The request count, in the words of the language.
            let total = match (format, lang) {
                ("json", _) => "\"total\": 5",
                (_, "en") => "Requests: 5",
                _ => "Toplam istek: 5",
            };
            assert!(stdout.contains(total), "{format}/{lang}: no {total:?} in\n{stdout}");
            // What was read is said on stderr, whatever the format.
            assert!(text(&out.stderr).contains("payload.jsonl"), "{format}/{lang}");
        }
    }
    // Turkish numbers in Turkish text.
    let out = tollgate(&["report", "--format", "md", "--lang", "tr", "--no-progress", input]);
    assert!(
        text(&out.stdout).contains("%80"),
        "success rate 80% written the Turkish way"
    );
    // -o picks the format from the extension.
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let out = tollgate(&["report", "--no-progress", "-o", html.to_str().unwrap(), input]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(&html).unwrap().contains("<html"));
}

#[test]
fn report_bad_inputs_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let out = tollgate(&["report", "--no-progress", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nope.jsonl") && err.contains("cannot read"), "{err}");

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello\nworld\n").unwrap();
    let out = tollgate(&["report", "--no-progress", notes.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("unrecognised input format"),
        "{err}"
    );
    assert!(err.contains("StandardLoggingPayload"), "says what is expected: {err}");

    let out = tollgate(&[
        "report",
        "--no-progress",
        "--since",
        "yesterday-ish",
        notes.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("yesterday-ish"));
}

#[test]
fn report_reads_past_damage_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    // A directory with a good log, a gzip cut short, and a symlink loop.
    std::fs::copy(fixture("payload.jsonl"), dir.path().join("a.jsonl")).unwrap();
    let lines = std::fs::read_to_string(fixture("spend_logs.jsonl")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(lines.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    std::fs::write(dir.path().join("b.jsonl.gz"), &gz[..gz.len() - 4]).unwrap();
    std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
    let out = tollgate(&[
        "report",
        "--format",
        "json",
        "--no-progress",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("b.jsonl.gz") && err.contains("gzip"),
        "{err}"
    );
    assert!(
        err.contains("symbolic links"),
        "the loop is named with its reason: {err}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The cut gzip lost only its trailer, so all its five rows are read: three are requests the
    // payload file already holds (836a, 145f, 6b62), two are new.
    assert_eq!(r["requests"]["total"], PAYLOAD_REQUESTS + 2);
    assert_eq!(r["duplicates"], 3);
    let warned: Vec<&str> = r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("warning").is_some())
        .map(|i| i["input"].as_str().unwrap())
        .collect();
    assert_eq!(warned.len(), 2, "{warned:?}");
}

#[test]
fn demo_runs_offline_and_its_records_feed_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let out = tollgate(&["demo", "--tasks", "2", "--keep-data", data.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, text(&out.stderr));
    for line in [
        "Per-model summary (",
        "records written to",
        "$ tollgate report",
        "LLM GATEWAY LOG ANALYSIS",
        "1. Overview",
        "deepseek-v3.2",
        "grok-4.1-fast",
    ] {
        assert!(stdout.contains(line), "demo output lacks {line:?}:\n{stdout}");
    }
    // The summary's request count is the report's, read back from the kept SQLite store.
    let summary = stdout
        .split("Per-model summary (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("request count in the summary line");
    let r = report_json(&[data.to_str().unwrap()]);
    assert_eq!(r["requests"]["total"], summary);
    assert_eq!(r["inputs"][0]["corrupt_lines"], 0);
}

#[test]
fn report_reads_a_pipe_given_by_path() {
    // `tollgate report <(zcat logs.gz)` hands over a pipe by path; checking it for SQLite's magic
    // bytes must not eat the start of the stream.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["report", "--format", "json", "--no-progress", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the tollgate binary");
    let bytes = std::fs::read(fixture("payload.jsonl")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["requests"]["total"], PAYLOAD_REQUESTS);
    assert_eq!(r["inputs"][0]["corrupt_lines"], 0);
}

#[test]
fn report_reads_past_blank_lines_comments_and_a_cut_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let payload = std::fs::read_to_string(fixture("payload.jsonl")).unwrap();
    let lines: Vec<&str> = payload.lines().collect();
    // 60 blank lines, a comment, then a log copied from the middle of its first record.
    let text = format!(
        "{}# copied from the server\n{}\n{}\n",
        "\n".repeat(60),
        &lines[0][lines[0].len() / 2..],
        lines[1..].join("\n")
    );
    let path = dir.path().join("copied.jsonl");
    std::fs::write(&path, text).unwrap();
    let r = report_json(&[path.to_str().unwrap()]);
    assert_eq!(r["requests"]["total"], PAYLOAD_REQUESTS - 1);
    assert_eq!(r["inputs"][0]["corrupt_lines"], 2);
    let lines: Vec<u64> = r["inputs"][0]["corrupt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![61, 62], "numbered as in the file");
}

#[test]
fn report_config_expects_the_workflow_steps_and_uses_the_deployment_prices() {
    let log = fixture("litellm_cache_off_payload.jsonl");
    let config = fixture("cfx_workflow.yaml");
    let with = report_json(&["--config", config.to_str().unwrap(), log.to_str().unwrap()]);
    let without = report_json(&[log.to_str().unwrap()]);
    let missing: Vec<String> = with["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["id"] == "workflow_step_missing")
        .map(|f| f["data"]["role"].as_str().expect("role").to_string())
        .collect();
    assert_eq!(missing, ["coder", "reviewer"]);
    assert_eq!(with["workflows"][0]["name"], "cf-x-normal");
    assert!(without["workflows"].as_array().expect("workflows").is_empty());
    let grok_cost = |r: &Value| {
        r["models"]
            .as_array()
            .expect("models")
            .iter()
            .find(|m| m["model"] == "grok-4.1-fast")
            .and_then(|m| m["cost_usd"].as_f64())
            .expect("grok cost")
    };
    assert!(
        grok_cost(&with) > 3.0 * grok_cost(&without),
        "the config's grok price is 5× the built-in"
    );

    // A config that does not load stops the report with the gateway's own message.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("config.yaml");
    std::fs::write(
        &bad,
        "model_list:\n  - model_name: a\n    litellm_params: {model: [not, a, string]}\n",
    )
    .unwrap();
    let out = tollgate(&[
        "report",
        "--no-progress",
        "--config",
        bad.to_str().unwrap(),
        log.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--config") && err.contains("config.yaml"), "{err}");
}

/// `--baseline before.json`: keep a JSON report, run the report again on new logs with it.
#[test]
fn report_with_a_baseline_shows_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before.json");
    let before = before.to_str().unwrap();
    // Before: LiteLLM's payload log (5 requests, one failed); after: its SpendLogs (5, none failed).
    let payload = fixture("payload.jsonl");
    let out = tollgate(&["report", "--no-progress", "-o", before, payload.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = fixture("spend_logs.jsonl");
    let after = after.to_str().unwrap();

    let out = tollgate(&[
        "report",
        "--no-progress",
        "--format",
        "json",
        "--baseline",
        before,
        after,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["comparison"];
    assert_eq!(c["baseline"], before);
    let requests = &c["figures"][0];
    assert_eq!(
        (requests["id"].as_str(), requests["before"].as_f64()),
        (Some("requests"), Some(5.0))
    );
    assert_eq!(requests["after"].as_f64(), Some(5.0));
    let failed = c["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "failed")
        .unwrap();
    assert_eq!(
        (failed["before"].as_f64(), failed["after"].as_f64()),
        (Some(1.0), Some(0.0))
    );
    assert_eq!(failed["verdict"], "better");

    for (format, lang, marker) in [
        ("md", "en", "## Before → after"),
        ("md", "tr", "## Önce → sonra"),
        ("table", "en", "Before → after"),
        ("html", "tr", "<h2>Önce → sonra</h2>"),
    ] {
        let out = tollgate(&[
            "report",
            "--no-progress",
            "--format",
            format,
            "--lang",
            lang,
            "--baseline",
            before,
            after,
        ]);
        assert!(out.status.success(), "{format}/{lang}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(marker), "{format}/{lang}: no {marker:?} in\n{stdout}");
        assert!(stdout.contains("before.json"), "{format}/{lang}: names the before file");
    }
}

#[test]
fn report_with_a_bad_baseline_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("payload.jsonl");
    let input = input.to_str().unwrap();
    // A log is not a report.
    let out = tollgate(&["report", "--no-progress", "--baseline", input, input]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("payload.jsonl") && err.contains("not a tollgate JSON report"),
        "{err}"
    );
    assert!(err.contains("--format json"), "says what to give instead: {err}");
    assert!(out.stdout.is_empty(), "no report on a bad baseline");

    let missing = dir.path().join("nope.json");
    let out = tollgate(&[
        "report",
        "--no-progress",
        "--baseline",
        missing.to_str().unwrap(),
        input,
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nope.json") && err.contains("cannot read"), "{err}");
}
