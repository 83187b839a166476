//! Sync benchmark of real `tideline serve` processes (docs/PERFORMANCE.md,
//! "Sync"): each server its own process on its own temporary data directory,
//! every downstream talking to its upstream through an in-process
//! [`FaultProxy`] that counts the bytes on the wire and can make the link
//! look like a lossy satellite hop. Prints one JSON object on stdout;
//! progress goes to stderr.
//!
//! ```text
//! cargo build --release -p tideline-server -p tideline-tests
//! target/release/sync_bench \
//!     [--tideline PATH] [--topology fleet|one-link] [--records-per-boat N] \
//!     [--edits E] [--data FILE.jsonl.zst] [--pouchdb] \
//!     [--satellite] [--drop-percent P] [--seed S] [--concurrency C] \
//!     [--deadline-secs T] [--cache-mb M] [--page-kib K]
//! npm ci --prefix tests/pouchdb   # once, before the first --pouchdb
//! target/release/sync_bench --topology one-link --records-per-boat 10000 \
//!     --data ../shared/data/boarding-reports-10k.jsonl.zst --pouchdb
//! ```
//!
//! `--satellite` shapes every link, both directions, as [`Link::satellite`]
//! (300 ms each way, 256 kbit/s). `--drop-percent P` cuts P % of the proxies'
//! connections at a random byte offset ([`FaultPlan::cuts`]); the harness
//! retries a sync the cut made fail until it succeeds. `--page-kib K` bounds
//! every downstream's push and pull pages (`tideline serve --sync-page-kib`).
//!
//! Topologies (`--topology`, station codes in brackets):
//!
//! ```text
//! fleet (the default): hq [HQ] ── station-bb [BB-01] ── boat-1, boat-2 [BB-01]
//!                              └─ station-lc [LC-01] ── boat-3, boat-4 [LC-01]
//! one-link:            hq [HQ] ── boat-1 [BB-01]
//! ```
//!
//! On one link the boat is enrolled with HQ directly, as a boat of BB-01
//! (HQ issues boat codes for any station it knows), so its sync is the one
//! exchange measured.
//!
//! The records are `tideline_schemas::samples::varied_report(k)`, or with
//! `--data FILE` the `fields` of a `.jsonl.zst` file's lines (one
//! `{"meta":{"id":..},"form":"boarding-report","fields":{..}}` each) in file
//! order, cycled through if the boats need more.
//!
//! Scenarios, in order, on the same servers:
//! 1. `first_sync`: every boat gets N boarding reports (loaded before timing
//!    starts), then boats, stations, and again stations and boats sync until
//!    HQ and every station and boat hold all the records they should (fleet:
//!    HQ 4N, the others 2N; one link: the boat's sync until HQ holds N).
//! 2. with `--pouchdb` (one link only): the same records, written as JSON
//!    lines, replicated by PouchDB 9 (`node tests/pouchdb/replicate.js`: a
//!    local pouchdb-node database, loaded before timing, `replicate.to` an
//!    express-pouchdb server on loopback, bytes counted on its sockets). It
//!    runs after the first sync so the two never compete for the CPU, and the
//!    report gets `pouchdb` and `tideline_vs_pouchdb_time`.
//! 3. `incremental`: E single-field edits spread over the boats' records, then
//!    the same schedule until every holder of an edited record shows the edit.
//! 4. `noop`: every downstream syncs once more with nothing new.
//!
//! Every server runs with `--no-auto-sync`, so a sync happens only when the
//! harness asks (`POST /api/v1/sync/now`). Reported per scenario: wall time of
//! the syncs (the harness's checks between rounds excluded), round trips and
//! body bytes summed from the sync outcomes, wire bytes each way from the
//! proxies (headers included), and per server its VmHWM and CPU seconds. The
//! first sync is compared with the same records as zstd-3 JSON lines (HQ's
//! export), the incremental one with the raw Automerge change bytes of the
//! edits. The binary defaults to `$TIDELINE_BIN`, then
//! `<workspace>/target/release/tideline`. Linux only (it reads
//! `/proc/<pid>/status`). Loopback only.

#![forbid(unsafe_code)]

mod converge;
mod fleet;
mod options;
mod pouchdb;
mod progress;
mod report;
mod reports;
mod resources;
mod scenarios;
mod sync_call;
mod topology;
mod workload;

use anyhow::Context;
use fleet::Fleet;
use options::parse_args;
use pouchdb::PouchDb;
use reports::Reports;
use std::sync::Arc;
use std::time::Instant;

fn main() -> std::process::ExitCode {
    // Everything that can be checked without a server is, before any starts.
    let prepared = parse_args().and_then(|opts| {
        let reports = Reports::new(opts.data.as_deref()).context("--data")?;
        let pouchdb = opts
            .pouchdb
            .then(PouchDb::prepare)
            .transpose()
            .context("--pouchdb")?;
        Ok((opts, Arc::new(reports), pouchdb))
    });
    let (opts, reports, pouchdb) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sync_bench: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sync_bench: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let t0 = Instant::now();
    let result = runtime.block_on(async {
        let mut fleet = Fleet::start(&opts, t0).await?;
        // Ctrl-C drops the run, and with it the fleet: every child is killed.
        let outcome = tokio::select! {
            r = scenarios::run(&opts, &reports, pouchdb.as_ref(), &mut fleet, t0) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        if outcome.is_err() {
            eprintln!("server logs (last lines):\n{}", fleet.log_tails());
        }
        outcome
    });
    match result {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sync_bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
