//! CPU per LiteLLM payload line, one thread: the full serde path against the field-selective one,
//! what the field-selective walk and serde's skipping cost alone, and the prompt hash (the floor
//! both paths share), one message at a time or two alternated block by block as
//! `import::sha_pairs` does. Best of several passes, so it can be run on a machine that is not
//! idle.
//!
//!     cargo bench -p tollgate-report --bench payload_lines -- [FILE] [PASSES]
//!     PAYLOAD_BENCH_ONLY=sha cargo bench ...   # only the cases whose name contains "sha"
//!
//! FILE defaults to bench/out/litellm-300mb.jsonl (`bench/run.sh --report-only` makes it);
//! without it, the test fixture is used. Under `cargo test` it runs over the fixture.

use std::time::Instant;

use sha2::Digest;
use sha2::block_api::compress256;
use tollgate_core::PriceTable;
use tollgate_report::import::litellm::{payload_to_record, payload_to_record_fast};
use tollgate_report::import::scan::Members;

#[derive(serde::Deserialize)]
struct Nothing {}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/out/litellm-300mb.jsonl");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/payload.jsonl");
    // `cargo bench` passes --bench; `cargo test` (a debug build) gets the small fixture.
    let benching = std::env::args().any(|a| a == "--bench");
    let path = match args.first() {
        Some(p) => p.as_str(),
        None if benching && std::path::Path::new(default).exists() => default,
        None => fixture,
    };
    let passes: usize = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(3);
    let text = std::fs::read(path)?;
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').filter(|l| l.len() > 1).collect();
    let prices = PriceTable::builtin();
    let mb = text.len() as f64 / 1e6;
    println!("{path}: {} lines, {mb:.0} MB, best of {passes}", lines.len());
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
        println!("{name:>32}: {:7.1} ms  {:6.0} MB/s  ({check})", best * 1e3, mb / best);
    };
    time("full serde path", &|l| {
        payload_to_record(l, &prices).map_or(0, |r| r.prompt_tokens as usize)
    });
    time("field-selective path", &|l| {
        payload_to_record_fast(l, &prices).map_or(0, |r| r.prompt_tokens as usize)
    });
    time("walk: no field kept", &|l| {
        let Ok(mut m) = Members::new(l, "messages") else {
            return 0;
        };
        let ok = <Nothing as serde::Deserialize>::deserialize(&mut m).is_ok();
        usize::from(ok) + m.held().map_or(0, <[u8]>::len)
    });
    time("serde: skip the line", &|l| {
        usize::from(serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok())
    });
    time("sha256 of the line", &|l| usize::from(sha2::Sha256::digest(l)[0]));
    // Whole blocks only: enough to compare one stream with two.
    time("sha256 blocks, one stream", &|l| {
        let mut s = [0u32; 8];
        for block in l.as_chunks::<64>().0 {
            compress256(&mut s, std::slice::from_ref(block));
        }
        s[0] as usize
    });
    time("sha256 blocks, two alternated", &|l| {
        let (x, y) = l.split_at(l.len() / 2);
        let (mut s1, mut s2) = ([0u32; 8], [0u32; 8]);
        for (a, b) in x.as_chunks::<64>().0.iter().zip(y.as_chunks::<64>().0) {
            compress256(&mut s1, std::slice::from_ref(a));
            compress256(&mut s2, std::slice::from_ref(b));
        }
        (s1[0] ^ s2[0]) as usize
    });
    Ok(())
}
