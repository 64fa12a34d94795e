//! Which of the tests' outside dependencies this machine has, as `cfg`s for the test crates.
//!
//! A test that needs Redis, Postgres, a `redis-server` binary or the shared LiteLLM corpus is
//! marked `#[cfg_attr(not(tollgate_redis), ignore = "needs Redis: …")]` (and so on). Without the
//! dependency, `cargo test` lists it as ignored with that reason in its summary, instead of a
//! silent early return that passes. In CI (`TOLLGATE_CI` set, as `.ci/run` does) every cfg is on,
//! so a missing dependency fails the test rather than skipping it.
//!
//! Used from each test crate's `build.rs`: `fn main() { tollgate_testenv::emit(); }`.

use std::path::{Path, PathBuf};

/// The cfgs, each with whether this machine has what it stands for.
pub fn detect(manifest_dir: &Path, env: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, bool)> {
    let ci = env("TOLLGATE_CI").is_some_and(|v| !v.is_empty() && v != "0");
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    let on_path =
        |bin: &str| env("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(bin).is_file()));
    vec![
        ("tollgate_redis", ci || set("TOLLGATE_TEST_REDIS_URL")),
        ("tollgate_postgres", ci || set("TOLLGATE_TEST_POSTGRES_URL")),
        ("tollgate_redis_server", ci || on_path("redis-server")),
        ("tollgate_corpus", ci || corpus_dir(manifest_dir).is_dir()),
    ]
}

/// `shared/corpus` beside the checkout (crates/<name>/ → ../../../shared/corpus).
pub fn corpus_dir(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join("../../../shared/corpus")
}

/// Prints the cargo directives for a build script.
pub fn emit() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    for var in [
        "TOLLGATE_CI",
        "TOLLGATE_TEST_REDIS_URL",
        "TOLLGATE_TEST_POSTGRES_URL",
        "PATH",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed={}", corpus_dir(&manifest_dir).display());
    for (cfg, present) in detect(&manifest_dir, |k| std::env::var(k).ok()) {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if present {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_with(vars: &[(&str, &str)]) -> Vec<(&'static str, bool)> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        detect(Path::new("/nonexistent/crates/x"), move |k| {
            vars.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn nothing_is_assumed_without_the_variables() {
        assert!(detect_with(&[("PATH", "/nonexistent")]).iter().all(|(_, on)| !on));
    }

    #[test]
    fn service_urls_turn_their_tests_on() {
        let d = detect_with(&[("TOLLGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/")]);
        assert!(d.contains(&("tollgate_redis", true)));
        assert!(d.contains(&("tollgate_postgres", false)));
    }

    #[test]
    fn ci_turns_every_test_on_so_a_missing_dependency_fails() {
        assert!(detect_with(&[("TOLLGATE_CI", "1")]).iter().all(|(_, on)| *on));
        assert!(detect_with(&[("TOLLGATE_CI", "0")]).iter().all(|(_, on)| !on));
    }
}
