//! `tollgate report --baseline before.json`, run as a user runs it: keep a JSON report, run the
//! report again on new logs with it, and a wrong or missing before file fails naming it.

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

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tollgate-report/tests/fixtures")
        .join(name)
}

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
