//! Where `os.environ/` references (and `DATABASE_URL`) are read from. Kept apart from `config` so
//! that modules the loader uses (`database`) read the environment without importing the loader.

use std::collections::BTreeMap;

/// Reads the process environment; a trait so tests can supply their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}
