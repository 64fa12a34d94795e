//! CPU per LiteLLM payload line, one thread: the full serde path against the field-selective one,
//! and the prompt hash alone (the floor both share). Best of several passes, so it can be run on a
//! machine that is not idle.
//!
//!     cargo bench -p tollgate-report --bench payload_lines -- [FILE] [PASSES]
//!
//! FILE defaults to bench/out/litellm-300mb.jsonl (bench/run.sh --report-only makes it); without
//! it, the test fixture is used. Under `cargo test` it runs one pass over the fixture.

use std::time::Instant;

use tollgate_core::PriceTable;
use tollgate_report::import::litellm::{payload_to_record, payload_to_record_fast};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let default = format!("{root}/bench/out/litellm-300mb.jsonl");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/payload.jsonl").to_string();
    let path = args
        .first()
        .cloned()
        .unwrap_or(if std::path::Path::new(&default).exists() {
            default
        } else {
            fixture
        });
    let passes: usize = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(3);
    let text = std::fs::read(&path).expect("read the file");
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').filter(|l| l.len() > 1).collect();
    let prices = PriceTable::builtin();
    let mb = text.len() as f64 / 1e6;
    println!("{path}: {} lines, {mb:.0} MB, best of {passes}", lines.len());
    // PAYLOAD_BENCH_ONLY=scan runs only the cases whose name contains "scan" (for a profiler).
    let only = std::env::var("PAYLOAD_BENCH_ONLY").unwrap_or_default();
    let time = |name: &str, f: &dyn Fn(&[u8]) -> usize| {
        if !name.contains(&only) {
            return;
        }
        let mut best = f64::INFINITY;
        let mut check = 0;
        for _ in 0..passes {
            let t = Instant::now();
            check = lines.iter().map(|l| f(l)).sum::<usize>();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name:>28}: {:7.1} ms  {:6.0} MB/s  ({check})", best * 1e3, mb / best);
    };
    time("full serde path", &|l| {
        payload_to_record(l, &prices).map_or(0, |r| r.prompt_tokens as usize)
    });
    time("field-selective path", &|l| {
        payload_to_record_fast(l, &prices).map_or(0, |r| r.prompt_tokens as usize)
    });
    time("sha256 of the whole line", &|l| {
        use sha2::Digest;
        sha2::Sha256::digest(l)[0] as usize
    });
    time("utf-8 check of the line", &|l| {
        std::str::from_utf8(l).map_or(0, str::len)
    });
    time("sha256 blocks, one stream", &|l| {
        let mut st = [0u32; 8];
        for b in l.chunks_exact(64) {
            sha2::block_api::compress256(&mut st, &[b.try_into().unwrap()]);
        }
        st[0] as usize
    });
    time("sha256 blocks, two streams", &|l| {
        let (x, y) = l.split_at(l.len() / 2);
        let (mut s1, mut s2) = ([0u32; 8], [1u32; 8]);
        for (a, b) in x.chunks_exact(64).zip(y.chunks_exact(64)) {
            sha2::block_api::compress256(&mut s1, &[a.try_into().unwrap()]);
            sha2::block_api::compress256(&mut s2, &[b.try_into().unwrap()]);
        }
        (s1[0] ^ s2[0]) as usize
    });
    let hot = lines[0].to_vec();
    time("sha256 hot line, one stream", &|_| {
        use sha2::Digest;
        sha2::Sha256::digest(&hot)[0] as usize
    });
    time("sha256 hot line, two streams", &|_| {
        let (x, y) = hot.split_at(hot.len() / 2);
        let (mut s1, mut s2) = ([0u32; 8], [1u32; 8]);
        for (a, b) in x.chunks_exact(64).zip(y.chunks_exact(64)) {
            sha2::block_api::compress256(&mut s1, &[a.try_into().unwrap()]);
            sha2::block_api::compress256(&mut s2, &[b.try_into().unwrap()]);
        }
        (s1[0] ^ s2[0]) as usize
    });
    time("sha256 blocks, four streams", &|l| {
        let q = l.len() / 4;
        let (mut s, mut n) = ([[0u32; 8]; 4], 0);
        let parts: Vec<&[u8]> = l.chunks(q.max(64)).take(4).collect();
        let blocks = parts.iter().map(|p| p.len() / 64).min().unwrap_or(0);
        for i in 0..blocks {
            for (k, p) in parts.iter().enumerate() {
                sha2::block_api::compress256(&mut s[k], &[p[i * 64..i * 64 + 64].try_into().unwrap()]);
            }
            n += 1;
        }
        (s[0][0] ^ s[3][0]) as usize + n
    });
    #[derive(serde::Deserialize)]
    struct Nothing {}
    time("scan: no field kept", &|l| {
        let Ok(mut m) = tollgate_report::import::scan::Members::new(l, "messages") else {
            return 0;
        };
        let ok = <Nothing as serde::Deserialize>::deserialize(&mut m).is_ok();
        usize::from(ok) + m.held().map_or(0, <[u8]>::len)
    });
    time("serde: skip the line", &|l| {
        usize::from(serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok())
    });
}
