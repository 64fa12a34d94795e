//! Open-loop, fixed-rate measurement of the latency the gateway adds.
//!
//! ```text
//! cargo bench -p tollgate-gateway --bench overhead -- --rate 100 --rate 500 --rate 1000 --seconds 10
//! ```
//!
//! The mock provider (zero delay) and the gateway each run in their own process: this binary
//! re-executes itself with `--child-mock` / `--child-gateway`, which run exactly the library
//! code `tollgate mock` and `tollgate serve` run (`tollgate_mock::serve`, `tollgate_gateway::start`
//! on a default multi-threaded runtime). The load generator therefore shares no runtime with what
//! it measures (it still shares the machine's cores).
//!
//! For every rate, requests are launched on a fixed schedule (one every 1/rate s, whether or not
//! earlier ones have completed), first straight to the mock, then through the gateway. A
//! request's latency runs from its *scheduled* start to the end of its body, so a stalled
//! server cannot hide queueing (no coordinated omission). Latencies go into HDR histograms.
//!
//! The gateway records every request (SQLite + JSONL, with master-key auth and cost accounting
//! on); after the run its own `overhead_ms` (total minus upstream time) is read back from SQLite.
//!
//! Without `--rate` (as under `cargo test`, or a bare `cargo bench`) it does a ~0.5 s smoke run.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use tollgate_core::RecordStatus;

const MASTER_KEY: &str = "sk-bench-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e";
const MODEL: &str = "deepseek-v3.2";
/// Histogram bounds in microseconds: 1 µs .. 60 s, 3 significant digits.
const HIST_MAX_US: u64 = 60_000_000;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

struct Opts {
    rates: Vec<u32>,
    seconds: f64,
    warmup: f64,
    client_threads: usize,
    smoke: bool,
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut rates = Vec::new();
    let mut seconds = None;
    let mut warmup = None;
    let mut client_threads = 1;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--rate" => rates.push(value("--rate")?.parse::<u32>().map_err(|e| format!("--rate: {e}"))?),
            "--seconds" => {
                seconds = Some(
                    value("--seconds")?
                        .parse::<f64>()
                        .map_err(|e| format!("--seconds: {e}"))?,
                )
            }
            "--warmup" => {
                warmup = Some(
                    value("--warmup")?
                        .parse::<f64>()
                        .map_err(|e| format!("--warmup: {e}"))?,
                )
            }
            "--client-threads" => {
                client_threads = value("--client-threads")?
                    .parse::<usize>()
                    .map_err(|e| format!("--client-threads: {e}"))?
                    .max(1)
            }
            "--help" | "-h" => {
                return Err("usage: overhead [--rate N]... [--seconds S] [--warmup S] [--client-threads N]".into());
            }
            // `--bench`, test-harness flags and name filters that cargo passes: ignored.
            _ => {}
        }
    }
    if rates.contains(&0) {
        return Err("--rate must be at least 1".into());
    }
    let smoke = rates.is_empty();
    if smoke {
        rates.push(50);
    }
    let seconds = seconds.unwrap_or(if smoke { 0.5 } else { 10.0 });
    let warmup = warmup.unwrap_or(if smoke { 0.1 } else { seconds.min(5.0) * 0.2 });
    Ok(Opts {
        rates,
        seconds,
        warmup,
        client_threads,
        smoke,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-mock") => return child_mock(),
        Some("--child-gateway") => return child_gateway(&args[1..]),
        _ => {}
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("overhead: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes: the mock and the gateway
// ---------------------------------------------------------------------------------------------

/// Blocks until the parent closes our stdin (or dies).
async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
}

fn child_mock() {
    // One worker: the mock is the baseline and should take as little of the 2 cores as it can.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        println!("READY {}", listener.local_addr().expect("addr"));
        std::io::stdout().flush().ok();
        tokio::select! {
            r = tollgate_mock::serve(listener, tollgate_mock::MockConfig::default()) => {
                if let Err(e) = r { eprintln!("mock: {e}"); }
            }
            _ = stdin_closed() => {}
        }
    });
}

fn child_gateway(args: &[String]) {
    let [upstream, data_dir] = args else {
        eprintln!("--child-gateway UPSTREAM_BASE DATA_DIR");
        std::process::exit(2);
    };
    let data_dir = PathBuf::from(data_dir);
    // The same runtime `tollgate serve` builds: multi-threaded, one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let yaml = format!(
            "model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: deepseek/deepseek-v3.2\n      api_base: {upstream}\n      api_key: bench-upstream-key\ngeneral_settings:\n  master_key: {MASTER_KEY}\n"
        );
        let env = std::collections::BTreeMap::new();
        let cfg = tollgate_core::config::parse(&yaml, Path::new("bench-config.yaml"), &env)
            .expect("config");
        let live = tollgate_gateway::LiveState::build(cfg, 1, None, &env).expect("live state");
        let opts = tollgate_gateway::ServeOptions {
            port: 0,
            log_jsonl: Some(data_dir.join("records.jsonl")),
            data_dir,
            ..tollgate_gateway::ServeOptions::default()
        };
        let gw = tollgate_gateway::start(live, opts).await.expect("gateway");
        println!("READY {}", gw.addr);
        std::io::stdout().flush().ok();
        stdin_closed().await;
        let s = gw.shutdown().await.expect("writer shutdown");
        println!("DONE written={} failed={} dropped={}", s.written, s.failed, s.dropped);
        std::io::stdout().flush().ok();
    });
}

/// A child process; killed if dropped before [`Proc::finish`].
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    addr: String,
}

impl Proc {
    fn spawn(args: &[&str]) -> Result<Proc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {args:?}: {e}"))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| format!("{args:?}: {e}"))?;
        let addr = line
            .trim()
            .strip_prefix("READY ")
            .ok_or_else(|| format!("{args:?} did not start: {line:?}"))?
            .to_string();
        Ok(Proc {
            child,
            stdin,
            stdout,
            addr,
        })
    }

    /// CPU time (user + system) the process has used so far, from /proc (Linux only).
    fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // USER_HZ is 100 on every Linux this runs on.
        Some(Duration::from_millis(ticks * 10))
    }

    /// Closes stdin (the child's signal to stop), returns what it printed last, waits for exit.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let mut out = String::new();
        let mut line = String::new();
        while self.stdout.read_line(&mut line).unwrap_or(0) > 0 {
            out.push_str(&line);
            line.clear();
        }
        let _ = self.child.wait();
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load generation
// ---------------------------------------------------------------------------------------------

fn request_body() -> Vec<u8> {
    let user = format!(
        "Add input validation to parse_config in src/config.rs and cover it with tests. {}",
        "The editor context follows: fn parse_config(text: &str) -> Result<Config, Error> { todo!() } ".repeat(9)
    );
    serde_json::to_vec(&json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a careful coding assistant inside an editor. Answer briefly and cite the files you change."},
            {"role": "user", "content": user},
        ],
        "temperature": 0.2,
        "max_tokens": 256,
    }))
    .expect("encode")
}

struct Target {
    url: String,
    client: reqwest::Client,
}

impl Target {
    fn new(base: &str) -> Result<Target, String> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(4096)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Target {
            url: format!("http://{base}/v1/chat/completions"),
            client,
        })
    }
}

#[derive(Default)]
struct Phase {
    hist: Option<Histogram<u64>>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    /// From the first scheduled start to the last completion.
    wall: Duration,
    /// Worst delay between a request's scheduled start and the moment its task ran.
    max_launch_lag: Duration,
    sent: u64,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("histogram bounds")
}

async fn one_request(
    target: Arc<Target>,
    body: bytes::Bytes,
    workflow: Arc<str>,
    scheduled: Instant,
) -> (Duration, Result<Duration, String>) {
    let lag = scheduled.elapsed();
    let result = async {
        let resp = target
            .client
            .post(&target.url)
            .bearer_auth(MASTER_KEY)
            .header("content-type", "application/json")
            .header("x-tollgate-workflow", &*workflow)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ));
        }
        Ok(scheduled.elapsed())
    }
    .await;
    (lag, result)
}

/// Launches `rate * seconds` requests on a fixed schedule and waits for all of them.
fn run_phase(
    rt: &tokio::runtime::Runtime,
    target: &Arc<Target>,
    body: &bytes::Bytes,
    rate: u32,
    seconds: f64,
    workflow: &str,
) -> Phase {
    let n = ((rate as f64) * seconds).round().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let workflow: Arc<str> = Arc::from(workflow);
    let mut handles = Vec::with_capacity(n as usize);
    let start = Instant::now();
    // The schedule runs on this (non-runtime) thread with fine-grained sleeps; tokio's timer has
    // a 1 ms granularity, too coarse for 1000 req/s. A late tick launches at once (open loop).
    for i in 0..n {
        let scheduled = start + interval * (i as u32);
        let now = Instant::now();
        if scheduled > now {
            std::thread::sleep(scheduled - now);
        }
        handles.push(rt.spawn(one_request(target.clone(), body.clone(), workflow.clone(), scheduled)));
    }
    let mut phase = Phase {
        hist: Some(new_hist()),
        sent: n,
        ..Phase::default()
    };
    rt.block_on(async {
        for h in handles {
            match h.await {
                Ok((lag, r)) => {
                    phase.max_launch_lag = phase.max_launch_lag.max(lag);
                    match r {
                        Ok(lat) => {
                            phase.ok += 1;
                            if let Some(hist) = phase.hist.as_mut() {
                                hist.saturating_record(lat.as_micros() as u64);
                            }
                        }
                        Err(e) => {
                            phase.errors += 1;
                            phase.first_error.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    phase.errors += 1;
                    phase.first_error.get_or_insert(format!("task: {e}"));
                }
            }
        }
    });
    phase.wall = start.elapsed();
    phase
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const QUANTILES: [(&str, f64); 4] = [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)];

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn q(h: &Histogram<u64>, quantile: f64) -> u64 {
    if quantile >= 1.0 {
        h.max()
    } else {
        h.value_at_quantile(quantile)
    }
}

struct RateResult {
    rate: u32,
    direct: Phase,
    gateway: Phase,
    direct_cpu: Option<Duration>,
    gateway_cpu: Option<Duration>,
    recorded: Option<Histogram<u64>>,
}

fn print_phase(name: &str, rate: u32, p: &Phase, cpu: Option<Duration>) {
    let achieved = p.ok as f64 / p.wall.as_secs_f64();
    let mut line = format!(
        "  {name:<8} offered {rate:>5}/s  achieved {achieved:>7.1}/s  ok {:>6}  errors {:>4}",
        p.ok, p.errors
    );
    if let Some(h) = &p.hist
        && !h.is_empty()
    {
        for (label, quant) in QUANTILES {
            line.push_str(&format!("  {label} {:>7.3}", ms(q(h, quant))));
        }
        line.push_str(" ms");
    }
    line.push_str(&format!(
        "  launch lag max {:.3} ms",
        p.max_launch_lag.as_secs_f64() * 1000.0
    ));
    if let Some(c) = cpu {
        line.push_str(&format!(
            "  server CPU {:.0} µs/req",
            c.as_secs_f64() * 1e6 / p.sent.max(1) as f64
        ));
    }
    println!("{line}");
    if let Some(e) = &p.first_error {
        println!("    first error: {e}");
    }
}

fn print_result(r: &RateResult) {
    println!("rate {} req/s:", r.rate);
    print_phase("direct", r.rate, &r.direct, r.direct_cpu);
    print_phase("gateway", r.rate, &r.gateway, r.gateway_cpu);
    if let (Some(d), Some(g)) = (&r.direct.hist, &r.gateway.hist)
        && !d.is_empty()
        && !g.is_empty()
    {
        let mut line = "  added   ".to_string();
        for (label, quant) in QUANTILES {
            let diff = q(g, quant) as f64 - q(d, quant) as f64;
            line.push_str(&format!("  {label} {:>+7.3}", diff / 1000.0));
        }
        println!("{line} ms (gateway minus direct at the same percentile)");
    }
}

fn print_markdown(results: &[RateResult], seconds: f64) {
    println!();
    println!("Markdown summary ({seconds} s per rate and target; latencies in ms):");
    println!();
    println!(
        "| offered req/s | achieved direct / gateway | errors | direct p50 | direct p99 | gateway p50 | gateway p99 | added p50 | added p99 | recorded overhead p50 | recorded overhead p99 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let (Some(d), Some(g)) = (&r.direct.hist, &r.gateway.hist) else {
            continue;
        };
        if d.is_empty() || g.is_empty() {
            continue;
        }
        let rec = r
            .recorded
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| (format!("{:.3}", ms(q(h, 0.5))), format!("{:.3}", ms(q(h, 0.99)))))
            .unwrap_or_else(|| ("n/a".into(), "n/a".into()));
        println!(
            "| {} | {:.1} / {:.1} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:+.3} | {:+.3} | {} | {} |",
            r.rate,
            r.direct.ok as f64 / r.direct.wall.as_secs_f64(),
            r.gateway.ok as f64 / r.gateway.wall.as_secs_f64(),
            r.direct.errors + r.gateway.errors,
            ms(q(d, 0.5)),
            ms(q(d, 0.99)),
            ms(q(g, 0.5)),
            ms(q(g, 0.99)),
            (q(g, 0.5) as f64 - q(d, 0.5) as f64) / 1000.0,
            (q(g, 0.99) as f64 - q(d, 0.99) as f64) / 1000.0,
            rec.0,
            rec.1,
        );
    }
}

fn run(opts: &Opts) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let data_dir = tmp.path().join("data");
    let mock = Proc::spawn(&["--child-mock"])?;
    let upstream = format!("http://{}/v1", mock.addr);
    let data_arg = data_dir.display().to_string();
    let gateway = Proc::spawn(&["--child-gateway", &upstream, &data_arg])?;
    println!(
        "overhead: mock pid {} on {}, gateway pid {} on {} (records in {}); {} client thread(s){}",
        mock.child.id(),
        mock.addr,
        gateway.child.id(),
        gateway.addr,
        data_dir.display(),
        opts.client_threads,
        if opts.smoke {
            "; smoke run (pass --rate N to measure)"
        } else {
            ""
        }
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let body = bytes::Bytes::from(request_body());
    println!("request body {} B, plain (non-streamed) chat", body.len());
    let direct = Arc::new(Target::new(&mock.addr)?);
    let via = Arc::new(Target::new(&gateway.addr)?);

    let mut results = Vec::new();
    for &rate in &opts.rates {
        run_phase(&rt, &direct, &body, rate, opts.warmup, "warmup");
        let cpu0 = mock.cpu();
        let d = run_phase(&rt, &direct, &body, rate, opts.seconds, "direct");
        let direct_cpu = mock.cpu().zip(cpu0).map(|(a, b)| a.saturating_sub(b));

        run_phase(&rt, &via, &body, rate, opts.warmup, "warmup");
        let cpu0 = gateway.cpu();
        let g = run_phase(&rt, &via, &body, rate, opts.seconds, &format!("bench-{rate}"));
        // The gateway process's own CPU (the mock behind it is another process).
        let gateway_cpu = gateway.cpu().zip(cpu0).map(|(a, b)| a.saturating_sub(b));
        let r = RateResult {
            rate,
            direct: d,
            gateway: g,
            direct_cpu,
            gateway_cpu,
            recorded: None,
        };
        print_result(&r);
        results.push(r);
    }
    drop(rt);

    let done = gateway.finish();
    println!("gateway stopped: {}", done.trim());
    drop(mock.finish());

    // The gateway's own view: overhead_ms per record, grouped by the rate's workflow tag.
    let mut recorded: std::collections::HashMap<String, Histogram<u64>> = Default::default();
    let records = tollgate_store::read_sqlite(&data_dir).map_err(|e| format!("read records: {e}"))?;
    for rec in records {
        let rec = rec.map_err(|e| format!("read record: {e}"))?;
        let (Some(w), Some(o)) = (&rec.workflow, rec.overhead_ms) else {
            continue;
        };
        if rec.status != RecordStatus::Success {
            continue;
        }
        recorded
            .entry(w.clone())
            .or_insert_with(new_hist)
            .saturating_record((o * 1000.0).round() as u64);
    }
    println!();
    println!("recorded by the gateway (overhead_ms = total minus upstream time):");
    for r in &mut results {
        r.recorded = recorded.remove(&format!("bench-{}", r.rate));
        if let Some(h) = &r.recorded {
            println!(
                "  rate {:>5}: n={} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
                r.rate,
                h.len(),
                ms(q(h, 0.5)),
                ms(q(h, 0.99)),
                ms(h.max())
            );
        }
    }
    print_markdown(&results, opts.seconds);

    if opts.smoke {
        let r = &results[0];
        if r.direct.ok == 0 || r.gateway.ok == 0 || r.recorded.is_none() {
            return Err(format!(
                "smoke run failed: direct ok {} (first error {:?}), gateway ok {} (first error {:?}), records {}",
                r.direct.ok,
                r.direct.first_error,
                r.gateway.ok,
                r.gateway.first_error,
                r.recorded.as_ref().map_or(0, |h| h.len())
            ));
        }
        println!("overhead: smoke run ok");
    }
    Ok(())
}
