//! `tollgate`: the command line. Thin by design: each subcommand parses its flags and calls a
//! library crate.

mod demo;
mod import_litellm;
mod keys_cli;
mod keys_store;
mod litellm_rows;

/// A profile at saturation showed the system allocator at ~12% of the gateway's CPU (many small,
/// short-lived JSON values per request); mimalloc's thread-local free lists fit that pattern.
/// Built without transparent huge pages (`no_thp`): with them, its arenas were faulted in 2 MB
/// at a time and an idle gateway held 37 MB resident instead of 22 MB (16 MB of `AnonHugePages`
/// in `/proc/PID/smaps_rollup`; `MIMALLOC_ALLOW_THP=0` showed the same difference).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tollgate_core::PriceTable;
use tollgate_core::config::{self, GatewayConfig, ProcessEnv, master_key_problem};
use tollgate_core::database::{DatabaseChoice, choose_database};
use tollgate_gateway::{LiveState, ServeOptions};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "An LLM gateway that runs on LiteLLM's config.yaml, records every request with exact cost, and explains its traffic",
    long_about = "tollgate serves OpenAI's API in front of DeepSeek, Gemini, MiniMax, Grok, Claude and other providers.\n\
                  Point `tollgate serve` at the config.yaml you use with LiteLLM; `tollgate check` tells you what it does and does not act on.\n\
                  Start with `tollgate demo` to see it work offline."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway on a LiteLLM-format config.yaml.
    Serve(ServeArgs),
    /// Validate a config and print what tollgate will do with it (secrets redacted).
    /// Exit code 0: clean, 1: warnings, 2: invalid.
    Check(CheckArgs),
    /// Run a mock OpenAI-compatible provider (for tests, the demo and benchmarks).
    Mock(MockArgs),
    /// Offline demo: starts a mock provider and the gateway, drives a coding-agent workload, prints a summary.
    Demo(demo::DemoArgs),
    /// Analyse tollgate's records and LiteLLM's logs: cache, reasoning, cost, tokens, latency,
    /// overhead, workflows, and findings with cause, fix and savings (en or tr).
    Report(tollgate_report::ReportArgs),
    /// Manage virtual keys on a running gateway (its /key/* API), or on the store itself with
    /// --data-dir / --database-url: create, list, info, revoke.
    Keys(keys_cli::KeysArgs),
    /// Copy another gateway's state into tollgate's store: `import litellm --db postgres://…`
    /// brings LiteLLM's virtual keys (their hashes as they are, so clients keep their keys).
    Import(import_litellm::ImportArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// LiteLLM config.yaml (model_list, general_settings, litellm_settings, router_settings, include).
    #[arg(long, short, env = "TOLLGATE_CONFIG")]
    config: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// Directory for the SQLite record store (tollgate.sqlite).
    #[arg(long, default_value = "tollgate-data")]
    data_dir: PathBuf,
    /// Also append every record as one JSON line to this file.
    #[arg(long)]
    log_jsonl: Option<PathBuf>,
    /// A LiteLLM model_prices_and_context_window.json to add to the built-in price table.
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Allow starting without a safe master key (local experiments only).
    #[arg(long)]
    insecure_dev: bool,
    /// Do not reload when the config file changes (SIGHUP and POST /admin/reload still do).
    #[arg(long)]
    no_watch: bool,
    /// Seconds in-flight requests may run after SIGTERM/SIGINT; streams still running then end
    /// with an error event and are recorded.
    #[arg(long, default_value_t = 30.0)]
    shutdown_grace: f64,
    /// Serving workers: threads that each accept and serve connections start to finish with
    /// their own runtime and upstream pool. Default: one per core. 0 serves on the shared
    /// multi-threaded runtime instead.
    #[arg(long)]
    workers: Option<usize>,
    /// Postgres database to ship records to, shared by every gateway pointed at it (records are
    /// written to SQLite under --data-dir first). Overrides general_settings.database_url, which
    /// overrides the DATABASE_URL environment variable.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Names this gateway in the records it ships, when several share one database.
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
}

#[derive(Args)]
struct CheckArgs {
    #[arg(long, short, env = "TOLLGATE_CONFIG")]
    config: PathBuf,
    /// A LiteLLM price file to add to the built-in table.
    #[arg(long)]
    prices: Option<PathBuf>,
    /// The Postgres database `serve --database-url` would use (shown with its password masked;
    /// never connected to).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Args)]
struct MockArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8099)]
    port: u16,
    /// Delay before every answer (for streams: before the first byte).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Inject failures: MODEL=RATE, MODEL=RATE:STATUS or MODEL=RATE:MODE with MODE timeout, garbage, reset or stall (repeatable),
    /// e.g. --fail grok-4-1-fast-reasoning=1.0 --fail deepseek-v3.2=0.5:429
    #[arg(long = "fail", value_name = "MODEL=RATE")]
    fail: Vec<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG").unwrap_or_else(|_| "warn,tollgate=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = runtime().and_then(|rt| rt.block_on(run(cli.command)));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `a: b: c`, leaving out a cause whose text the message already
/// carries (most of our errors quote their source in their own message, so anyhow's `{:#}`
/// would print it twice).
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Check(args) => Ok(check(&args)),
        Command::Mock(args) => mock(args).await,
        Command::Demo(args) => demo::run(args).await,
        // On the store itself: blocking clients, off the async runtime.
        Command::Keys(args) if args.uses_store() => tokio::task::spawn_blocking(move || keys_store::run(args))
            .await?
            .map(|()| ExitCode::SUCCESS),
        Command::Keys(args) => keys_cli::run(args).await.map(|()| ExitCode::SUCCESS),
        // The Postgres client is blocking: off the async runtime.
        Command::Import(args) => tokio::task::spawn_blocking(move || import_litellm::import(args))
            .await?
            .map(|()| ExitCode::SUCCESS),
        Command::Report(args) => {
            // Reading and aggregating is CPU-bound and uses its own threads.
            let code = tokio::task::spawn_blocking(move || tollgate_report::run(&args)).await??;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(2)))
        }
    }
}

fn load_prices(path: Option<&PathBuf>) -> anyhow::Result<Option<PriceTable>> {
    path.map(|p| PriceTable::load_file(p).map_err(anyhow::Error::from))
        .transpose()
}

fn load_state(config_path: &std::path::Path, prices: Option<&PathBuf>) -> anyhow::Result<LiveState> {
    let cfg = config::load(config_path, &ProcessEnv)?;
    let state = LiveState::build(cfg, 1, load_prices(prices)?, &ProcessEnv)?;
    Ok(state)
}

/// The database records are shipped to, as `serve` and `check` both decide it: the flag, then
/// the config, then `DATABASE_URL`. An error names where the rejected URL came from.
fn database_for(flag: Option<&str>, cfg: &GatewayConfig) -> anyhow::Result<Option<DatabaseChoice>> {
    let chosen = choose_database(flag, cfg.database.as_ref(), cfg.database_pool_size, &ProcessEnv)
        .map_err(|e| anyhow::anyhow!(e))?;
    if chosen.is_none() && cfg.require_database {
        anyhow::bail!(
            "{}: tollgate_settings.require_database is true but no database is set; pass --database-url, \
             set general_settings.database_url or DATABASE_URL to a postgres:// URL, or remove require_database \
             to keep records in SQLite only",
            cfg.where_is("tollgate_settings.require_database")
        );
    }
    Ok(chosen)
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let live = load_state(&args.config, args.prices.as_ref())?;
    for w in live.all_warnings() {
        eprintln!("warning: {}: {w}", live.config.where_is(&w.path));
    }
    let database = database_for(args.database_url.as_deref(), &live.config)?;
    let instance_id = match args.instance_id {
        Some(id) if id.trim().is_empty() => {
            anyhow::bail!(
                "--instance-id is empty: give this gateway a name (e.g. its host name), or leave the flag out"
            )
        }
        other => other,
    };
    let opts = ServeOptions {
        host: args.host,
        port: args.port,
        data_dir: args.data_dir,
        log_jsonl: args.log_jsonl,
        insecure_dev: args.insecure_dev,
        prices_path: args.prices.clone(),
        watch_config: !args.no_watch,
        shutdown_grace: std::time::Duration::try_from_secs_f64(args.shutdown_grace).map_err(|_| {
            anyhow::anyhow!(
                "--shutdown-grace {}: expected a number of seconds, 0 or more (e.g. 30)",
                args.shutdown_grace
            )
        })?,
        workers: args.workers.unwrap_or_else(tollgate_gateway::workers::default_count),
        database,
        instance_id,
        ..ServeOptions::default()
    };
    let gw = tollgate_gateway::start(live, opts).await?;
    wait_for_stop(&gw).await;
    eprintln!("shutting down: finishing in-flight requests and writing records…");
    let summary = gw.shutdown().await?;
    eprintln!("stopped: {summary}");
    Ok(ExitCode::SUCCESS)
}

/// Serves until SIGINT/SIGTERM; SIGHUP reopens the JSONL file and reloads the config (as nginx and
/// most daemons do).
async fn wait_for_stop(gw: &tollgate_gateway::RunningGateway) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            let stop = shutdown_signal();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = hup.recv() => {
                        let app = gw.app.clone();
                        // The outcome is printed by reload itself.
                        let _ = tokio::task::spawn_blocking(move || app.hangup()).await;
                    }
                }
            }
        }
    }
    shutdown_signal().await;
}

/// SIGINT or SIGTERM (what `docker stop` and systemd send).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    let path = args.config.display().to_string();
    let cfg = match config::load(&args.config, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid: {e}");
            return ExitCode::from(2);
        }
    };
    let prices = match load_prices(args.prices.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("invalid: {e:#}");
            return ExitCode::from(2);
        }
    };
    let live = match LiveState::build(cfg, 1, prices, &ProcessEnv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("invalid: {e}");
            return ExitCode::from(2);
        }
    };
    // Decided exactly as `serve` decides it, so the store line says where records would go.
    let summary_opts = match database_for(args.database_url.as_deref(), &live.config) {
        Ok(database) => ServeOptions {
            database,
            ..ServeOptions::default()
        },
        Err(e) => {
            eprintln!("invalid: {e:#}");
            return ExitCode::from(2);
        }
    };
    println!("# effective config of {path} (secrets redacted)");
    match serde_json::to_string_pretty(&live.config.effective) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("cannot print the config: {e}"),
    }
    println!();
    println!("# what tollgate will serve");
    for line in tollgate_gateway::startup_summary(&live, "(not started)", &summary_opts, true)
        .iter()
        .skip(1)
    {
        println!("{line}");
    }
    if !live.unserved.is_empty() {
        println!(
            "\n# not served ({} deployment(s) skipped; the rest is served)",
            live.unserved.len()
        );
        for u in &live.unserved {
            println!(
                "{}: {} ({}): {}",
                live.config.where_is(&u.path),
                u.model_name,
                u.model,
                u.reason
            );
        }
    }
    // `file:line:column` where the path is written, so an editor jumps to it.
    let mut warnings: Vec<String> = live
        .all_warnings()
        .map(|w| format!("{}: {w}", live.config.where_is(&w.path)))
        .collect();
    if let Some(problem) = master_key_problem(live.config.master_key.as_ref()) {
        warnings.push(format!("{path}: general_settings.master_key: {problem}"));
    }
    if warnings.is_empty() {
        println!("\nok: no warnings");
        ExitCode::SUCCESS
    } else {
        println!("\n# {} warning(s)", warnings.len());
        for w in &warnings {
            println!("warning: {w}");
        }
        ExitCode::from(1)
    }
}

async fn mock(args: MockArgs) -> anyhow::Result<ExitCode> {
    let failures = args
        .fail
        .iter()
        .map(|s| tollgate_mock::parse_fail_rule(s).map_err(|e| anyhow::anyhow!("--fail {s}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = tollgate_mock::MockConfig {
        delay_ms: args.delay_ms,
        failures,
        ..Default::default()
    };
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("tollgate mock provider on http://{}/v1", listener.local_addr()?);
    tokio::select! {
        r = tollgate_mock::serve(listener, config) => r?,
        _ = shutdown_signal() => {},
    }
    Ok(ExitCode::SUCCESS)
}
