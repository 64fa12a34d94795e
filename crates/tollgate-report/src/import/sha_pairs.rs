//! SHA-256 of many messages, two at a time.
//!
//! The prompt fingerprint is a SHA-256 of ~50 KB per LiteLLM payload line, a third of the
//! report's CPU. With the SHA extensions each block's rounds wait on the previous round's result,
//! so one message leaves the unit idle part of the time; feeding two messages' blocks
//! alternately lets the CPU overlap them: 1.3–1.5× the throughput of one stream on the bench
//! machine (`cargo bench -p tollgate-report --bench payload_lines`). The blocks are compressed by
//! `sha2` itself; only the padding (FIPS 180-4, 5.1.1) is done here, and the digests are checked
//! against `sha2::Sha256` in the tests.

use sha2::block_api::compress256;

/// FIPS 180-4, 5.3.3.
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// One message, given as pieces to be hashed as if joined, cut into padded blocks.
struct Blocks<'a> {
    pieces: [&'a [u8]; 3],
    /// Which piece, and where in it, the next byte comes from.
    at: (usize, usize),
    bits: u64,
    /// The end marker was placed but the length did not fit after it.
    length_due: bool,
    done: bool,
}

impl<'a> Blocks<'a> {
    fn new(pieces: [&'a [u8]; 3]) -> Blocks<'a> {
        let bytes: usize = pieces.iter().map(|p| p.len()).sum();
        Blocks {
            pieces,
            at: (0, 0),
            bits: (bytes as u64).wrapping_mul(8),
            length_due: false,
            done: false,
        }
    }

    /// Copies the next message bytes into `out`; how many there were.
    fn fill(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() && self.at.0 < self.pieces.len() {
            let piece = &self.pieces[self.at.0][self.at.1..];
            let k = piece.len().min(out.len() - n);
            out[n..n + k].copy_from_slice(&piece[..k]);
            n += k;
            if k == piece.len() {
                self.at = (self.at.0 + 1, 0);
            } else {
                self.at.1 += k;
            }
        }
        n
    }

    /// The whole blocks that can be read in place from the current piece (the bulk of a prompt),
    /// without copying.
    fn in_place(&self) -> &'a [[u8; 64]] {
        let piece = self.pieces.get(self.at.0).map_or(&[][..], |p| &p[self.at.1..]);
        piece.as_chunks::<64>().0
    }

    /// Moves past `n` blocks taken from [`Blocks::in_place`].
    fn skip(&mut self, n: usize) {
        self.at.1 += n * 64;
        if self.pieces.get(self.at.0).is_some_and(|p| self.at.1 == p.len()) {
            self.at = (self.at.0 + 1, 0);
        }
    }

    fn next(&mut self) -> Option<[u8; 64]> {
        if self.done {
            return None;
        }
        let mut block = [0u8; 64];
        if self.length_due {
            block[56..].copy_from_slice(&self.bits.to_be_bytes());
            self.done = true;
            return Some(block);
        }
        let n = self.fill(&mut block);
        if n == 64 {
            return Some(block);
        }
        // The message ends in this block: a 1 bit, zeros, and the length in the last 8 bytes.
        block[n] = 0x80;
        if n + 1 + 8 <= 64 {
            block[56..].copy_from_slice(&self.bits.to_be_bytes());
            self.done = true;
        } else {
            self.length_due = true;
        }
        Some(block)
    }
}

fn hex(state: &[u32; 8]) -> String {
    let mut bytes = [0u8; 32];
    for (out, word) in bytes.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    hex::encode(bytes)
}

/// The lowercase hex SHA-256 of each message (its pieces joined), in order.
///
/// Two lanes each hash one message; a lane whose message ends takes the next one, so the two
/// stay busy together until the last message (pairing messages two by two would leave the
/// longer of each pair to finish alone, a third of the work with prompts of unequal lengths).
pub fn sha256_hex_many(messages: &[[&[u8]; 3]]) -> Vec<String> {
    let mut out = vec![String::new(); messages.len()];
    let mut queue = messages.iter().enumerate();
    let mut lanes: [Option<Lane>; 2] = [None, None];
    loop {
        for lane in &mut lanes {
            if lane.is_none() {
                *lane = queue.next().map(|(i, m)| Lane {
                    index: i,
                    blocks: Blocks::new(*m),
                    state: H0,
                });
            }
        }
        match &mut lanes {
            [Some(a), Some(b)] => {
                // One block of each in turn: the two compressions are independent, so they overlap.
                let (ra, rb) = (a.blocks.in_place(), b.blocks.in_place());
                let n = ra.len().min(rb.len());
                for (x, y) in ra[..n].iter().zip(&rb[..n]) {
                    compress256(&mut a.state, std::slice::from_ref(x));
                    compress256(&mut b.state, std::slice::from_ref(y));
                }
                a.blocks.skip(n);
                b.blocks.skip(n);
                if n == 0 {
                    // At a piece's edge or a message's end: a copied block each.
                    for lane in &mut lanes {
                        if let Some(l) = lane
                            && !l.step()
                        {
                            out[l.index] = hex(&l.state);
                            *lane = None;
                        }
                    }
                }
            }
            // The last message: alone.
            [Some(l), None] | [None, Some(l)] => {
                out[l.index] = hex(&one(&mut l.blocks, l.state));
                lanes = [None, None];
            }
            [None, None] => return out,
        }
    }
}

/// A message being hashed.
struct Lane<'a> {
    index: usize,
    blocks: Blocks<'a>,
    state: [u32; 8],
}

impl Lane<'_> {
    /// Compresses the next block; false once the message is done.
    fn step(&mut self) -> bool {
        match self.blocks.next() {
            Some(block) => {
                compress256(&mut self.state, std::slice::from_ref(&block));
                true
            }
            None => false,
        }
    }
}

fn one(m: &mut Blocks<'_>, mut state: [u32; 8]) -> [u32; 8] {
    let bulk = m.in_place();
    compress256(&mut state, bulk);
    m.skip(bulk.len());
    while let Some(block) = m.next() {
        compress256(&mut state, std::slice::from_ref(&block));
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn digests_are_sha256() {
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut messages = Vec::new();
        // Every padding case (lengths around 55, 56, 63, 64, 119, 120 ...) and piece boundaries.
        for len in (0..200).chain([447, 448, 500, 511, 512, 513, 699]) {
            let m = &data[..len];
            let cut = len / 3;
            messages.push([&m[..cut], b"\n".as_slice(), &m[cut..]]);
            messages.push([m, &[][..], &[][..]]);
        }
        let got = sha256_hex_many(&messages);
        for (m, h) in messages.iter().zip(&got) {
            let joined = m.concat();
            assert_eq!(
                h,
                &hex::encode(sha2::Sha256::digest(&joined)),
                "length {}",
                joined.len()
            );
        }
        assert_eq!(got.len(), messages.len());
        assert!(sha256_hex_many(&[]).is_empty());
    }
}
