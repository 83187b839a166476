//! Sync benchmark of real `tideline serve` processes (docs/PERFORMANCE.md,
//! "Sync"): HQ, two stations and four boats, each its own process on its own
//! temporary data directory, every downstream talking to its upstream through
//! an in-process [`FaultProxy`] that counts the bytes on the wire and can make
//! the link look like a lossy satellite hop. Prints one JSON object on stdout;
//! progress goes to stderr.
//!
//! ```text
//! cargo build --release -p tideline-server
//! cargo run --release -p tideline-tests --bin sync_bench -- \
//!     [--tideline PATH] [--records-per-boat N] [--edits E] \
//!     [--satellite] [--drop-percent P] [--seed S] [--concurrency C] \
//!     [--deadline-secs T] [--cache-mb M] [--page-kib K]
//! ```
//!
//! `--satellite` shapes every link, both directions, as [`Link::satellite`]
//! (300 ms each way, 256 kbit/s). `--drop-percent P` cuts P % of the proxies'
//! connections at a random byte offset ([`FaultPlan::cuts`]); the harness
//! retries a sync the cut made fail until it succeeds. `--page-kib K` bounds
//! every downstream's push and pull pages (`tideline serve --sync-page-kib`).
//!
//! Topology (station codes in brackets):
//!
//! ```text
//! hq [HQ] ── station-bb [BB-01] ── boat-1, boat-2 [BB-01]
//!         └─ station-lc [LC-01] ── boat-3, boat-4 [LC-01]
//! ```
//!
//! Scenarios, in order, on the same fleet:
//! 1. `first_sync`: every boat gets N typical boarding reports (loaded before
//!    timing starts), then boats, stations, and again stations and boats sync
//!    until HQ holds 4N records and every station and boat 2N.
//! 2. `incremental`: E single-field edits spread over the boats' records, then
//!    the same schedule until every holder of an edited record shows the edit.
//! 3. `noop`: every downstream syncs once more with nothing new.
//!
//! Every server runs with `--no-auto-sync`, so a sync happens only when the
//! harness asks (`POST /api/v1/sync/now`). Reported per scenario: wall time of
//! the syncs (the harness's checks between rounds excluded), round trips and
//! body bytes summed from the sync outcomes, wire bytes each way from the
//! proxies (headers included), and per server its VmHWM and CPU seconds. The
//! first sync is compared with the same records as zstd-compressed JSON lines,
//! the incremental one with the raw Automerge change bytes of the edits.
//! The binary defaults to `$TIDELINE_BIN`, then `<workspace>/target/release/tideline`.
//! Linux only (it reads `/proc/<pid>/status`). Loopback only.

#![forbid(unsafe_code)]

mod fleet;
mod options;
mod progress;
mod report;
mod resources;
mod sync_call;
mod topology;

use anyhow::{ensure, Context};
use automerge::{AutoCommit, ChangeHash};
use fleet::Fleet;
use options::{parse_args, Options};
use progress::progress;
use report::{body_bytes, outcome_sums, round1, round3, sync_log, traffic, traffic_json};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use sync_call::SyncDone;
use tideline_tests::proxy::FaultPlan;
use tokio::task::JoinSet;
use topology::{expected_total, holders, names, BOATS, HOPS, HQ, NODES, STATIONS};

/// Rounds of "stations, then boats" after the first pass before declaring that
/// the fleet does not converge. Two suffice when sync works.
const MAX_ROUNDS: usize = 6;
/// Largest per-sync body total for a no-op sync (the target).
const NOOP_BODY_LIMIT: u64 = 1024;

/// The typical boarding report shared by tests and benchmarks: 6 crew,
/// 2 seizures, 600 characters of findings.
fn typical_report(n: usize) -> Map<String, Json> {
    tideline_schemas::samples::boarding_report(n)
}

/// Create `n` reports on every boat, `concurrency` requests in flight per boat.
/// Returns each boat's record ids, in creation order.
async fn load_records(
    fleet: &Fleet,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Vec<String>>> {
    let mut set = JoinSet::new();
    for (b, &boat) in BOATS.iter().enumerate() {
        for t in 0..concurrency {
            let url = fleet.servers[boat].url("/api/v1/records");
            let token = fleet.servers[boat].token.clone();
            let http = fleet.api.clone();
            set.spawn(async move {
                let mut ids = Vec::new();
                for i in (t..n).step_by(concurrency) {
                    let body =
                        json!({"form": "boarding-report", "fields": typical_report(b * n + i)});
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .context("POST a record")?;
                    let status = r.status();
                    let view: Json = r.json().await.context("read the POST answer")?;
                    ensure!(status.as_u16() == 201, "POST returned {status}: {view}");
                    let id = view["id"]
                        .as_str()
                        .context("a view without id")?
                        .to_string();
                    ids.push((i, id));
                }
                anyhow::Ok((b, ids))
            });
        }
    }
    let mut per_boat: Vec<Vec<(usize, String)>> = vec![Vec::new(); BOATS.len()];
    while let Some(joined) = set.join_next().await {
        let (b, ids) = joined.context("a load task panicked")??;
        per_boat[b].extend(ids);
    }
    Ok(per_boat
        .into_iter()
        .map(|mut ids| {
            ids.sort();
            ids.into_iter().map(|(_, id)| id).collect()
        })
        .collect())
}

/// What a scenario must reach before it counts as converged.
enum Goal<'a> {
    /// Every node holds the records it should (by `total`).
    Counts { per_boat: usize },
    /// Every holder of an edited record shows its new `arrests`.
    Edits(&'a [Edit]),
}

#[derive(Debug, Clone)]
struct Edit {
    boat: usize,
    id: String,
    arrests: u64,
}

/// None when converged, otherwise what is still missing.
async fn check(fleet: &Fleet, goal: &Goal<'_>) -> anyhow::Result<Option<String>> {
    match goal {
        Goal::Counts { per_boat } => {
            let totals = fleet.totals().await?;
            let wrong: Vec<String> = totals
                .iter()
                .enumerate()
                .filter(|(i, t)| **t != expected_total(*i, *per_boat))
                .map(|(i, t)| format!("{} has {t}/{}", NODES[i].0, expected_total(i, *per_boat)))
                .collect();
            Ok((!wrong.is_empty()).then(|| wrong.join(", ")))
        }
        Goal::Edits(edits) => {
            // Node by node, stopping at the first one that lacks an edit: a
            // round that has not converged usually fails on its first node.
            for (node, (name, _, _)) in NODES.iter().enumerate() {
                let mine: Vec<&Edit> = edits
                    .iter()
                    .filter(|e| holders(e.boat).contains(&node))
                    .collect();
                let mut set = JoinSet::new();
                for chunk in mine.chunks(mine.len().div_ceil(8).max(1)) {
                    let urls: Vec<(String, u64)> = chunk
                        .iter()
                        .map(|e| {
                            (
                                fleet.servers[node].url(&format!("/api/v1/records/{}", e.id)),
                                e.arrests,
                            )
                        })
                        .collect();
                    let http = fleet.api.clone();
                    let token = fleet.servers[node].token.clone();
                    set.spawn(async move {
                        let mut missing = 0usize;
                        for (url, want) in urls {
                            let v: Json = http
                                .get(&url)
                                .bearer_auth(&token)
                                .send()
                                .await?
                                .error_for_status()?
                                .json()
                                .await?;
                            if v["fields"]["arrests"].as_u64() != Some(want) {
                                missing += 1;
                            }
                        }
                        anyhow::Ok(missing)
                    });
                }
                let mut missing = 0;
                while let Some(j) = set.join_next().await {
                    missing += j.context("a check task panicked")??;
                }
                if missing > 0 {
                    return Ok(Some(format!(
                        "{name} lacks {missing} of its {} edits",
                        mine.len()
                    )));
                }
            }
            Ok(None)
        }
    }
}

/// The sync schedule: boats (in parallel), then stations (in parallel), then
/// "stations, then boats" again until `goal` holds. Only the syncs are timed;
/// the harness's own checks between rounds are not.
struct Converged {
    syncs: Vec<SyncDone>,
    sync_wall: Duration,
    rounds: usize,
}

async fn converge(
    fleet: &Fleet,
    goal: &Goal<'_>,
    deadline: Instant,
    t0: Instant,
) -> anyhow::Result<Converged> {
    let mut syncs = Vec::new();
    let mut wall = Duration::ZERO;
    let mut rounds = 0;
    let phases: [&[usize]; 2] = [&BOATS, &STATIONS];
    for nodes in phases {
        let start = Instant::now();
        syncs.extend(fleet.sync_group(nodes, deadline).await?);
        wall += start.elapsed();
        progress!(
            t0,
            "  synced {} ({:.2} s so far)",
            names(nodes),
            wall.as_secs_f64()
        );
    }
    loop {
        match check(fleet, goal).await? {
            None => break,
            Some(missing) => {
                ensure!(
                    rounds < MAX_ROUNDS,
                    "no convergence after {} rounds: {missing}",
                    rounds + 1
                );
                progress!(t0, "  not yet converged: {missing}");
            }
        }
        rounds += 1;
        for nodes in [&STATIONS[..], &BOATS[..]] {
            let start = Instant::now();
            syncs.extend(fleet.sync_group(nodes, deadline).await?);
            wall += start.elapsed();
            progress!(
                t0,
                "  synced {} ({:.2} s so far)",
                names(nodes),
                wall.as_secs_f64()
            );
        }
    }
    Ok(Converged {
        syncs,
        sync_wall: wall,
        rounds: rounds + 1,
    })
}

/// About what one record's changes take on the wire in one direction, once
/// compressed (measured: 2,500 records ≈ 166 KB per boat link). Used only to
/// scale where cuts land.
const WIRE_BYTES_PER_RECORD: u64 = 64;

/// The fault plan for one phase: `drop_percent` of connections cut at a
/// uniformly random byte offset up to `max_offset`, chosen about the size of
/// one connection's traffic in that phase so that most planned cuts land
/// inside it (a cut planned past a connection's end does not happen, and
/// the proxy's `cuts` counter says how many did).
fn plan(opts: &Options, max_offset: u64) -> FaultPlan {
    if opts.drop_percent > 0.0 {
        FaultPlan::cuts(opts.drop_percent / 100.0, 0..=max_offset)
    } else {
        FaultPlan::none()
    }
}

/// Full views of a sample of records must be identical on every holder:
/// equal counts alone would not notice records that differ.
async fn views_agree(fleet: &Fleet, sample: &[(usize, String)]) -> anyhow::Result<()> {
    for (boat, id) in sample {
        let path = format!("/api/v1/records/{id}");
        let reference = fleet.get_bytes(*boat, &path).await?;
        let reference: Json = serde_json::from_slice(&reference)?;
        for node in holders(*boat) {
            let other: Json = serde_json::from_slice(&fleet.get_bytes(node, &path).await?)?;
            ensure!(
                other == reference,
                "record {id} differs between {} and {}",
                NODES[*boat].0,
                NODES[node].0
            );
        }
    }
    Ok(())
}

/// Heads of a record's Automerge document on a node.
async fn heads(fleet: &Fleet, node: usize, id: &str) -> anyhow::Result<Vec<ChangeHash>> {
    let bytes = fleet
        .get_bytes(node, &format!("/api/v1/records/{id}/automerge"))
        .await?;
    let mut doc = AutoCommit::load(&bytes).with_context(|| format!("load record {id}"))?;
    Ok(doc.get_heads())
}

/// Raw bytes (`Change::raw_bytes`, what sync puts on the wire before zstd) and
/// count of the changes a record gained since `before`.
async fn changes_since(
    fleet: &Fleet,
    node: usize,
    id: &str,
    before: &[ChangeHash],
) -> anyhow::Result<(u64, u64)> {
    let bytes = fleet
        .get_bytes(node, &format!("/api/v1/records/{id}/automerge"))
        .await?;
    let mut doc = AutoCommit::load(&bytes).with_context(|| format!("load record {id}"))?;
    let changes = doc.get_changes(before);
    Ok((
        changes.iter().map(|c| c.raw_bytes().len() as u64).sum(),
        changes.len() as u64,
    ))
}

async fn run(opts: &Options, fleet: &mut Fleet, t0: Instant) -> anyhow::Result<Json> {
    let deadline = t0 + Duration::from_secs(opts.deadline_secs);
    let n = opts.records_per_boat;
    let mut result = Map::new();
    result.insert(
        "config".into(),
        json!({
            "records_per_boat": n,
            "records_total": n * BOATS.len(),
            "edits": opts.edits,
            "satellite": opts.satellite,
            "link": if opts.satellite {
                "every link, both directions: 300 ms latency, 256 kbit/s"
            } else {
                "loopback, no shaping"
            },
            "drop_percent": opts.drop_percent,
            "seed": opts.seed,
            "client_concurrency_per_boat": opts.concurrency,
            "tideline": opts.tideline.path.display().to_string(),
            "cache_mb": opts.cache_mb,
            "page_kib": opts.page_kib,
        }),
    );

    // ---- Load (not timed as sync).
    progress!(t0, "loading {n} records on each of {} boats", BOATS.len());
    let meter = fleet.begin()?;
    let start = Instant::now();
    let ids = load_records(fleet, n, opts.concurrency).await?;
    let load_secs = start.elapsed().as_secs_f64();
    progress!(
        t0,
        "loaded {} records in {load_secs:.1} s ({:.0}/s)",
        n * BOATS.len(),
        (n * BOATS.len()) as f64 / load_secs
    );
    let load_res = fleet.end(&meter, false)?;
    result.insert(
        "load".into(),
        json!({"records": n * BOATS.len(), "secs": round3(load_secs), "resources": load_res}),
    );

    // ---- 1. First sync.
    let meter = fleet.begin()?;
    fleet.set_faults(&plan(opts, n as u64 * WIRE_BYTES_PER_RECORD));
    progress!(t0, "first sync");
    let before = fleet.link_stats();
    let c = converge(fleet, &Goal::Counts { per_boat: n }, deadline, t0).await?;
    let t = traffic(&before, &fleet.link_stats());
    let first_res = fleet.end(&meter, true)?;
    let totals = fleet.totals().await?;
    let sample: Vec<(usize, String)> = BOATS
        .iter()
        .enumerate()
        .flat_map(|(b, &boat)| {
            let ids = &ids[b];
            (0..5).map(move |k| (boat, ids[k * ids.len() / 5].clone()))
        })
        .collect();
    views_agree(fleet, &sample).await?;
    // The same records as zstd-compressed JSON lines, for scale. Metered on
    // its own: exporting 10,000 records is not sync and must not count as its peak.
    let meter = fleet.begin()?;
    let jsonl = fleet.get_bytes(HQ, "/api/v1/export?format=jsonl").await?;
    let export_res = fleet.end(&meter, false)?;
    let lines = jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    ensure!(
        lines == n * BOATS.len(),
        "HQ exported {lines} lines, expected {}",
        n * BOATS.len()
    );
    let zstd_bytes = zstd::encode_all(&jsonl[..], 3).context("zstd")?.len() as u64;
    let wire = t.wire();
    let secs = c.sync_wall.as_secs_f64();
    let sums = outcome_sums(&c.syncs);
    let body_total = body_bytes(&c.syncs);
    progress!(
        t0,
        "first sync: {secs:.2} s, {} round trips, {wire} wire bytes ({} on the HQ links), zstd JSON lines {zstd_bytes}",
        sums["round_trips"],
        t.hq_links
    );
    let mut first = Map::new();
    first.insert("wall_s".into(), json!(round3(secs)));
    first.insert("rounds".into(), json!(c.rounds));
    first.insert(
        "records_per_s".into(),
        json!(round1((n * BOATS.len()) as f64 / secs)),
    );
    first.insert("outcomes".into(), sums);
    first.insert("traffic".into(), traffic_json(&t));
    first.insert(
        "totals".into(),
        json!(NODES
            .iter()
            .zip(&totals)
            .map(|(nd, t)| (nd.0.to_string(), json!(t)))
            .collect::<Map<_, _>>()),
    );
    first.insert("jsonl_bytes".into(), json!(jsonl.len()));
    first.insert("zstd_jsonl_bytes".into(), json!(zstd_bytes));
    // Each record crosses three links (boat → station, station → HQ, station →
    // sibling boat), the JSON lines count it once: compare per crossing. The
    // two station ↔ HQ links carry every record exactly once, so they are the
    // most direct comparison.
    first.insert(
        "wire_bytes_per_crossing_over_zstd_jsonl".into(),
        json!(round3(wire as f64 / (HOPS * zstd_bytes) as f64)),
    );
    first.insert(
        "body_bytes_per_crossing_over_zstd_jsonl".into(),
        json!(round3(body_total as f64 / (HOPS * zstd_bytes) as f64)),
    );
    first.insert("hq_links_wire_bytes".into(), json!(t.hq_links));
    first.insert(
        "hq_links_wire_over_zstd_jsonl".into(),
        json!(round3(t.hq_links as f64 / zstd_bytes as f64)),
    );
    first.insert("resources".into(), first_res);
    first.insert("export_resources".into(), export_res);
    first.insert("syncs".into(), sync_log(&c.syncs));
    let first_secs = secs;
    let first_ratio = t.hq_links as f64 / zstd_bytes as f64;
    result.insert("first_sync".into(), Json::Object(first));

    // ---- 2. Incremental: single-field edits spread over the boats' records.
    let mut edits = Vec::new();
    for i in 0..opts.edits {
        let b = i % BOATS.len();
        let on_this_boat = opts.edits / BOATS.len() + usize::from(b < opts.edits % BOATS.len());
        let stride = (n / on_this_boat.max(1)).max(1);
        let idx = ((i / BOATS.len()) * stride) % n;
        edits.push(Edit {
            boat: BOATS[b],
            id: ids[b][idx].clone(),
            // Never 1 (the loaded value), so every edit is a real change.
            arrests: 2 + (i % 9) as u64,
        });
    }
    progress!(t0, "incremental: {} edits", edits.len());
    // Heads before, once per distinct record (an id edited twice is measured once, over both edits).
    let mut before_heads: HashMap<String, (usize, Vec<ChangeHash>)> = HashMap::new();
    for e in &edits {
        if !before_heads.contains_key(&e.id) {
            let h = heads(fleet, e.boat, &e.id).await?;
            before_heads.insert(e.id.clone(), (e.boat, h));
        }
    }
    let start = Instant::now();
    let mut set = JoinSet::new();
    for chunk in edits.chunks(edits.len().div_ceil(opts.concurrency * BOATS.len()).max(1)) {
        let calls: Vec<(String, String, u64)> = chunk
            .iter()
            .map(|e| {
                (
                    fleet.servers[e.boat].url(&format!("/api/v1/records/{}", e.id)),
                    fleet.servers[e.boat].token.clone(),
                    e.arrests,
                )
            })
            .collect();
        let http = fleet.api.clone();
        set.spawn(async move {
            for (url, token, k) in calls {
                let r = http
                    .patch(&url)
                    .bearer_auth(&token)
                    .json(&json!({"fields": {"arrests": k}}))
                    .send()
                    .await?;
                let status = r.status();
                ensure!(
                    status.as_u16() == 200,
                    "PATCH returned {status}: {}",
                    r.text().await?
                );
            }
            anyhow::Ok(())
        });
    }
    while let Some(j) = set.join_next().await {
        j.context("an edit task panicked")??;
    }
    let edit_secs = start.elapsed().as_secs_f64();
    let mut raw_change_bytes = 0u64;
    let mut raw_changes = 0u64;
    for (id, (boat, h)) in &before_heads {
        let (bytes, count) = changes_since(fleet, *boat, id, h).await?;
        raw_change_bytes += bytes;
        raw_changes += count;
    }
    progress!(
        t0,
        "edited in {edit_secs:.1} s: {raw_changes} changes, {raw_change_bytes} raw change bytes"
    );
    let meter = fleet.begin()?;
    fleet.set_faults(&plan(
        opts,
        (opts.edits / BOATS.len()).max(1) as u64 * WIRE_BYTES_PER_RECORD,
    ));
    let before = fleet.link_stats();
    let c = converge(fleet, &Goal::Edits(&edits), deadline, t0).await?;
    let t = traffic(&before, &fleet.link_stats());
    let inc_res = fleet.end(&meter, true)?;
    let sample: Vec<(usize, String)> = edits
        .iter()
        .step_by((edits.len() / 20).max(1))
        .map(|e| (e.boat, e.id.clone()))
        .collect();
    views_agree(fleet, &sample).await?;
    let secs = c.sync_wall.as_secs_f64();
    let sums = outcome_sums(&c.syncs);
    let body_total = body_bytes(&c.syncs);
    let wire = t.wire();
    let carried = HOPS * raw_change_bytes;
    // Target: bytes ≤ 1.0 × the raw change bytes each link must carry, plus 1 KiB per sync.
    let allowance = carried + 1024 * c.syncs.len() as u64;
    progress!(
        t0,
        "incremental: {secs:.2} s, {} round trips, {wire} wire bytes, {body_total} body bytes; raw {raw_change_bytes} × {HOPS} links",
        sums["round_trips"]
    );
    let mut inc = Map::new();
    inc.insert("edits".into(), json!(edits.len()));
    inc.insert("edited_records".into(), json!(before_heads.len()));
    inc.insert("edit_secs".into(), json!(round3(edit_secs)));
    inc.insert("raw_changes".into(), json!(raw_changes));
    inc.insert("raw_change_bytes".into(), json!(raw_change_bytes));
    inc.insert("raw_change_bytes_carried".into(), json!(carried));
    inc.insert("wall_s".into(), json!(round3(secs)));
    inc.insert("rounds".into(), json!(c.rounds));
    inc.insert("outcomes".into(), sums);
    inc.insert("traffic".into(), traffic_json(&t));
    inc.insert(
        "wire_over_raw_carried".into(),
        json!(round3(wire as f64 / carried as f64)),
    );
    inc.insert(
        "body_over_raw_carried".into(),
        json!(round3(body_total as f64 / carried as f64)),
    );
    inc.insert("allowance_bytes".into(), json!(allowance));
    inc.insert("resources".into(), inc_res);
    inc.insert("syncs".into(), sync_log(&c.syncs));
    let inc_ok = body_total <= allowance;
    let inc_wire_ok = wire <= allowance;
    result.insert("incremental".into(), Json::Object(inc));

    // ---- 3. No-op: every downstream once, one after another, nothing new.
    let meter = fleet.begin()?;
    // A no-op exchange is about 190 bytes each way, headers included.
    fleet.set_faults(&plan(opts, 192));
    progress!(t0, "no-op syncs");
    let mut noop = Vec::new();
    let mut noop_ok = true;
    let mut noop_secs = 0.0;
    for &node in BOATS.iter().chain(&STATIONS) {
        let before = fleet.link_stats();
        let done = fleet.sync_group(&[node], deadline).await?.remove(0);
        let t = traffic(&before, &fleet.link_stats());
        let o = done.outcome;
        let bodies = o.bytes_sent + o.bytes_received;
        noop_ok &=
            o.round_trips == 1 && bodies <= NOOP_BODY_LIMIT && o.pushed == 0 && o.pulled == 0;
        noop_secs += done.wall.as_secs_f64();
        noop.push(json!({
            "node": NODES[node].0,
            "round_trips": o.round_trips,
            "pushed": o.pushed,
            "pulled": o.pulled,
            "body_bytes_sent": o.bytes_sent,
            "body_bytes_received": o.bytes_received,
            "wire_bytes_to_upstream": t.to_upstream,
            "wire_bytes_to_downstream": t.to_downstream,
            "duration_ms": o.duration_ms,
            "wall_ms": round1(done.wall.as_secs_f64() * 1000.0),
            "attempts": done.attempts,
        }));
    }
    let noop_res = fleet.end(&meter, true)?;
    let totals = fleet.totals().await?;
    for (i, t) in totals.iter().enumerate() {
        ensure!(
            *t == expected_total(i, n),
            "{} lost records: {t}",
            NODES[i].0
        );
    }
    progress!(t0, "no-op: {noop_secs:.2} s for {} syncs", noop.len());
    result.insert(
        "noop".into(),
        json!({"wall_s": round3(noop_secs), "syncs": noop, "resources": noop_res}),
    );

    // ---- Peaks over the whole run and the targets.
    fleet.observe_rss()?;
    let per_node = |v: &[f64]| -> Map<String, Json> {
        NODES
            .iter()
            .zip(v)
            .map(|(nd, p)| (nd.0.to_string(), json!(round1(*p))))
            .collect()
    };
    let max_sync_peak = fleet.peaks.sync.iter().cloned().fold(0.0, f64::max);
    result.insert(
        "peak_rss_mb".into(),
        json!({
            // During the three sync scenarios.
            "sync": per_node(&fleet.peaks.sync),
            // Over the whole run, loading the records and the export included.
            "overall": per_node(&fleet.peaks.overall),
        }),
    );
    result.insert(
        "hwm_reset_between_scenarios".into(),
        json!(fleet.peaks.hwm_resets_work),
    );
    result.insert(
        "targets".into(),
        json!({
            "first_sync_under_4_s": first_secs < 4.0,
            "every_instance_under_150_mb_while_syncing": max_sync_peak < 150.0,
            "first_sync_hq_link_bytes_within_1_5x_zstd_jsonl": first_ratio <= 1.5,
            "incremental_body_bytes_within_raw_plus_1_kib_per_sync": inc_ok,
            "incremental_wire_bytes_within_raw_plus_1_kib_per_sync": inc_wire_ok,
            "noop_one_round_trip_within_1_kib": noop_ok,
        }),
    );
    Ok(Json::Object(result))
}

fn main() -> std::process::ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
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
            r = run(&opts, &mut fleet, t0) => r,
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
