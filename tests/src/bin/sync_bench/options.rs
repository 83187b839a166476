//! The command line. Kept apart from `main` so the modules that read the
//! options depend on a leaf, not on the binary's root.

use anyhow::ensure;
use clap::Parser;
use tideline_tests::process::TidelineArg;

/// Runs the sync benchmark and prints its report as one JSON object.
#[derive(Parser)]
#[command(name = "sync_bench")]
pub struct Options {
    #[command(flatten)]
    pub tideline: TidelineArg,
    /// Boarding reports loaded on each boat before the first sync
    #[arg(long, value_name = "N", default_value_t = 2500)]
    pub records_per_boat: usize,
    /// Single-field edits, spread over the boats' records, for the incremental sync
    #[arg(long, value_name = "E", default_value_t = 1000)]
    pub edits: usize,
    /// Shape every link, both directions, as a satellite hop (300 ms each
    /// way, 256 kbit/s)
    #[arg(long)]
    pub satellite: bool,
    /// Per cent of the proxies' connections cut at a random byte offset (a
    /// sync the cut made fail is retried until it succeeds)
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub drop_percent: f64,
    /// Seed of the proxies' random cuts
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Requests in flight per boat while the harness loads and edits records
    #[arg(long, value_name = "C", default_value_t = 4)]
    pub concurrency: usize,
    /// Give up after this many seconds in all
    #[arg(long, value_name = "T", default_value_t = 3600)]
    pub deadline_secs: u64,
    /// Passed to every `serve` as `--cache-mb` (default: the server's own)
    #[arg(long, value_name = "M")]
    pub cache_mb: Option<u64>,
    /// Bound on every downstream's push and pull pages, passed to every
    /// `serve` as `--sync-page-kib` (default: the server's own)
    #[arg(long, value_name = "K")]
    pub page_kib: Option<u64>,
}

pub fn parse_args() -> anyhow::Result<Options> {
    let opts = Options::parse();
    ensure!(
        opts.records_per_boat > 0,
        "--records-per-boat must be at least 1"
    );
    ensure!(opts.concurrency > 0, "--concurrency must be at least 1");
    ensure!(
        (0.0..=100.0).contains(&opts.drop_percent),
        "--drop-percent must be between 0 and 100"
    );
    Ok(opts)
}
