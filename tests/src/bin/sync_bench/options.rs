//! The command line. Kept apart from `main` so the modules that read the
//! options depend on a leaf, not on the binary's root.

use crate::topology::{Topology, FLEET, ONE_LINK};
use anyhow::ensure;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use tideline_tests::process::TidelineArg;

/// `--topology`: which nodes run and who syncs with whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// HQ, two stations and four boats, two under each station
    Fleet,
    /// One boat syncing directly with HQ
    OneLink,
}

impl Shape {
    pub fn topology(self) -> &'static Topology {
        match self {
            Shape::Fleet => &FLEET,
            Shape::OneLink => &ONE_LINK,
        }
    }
}

/// Runs the sync benchmark and prints its report as one JSON object.
#[derive(Parser)]
#[command(name = "sync_bench")]
pub struct Options {
    #[command(flatten)]
    pub tideline: TidelineArg,
    /// Which servers run: `fleet` (HQ, 2 stations, 4 boats) or `one-link`
    /// (one boat syncing directly with HQ)
    #[arg(long, value_enum, default_value_t = Shape::Fleet)]
    pub topology: Shape,
    /// Boarding reports loaded on each boat before the first sync (the
    /// one-link figures in docs/PERFORMANCE.md use 10000)
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
    /// Read the boarding reports from this `.jsonl.zst` file (one
    /// `{"meta":{"id":..},"form":"boarding-report","fields":{..}}` a line;
    /// its `fields` are used in file order, cycling if more are needed)
    /// instead of generating varied ones
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// After the first sync, replicate the same records with PouchDB 9
    /// (`node tests/pouchdb/replicate.js`, after `npm ci --prefix
    /// tests/pouchdb`) and report its figures beside Tideline's. Needs
    /// `--topology one-link`: PouchDB's replication is one link
    #[arg(long)]
    pub pouchdb: bool,
}

impl Options {
    pub fn topology(&self) -> &'static Topology {
        self.topology.topology()
    }
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
    ensure!(
        !opts.pouchdb || opts.topology == Shape::OneLink,
        "--pouchdb compares one replication over one link: add --topology one-link"
    );
    Ok(opts)
}
