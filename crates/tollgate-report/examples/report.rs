//! `tollgate report` without the rest of the binary: `cargo run -p tollgate-report --example report -- LOGS…`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: tollgate_report::ReportArgs,
}

fn main() {
    let cli = Cli::parse();
    match tollgate_report::run(&cli.args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
