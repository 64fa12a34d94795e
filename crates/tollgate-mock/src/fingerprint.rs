//! Stable 64-bit fingerprints of prompts (FNV-1a).
//!
//! std's `DefaultHasher` may change between Rust releases; the mock's answers must not, or
//! benchmark and golden outputs would shift with the toolchain.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(OFFSET)
    }
}

impl Fingerprint {
    pub(crate) fn add(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
        self
    }

    /// Adds a field followed by a separator, so ("ab", "c") and ("a", "bc") differ.
    pub(crate) fn field(&mut self, s: &str) -> &mut Self {
        self.add(s.as_bytes()).add(&[0xff])
    }

    pub(crate) fn value(&self) -> u64 {
        // FNV alone barely changes the high bits when only the last byte differs (embedding
        // dimensions came out as an arithmetic progression); splitmix64's finaliser spreads
        // every input bit over the whole word.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_separating() {
        // The published FNV-1a 64 test vector: if this moves, every mock answer moves.
        assert_eq!(Fingerprint::default().add(b"a").0, 0xaf63_dc4c_8601_ec8c);
        let of = |s: &str| Fingerprint::default().field(s).value();
        assert_ne!(of("hello"), of("hellp"));
        let mut a = Fingerprint::default();
        a.field("ab").field("c");
        let mut b = Fingerprint::default();
        b.field("a").field("bc");
        assert_ne!(a.value(), b.value());
    }
}
