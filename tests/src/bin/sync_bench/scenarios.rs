//! The run, scenario by scenario on the same servers: loading the records,
//! the first sync, PouchDB's replication of the same records if asked for,
//! the incremental sync and the no-op syncs, then the peaks and the targets.
//! Each scenario measures its syncs and returns its part of the report with
//! what the targets need from it.

use crate::converge::{converge, views_agree, Converged, Goal};
use crate::fleet::Fleet;
use crate::options::Options;
use crate::pouchdb::PouchDb;
use crate::progress::progress;
use crate::report::{
    body_bytes, outcome_sums, round1, round3, sync_log, traffic, traffic_json, Traffic,
};
use crate::reports::Reports;
use crate::sync_call::SyncDone;
use crate::topology::{Topology, HQ};
use crate::workload::{apply_edits, heads_before, load_records, plan_edits, raw_changes, Edit};
use anyhow::{ensure, Context};
use serde_json::{json, Map, Value as Json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tideline_tests::proxy::FaultPlan;

/// Largest per-sync body total for a no-op sync (the target).
const NOOP_BODY_LIMIT: u64 = 1024;

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

/// What every scenario runs with: the options, the shape of the run, where
/// the records come from, when the whole run must have ended, and when it
/// started (for the progress lines).
struct Run<'a> {
    opts: &'a Options,
    topo: &'static Topology,
    reports: &'a Arc<Reports>,
    deadline: Instant,
    t0: Instant,
}

/// The first sync's part of the report, and what the targets need from it.
struct FirstSync {
    json: Json,
    secs: f64,
    /// Bytes on the links to HQ over the zstd JSON lines.
    hq_ratio: f64,
    /// Bytes on every link, both directions, headers included.
    wire: u64,
    zstd_bytes: u64,
}

/// The incremental sync's part of the report, and what the targets need
/// from it.
struct Incremental {
    json: Json,
    body_ok: bool,
    wire_ok: bool,
}

/// The no-op syncs' part of the report, and whether they met their target.
struct Noop {
    json: Json,
    ok: bool,
}

/// Every scenario and the targets, as the report's one JSON object.
/// PouchDB, when given, replicates right after the first sync, while the
/// servers are idle, so that the two never compete for the CPU.
pub async fn run(
    opts: &Options,
    reports: &Arc<Reports>,
    pouchdb: Option<&PouchDb>,
    fleet: &mut Fleet,
    t0: Instant,
) -> anyhow::Result<Json> {
    let run = Run {
        opts,
        topo: fleet.topo,
        reports,
        deadline: t0 + Duration::from_secs(opts.deadline_secs),
        t0,
    };
    let mut result = Map::new();
    result.insert("config".into(), config_json(&run, pouchdb));
    let (ids, load) = load(&run, fleet).await?;
    result.insert("load".into(), load);
    let first = first_sync(&run, fleet, &ids).await?;
    result.insert("first_sync".into(), first.json);
    if let Some(p) = pouchdb {
        let records = crate::pouchdb::write_records(&ids, reports, opts.records_per_boat)?;
        progress!(t0, "PouchDB: replicating the same records");
        let figures = p.replicate(records.path(), run.deadline).await?;
        let beside = crate::pouchdb::beside(figures, first.secs, first.wire, first.zstd_bytes)?;
        progress!(t0, "PouchDB: {}", beside.summary);
        result.insert("pouchdb".into(), beside.json);
        result.insert("tideline_vs_pouchdb_time".into(), json!(beside.time_ratio));
        result.insert(
            "tideline_vs_pouchdb_wire_bytes".into(),
            json!(beside.wire_ratio),
        );
    }
    let inc = incremental(&run, fleet, &ids).await?;
    result.insert("incremental".into(), inc.json);
    let noop = noop(&run, fleet).await?;
    result.insert("noop".into(), noop.json);
    let max_sync_peak = peaks(fleet, &mut result)?;
    result.insert(
        "targets".into(),
        json!({
            "first_sync_under_4_s": first.secs < 4.0,
            "every_instance_under_150_mb_while_syncing": max_sync_peak < 150.0,
            "first_sync_hq_link_bytes_within_1_5x_zstd_jsonl": first.hq_ratio <= 1.5,
            "incremental_body_bytes_within_raw_plus_1_kib_per_sync": inc.body_ok,
            "incremental_wire_bytes_within_raw_plus_1_kib_per_sync": inc.wire_ok,
            "noop_one_round_trip_within_1_kib": noop.ok,
        }),
    );
    Ok(Json::Object(result))
}

fn config_json(run: &Run<'_>, pouchdb: Option<&PouchDb>) -> Json {
    let opts = run.opts;
    let n = opts.records_per_boat;
    json!({
        "topology": run.topo.name,
        "servers": run.topo.nodes.iter().map(|nd| nd.name).collect::<Vec<_>>(),
        "records": run.reports.describe(),
        "records_per_boat": n,
        "records_total": n * run.topo.boats.len(),
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
        "pouchdb": pouchdb.map(PouchDb::describe),
    })
}

/// Load the records on the boats (not timed as sync); each boat's ids and
/// the report's `load`.
async fn load(run: &Run<'_>, fleet: &mut Fleet) -> anyhow::Result<(Vec<Vec<String>>, Json)> {
    let (opts, t0) = (run.opts, run.t0);
    let n = opts.records_per_boat;
    let boats = run.topo.boats.len();
    let total = n * boats;
    progress!(t0, "loading {n} records on each of {boats} boats");
    let meter = fleet.begin()?;
    let start = Instant::now();
    let ids = load_records(fleet, run.reports, n, opts.concurrency).await?;
    let secs = start.elapsed().as_secs_f64();
    progress!(
        t0,
        "loaded {total} records in {secs:.1} s ({:.0}/s)",
        total as f64 / secs
    );
    let resources = fleet.end(&meter, false)?;
    let json = json!({"records": total, "secs": round3(secs), "resources": resources});
    Ok((ids, json))
}

/// A scenario's syncs until its goal held, the traffic they made and the
/// resources they used.
struct Measured {
    converged: Converged,
    traffic: Traffic,
    resources: Json,
}

/// Run the sync schedule to `goal` as one metered phase, with cuts placed
/// up to `max_offset` bytes into a connection.
async fn measured_sync(
    run: &Run<'_>,
    fleet: &mut Fleet,
    goal: &Goal<'_>,
    max_offset: u64,
) -> anyhow::Result<Measured> {
    let meter = fleet.begin()?;
    fleet.set_faults(&plan(run.opts, max_offset));
    let before = fleet.link_stats();
    let converged = converge(fleet, goal, run.deadline, run.t0).await?;
    let traffic = traffic(run.topo, &before, &fleet.link_stats());
    let resources = fleet.end(&meter, true)?;
    Ok(Measured {
        converged,
        traffic,
        resources,
    })
}

/// 1. Every boat's records to everyone who should hold them.
async fn first_sync(
    run: &Run<'_>,
    fleet: &mut Fleet,
    ids: &[Vec<String>],
) -> anyhow::Result<FirstSync> {
    let n = run.opts.records_per_boat;
    progress!(run.t0, "first sync");
    let goal = Goal::Counts { per_boat: n };
    let max_offset = n as u64 * WIRE_BYTES_PER_RECORD;
    let m = measured_sync(run, fleet, &goal, max_offset).await?;
    let totals = fleet.totals().await?;
    views_agree(fleet, &loaded_sample(run.topo, ids)).await?;
    let export = export_jsonl(fleet, n).await?;
    Ok(first_sync_report(run, m, &totals, export))
}

/// Five records of every boat, evenly spread over what it loaded.
fn loaded_sample(topo: &Topology, ids: &[Vec<String>]) -> Vec<(usize, String)> {
    topo.boats
        .iter()
        .enumerate()
        .flat_map(|(b, &boat)| {
            let ids = &ids[b];
            (0..5).map(move |k| (boat, ids[k * ids.len() / 5].clone()))
        })
        .collect()
}

/// HQ's export of every record as JSON lines, which the first sync's bytes
/// are compared with.
struct Export {
    jsonl_bytes: usize,
    zstd_bytes: u64,
    resources: Json,
}

/// The same records as zstd-compressed JSON lines, for scale. Metered on
/// its own: exporting 10,000 records is not sync and must not count as its peak.
async fn export_jsonl(fleet: &mut Fleet, n: usize) -> anyhow::Result<Export> {
    let meter = fleet.begin()?;
    let jsonl = fleet.get_bytes(HQ, "/api/v1/export?format=jsonl").await?;
    let resources = fleet.end(&meter, false)?;
    let lines = jsonl
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let expected = n * fleet.topo.boats.len();
    ensure!(
        lines == expected,
        "HQ exported {lines} lines, expected {expected}"
    );
    let zstd_bytes = zstd::encode_all(&jsonl[..], 3).context("zstd")?.len() as u64;
    Ok(Export {
        jsonl_bytes: jsonl.len(),
        zstd_bytes,
        resources,
    })
}

fn first_sync_report(run: &Run<'_>, m: Measured, totals: &[u64], export: Export) -> FirstSync {
    let (t0, topo) = (run.t0, run.topo);
    let records = run.opts.records_per_boat * topo.boats.len();
    let (c, t) = (&m.converged, &m.traffic);
    let zstd_bytes = export.zstd_bytes;
    let secs = c.sync_wall.as_secs_f64();
    let sums = outcome_sums(&c.syncs);
    progress!(
        t0,
        "first sync: {secs:.2} s, {} round trips, {} wire bytes ({} on the HQ links), zstd JSON lines {zstd_bytes}",
        sums["round_trips"],
        t.wire(),
        t.hq_links
    );
    let mut first = Map::new();
    first.insert("wall_s".into(), json!(round3(secs)));
    first.insert("rounds".into(), json!(c.rounds));
    first.insert("records_per_s".into(), json!(round1(records as f64 / secs)));
    first.insert("outcomes".into(), sums);
    first.insert("traffic".into(), traffic_json(t));
    first.insert(
        "totals".into(),
        json!(topo
            .nodes
            .iter()
            .zip(totals)
            .map(|(nd, t)| (nd.name.to_string(), json!(t)))
            .collect::<Map<_, _>>()),
    );
    compare_with_jsonl(topo, &mut first, &m, &export);
    first.insert("resources".into(), m.resources);
    first.insert("export_resources".into(), export.resources);
    first.insert("syncs".into(), sync_log(&c.syncs));
    FirstSync {
        json: Json::Object(first),
        secs,
        hq_ratio: t.hq_links as f64 / zstd_bytes as f64,
        wire: t.wire(),
        zstd_bytes,
    }
}

/// The first sync's bytes against the zstd JSON lines of the same records.
fn compare_with_jsonl(
    topo: &Topology,
    first: &mut Map<String, Json>,
    m: &Measured,
    export: &Export,
) {
    let t = &m.traffic;
    let hops = topo.hops;
    let zstd_bytes = export.zstd_bytes;
    let body_total = body_bytes(&m.converged.syncs);
    first.insert("jsonl_bytes".into(), json!(export.jsonl_bytes));
    first.insert("zstd_jsonl_bytes".into(), json!(zstd_bytes));
    // In the fleet each record crosses three links (boat → station, station →
    // HQ, station → sibling boat), the JSON lines count it once: compare per
    // crossing. The links to HQ (two from the stations, or the one boat's)
    // carry every record exactly once, so they are the most direct comparison.
    first.insert(
        "wire_bytes_per_crossing_over_zstd_jsonl".into(),
        json!(round3(t.wire() as f64 / (hops * zstd_bytes) as f64)),
    );
    first.insert(
        "body_bytes_per_crossing_over_zstd_jsonl".into(),
        json!(round3(body_total as f64 / (hops * zstd_bytes) as f64)),
    );
    first.insert("hq_links_wire_bytes".into(), json!(t.hq_links));
    first.insert(
        "hq_links_wire_over_zstd_jsonl".into(),
        json!(round3(t.hq_links as f64 / zstd_bytes as f64)),
    );
}

/// 2. Single-field edits spread over the boats' records, to every holder.
async fn incremental(
    run: &Run<'_>,
    fleet: &mut Fleet,
    ids: &[Vec<String>],
) -> anyhow::Result<Incremental> {
    let (opts, boats) = (run.opts, run.topo.boats);
    let edits = plan_edits(ids, run.reports, boats, opts.records_per_boat, opts.edits);
    let edited = make_edits(run, fleet, &edits).await?;
    let max_offset = (opts.edits / boats.len()).max(1) as u64 * WIRE_BYTES_PER_RECORD;
    let goal = Goal::Edits(&edits);
    let m = measured_sync(run, fleet, &goal, max_offset).await?;
    views_agree(fleet, &edit_sample(&edits)).await?;
    Ok(incremental_report(run, &edited, m))
}

/// The edits themselves, before any sync.
struct Edited {
    edits: usize,
    records: usize,
    secs: f64,
    raw_changes: u64,
    raw_change_bytes: u64,
}

/// Make the edits and measure the raw Automerge changes they added.
async fn make_edits(run: &Run<'_>, fleet: &Fleet, edits: &[Edit]) -> anyhow::Result<Edited> {
    let t0 = run.t0;
    progress!(t0, "incremental: {} edits", edits.len());
    let before = heads_before(fleet, edits).await?;
    let start = Instant::now();
    apply_edits(fleet, edits, run.opts.concurrency).await?;
    let secs = start.elapsed().as_secs_f64();
    let (raw_change_bytes, raw_changes) = raw_changes(fleet, &before).await?;
    progress!(
        t0,
        "edited in {secs:.1} s: {raw_changes} changes, {raw_change_bytes} raw change bytes"
    );
    Ok(Edited {
        edits: edits.len(),
        records: before.len(),
        secs,
        raw_changes,
        raw_change_bytes,
    })
}

/// About twenty of the edited records.
fn edit_sample(edits: &[Edit]) -> Vec<(usize, String)> {
    edits
        .iter()
        .step_by((edits.len() / 20).max(1))
        .map(|e| (e.boat, e.id.clone()))
        .collect()
}

fn incremental_report(run: &Run<'_>, e: &Edited, m: Measured) -> Incremental {
    let (t0, hops) = (run.t0, run.topo.hops);
    let (c, t) = (&m.converged, &m.traffic);
    let secs = c.sync_wall.as_secs_f64();
    let sums = outcome_sums(&c.syncs);
    let body_total = body_bytes(&c.syncs);
    let wire = t.wire();
    let carried = hops * e.raw_change_bytes;
    // Target: bytes ≤ 1.0 × the raw change bytes each link must carry, plus 1 KiB per sync.
    let allowance = carried + 1024 * c.syncs.len() as u64;
    progress!(
        t0,
        "incremental: {secs:.2} s, {} round trips, {wire} wire bytes, {body_total} body bytes; raw {} × {hops} links",
        sums["round_trips"],
        e.raw_change_bytes
    );
    let mut inc = Map::new();
    inc.insert("edits".into(), json!(e.edits));
    inc.insert("edited_records".into(), json!(e.records));
    inc.insert("edit_secs".into(), json!(round3(e.secs)));
    inc.insert("raw_changes".into(), json!(e.raw_changes));
    inc.insert("raw_change_bytes".into(), json!(e.raw_change_bytes));
    inc.insert("raw_change_bytes_carried".into(), json!(carried));
    inc.insert("wall_s".into(), json!(round3(secs)));
    inc.insert("rounds".into(), json!(c.rounds));
    inc.insert("outcomes".into(), sums);
    inc.insert("traffic".into(), traffic_json(t));
    inc.insert(
        "wire_over_raw_carried".into(),
        json!(round3(wire as f64 / carried as f64)),
    );
    inc.insert(
        "body_over_raw_carried".into(),
        json!(round3(body_total as f64 / carried as f64)),
    );
    inc.insert("allowance_bytes".into(), json!(allowance));
    inc.insert("resources".into(), m.resources);
    inc.insert("syncs".into(), sync_log(&c.syncs));
    Incremental {
        json: Json::Object(inc),
        body_ok: body_total <= allowance,
        wire_ok: wire <= allowance,
    }
}

/// 3. Every downstream once, one after another, nothing new.
async fn noop(run: &Run<'_>, fleet: &mut Fleet) -> anyhow::Result<Noop> {
    let t0 = run.t0;
    let meter = fleet.begin()?;
    // A no-op exchange is about 190 bytes each way, headers included.
    fleet.set_faults(&plan(run.opts, 192));
    progress!(t0, "no-op syncs");
    let mut syncs = Vec::new();
    let mut ok = true;
    let mut secs = 0.0;
    for &node in run.topo.boats.iter().chain(run.topo.stations) {
        let before = fleet.link_stats();
        let done = fleet.sync_group(&[node], run.deadline).await?.remove(0);
        let t = traffic(run.topo, &before, &fleet.link_stats());
        ok &= is_noop(&done);
        secs += done.wall.as_secs_f64();
        syncs.push(noop_entry(&done, &t));
    }
    let resources = fleet.end(&meter, true)?;
    nothing_lost(fleet, run.opts.records_per_boat).await?;
    progress!(t0, "no-op: {secs:.2} s for {} syncs", syncs.len());
    Ok(Noop {
        json: json!({"wall_s": round3(secs), "syncs": syncs, "resources": resources}),
        ok,
    })
}

/// One round trip, small bodies and nothing moved: the no-op target.
fn is_noop(done: &SyncDone) -> bool {
    let o = &done.outcome;
    let bodies = o.bytes_sent + o.bytes_received;
    o.round_trips == 1 && bodies <= NOOP_BODY_LIMIT && o.pushed == 0 && o.pulled == 0
}

fn noop_entry(done: &SyncDone, t: &Traffic) -> Json {
    let o = &done.outcome;
    json!({
        "node": done.name,
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
    })
}

/// After all scenarios every node still holds exactly what it should.
async fn nothing_lost(fleet: &Fleet, n: usize) -> anyhow::Result<()> {
    let topo = fleet.topo;
    let totals = fleet.totals().await?;
    for (i, t) in totals.iter().enumerate() {
        ensure!(
            *t == topo.expected_total(i, n),
            "{} lost records: {t}",
            topo.name_of(i)
        );
    }
    Ok(())
}

/// The memory peaks over the whole run into `result`; returns the largest
/// one while syncing, for the targets.
fn peaks(fleet: &mut Fleet, result: &mut Map<String, Json>) -> anyhow::Result<f64> {
    fleet.observe_rss()?;
    let topo = fleet.topo;
    let per_node = |v: &[f64]| -> Map<String, Json> {
        topo.nodes
            .iter()
            .zip(v)
            .map(|(nd, p)| (nd.name.to_string(), json!(round1(*p))))
            .collect()
    };
    let peaks = &fleet.peaks;
    result.insert(
        "peak_rss_mb".into(),
        json!({
            // During the three sync scenarios.
            "sync": per_node(&peaks.sync),
            // Over the whole run, loading the records and the export included.
            "overall": per_node(&peaks.overall),
        }),
    );
    result.insert(
        "hwm_reset_between_scenarios".into(),
        json!(peaks.hwm_resets_work),
    );
    Ok(peaks.sync.iter().cloned().fold(0.0, f64::max))
}
