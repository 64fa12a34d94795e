//! The mock's imitation of provider-side prompt caching: a request whose prefix (every message
//! but the last) was sent before reports part of its prompt as cached, as DeepSeek, OpenAI and
//! Gemini do, so the gateway's accounting of cache-read tokens is exercised.

use std::collections::{HashSet, VecDeque};

/// Prefixes remembered; the oldest is forgotten first, like a provider's cache eviction.
pub(crate) const CAPACITY: usize = 10_000;

/// Providers cache in blocks; reporting a multiple of 64 mimics DeepSeek's granularity.
pub(crate) const BLOCK_TOKENS: u64 = 64;

#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl PromptCache {
    /// Whether `prefix` was seen before; remembers it either way.
    pub(crate) fn check_and_remember(&mut self, prefix: u64) -> bool {
        if self.seen.contains(&prefix) {
            return true;
        }
        if self.order.len() >= CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(prefix);
        self.order.push_back(prefix);
        false
    }

    pub(crate) fn clear(&mut self) {
        self.seen.clear();
        self.order.clear();
    }
}

/// Cached tokens reported for a prefix of `prefix_tokens`: whole blocks only, never more than the
/// prompt.
pub(crate) fn cached_tokens(prefix_tokens: u64, prompt_tokens: u64) -> u64 {
    (prefix_tokens / BLOCK_TOKENS * BLOCK_TOKENS).min(prompt_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_evicts_oldest_first() {
        let mut cache = PromptCache::default();
        assert!(!cache.check_and_remember(1));
        assert!(cache.check_and_remember(1));
        for k in 2..=CAPACITY as u64 {
            cache.check_and_remember(k);
        }
        assert!(cache.check_and_remember(1), "still within capacity");
        cache.check_and_remember(u64::MAX);
        assert!(!cache.check_and_remember(1), "evicted as the oldest");
    }

    #[test]
    fn whole_blocks_only() {
        assert_eq!(cached_tokens(63, 1000), 0);
        assert_eq!(cached_tokens(130, 1000), 128);
        assert_eq!(cached_tokens(130, 100), 100);
    }
}
