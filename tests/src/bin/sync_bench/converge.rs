//! The sync schedule and when it is done: boats, stations, then "stations,
//! then boats" until a scenario's goal holds on every node, and the checks
//! that decide it. On one link that is the boat's sync, repeated only if
//! HQ still lacks something.

use crate::fleet::Fleet;
use crate::progress::progress;
use crate::sync_call::SyncDone;
use crate::workload::Edit;
use anyhow::{ensure, Context};
use serde_json::Value as Json;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Rounds of "stations, then boats" after the first pass before declaring that
/// the fleet does not converge. Two suffice when sync works.
const MAX_ROUNDS: usize = 6;

/// What a scenario must reach before it counts as converged.
pub enum Goal<'a> {
    /// Every node holds the records it should (by `total`).
    Counts { per_boat: usize },
    /// Every holder of an edited record shows its new `arrests`.
    Edits(&'a [Edit]),
}

/// None when converged, otherwise what is still missing.
async fn check(fleet: &Fleet, goal: &Goal<'_>) -> anyhow::Result<Option<String>> {
    match goal {
        Goal::Counts { per_boat } => check_counts(fleet, *per_boat).await,
        Goal::Edits(edits) => check_edits(fleet, edits).await,
    }
}

async fn check_counts(fleet: &Fleet, per_boat: usize) -> anyhow::Result<Option<String>> {
    let topo = fleet.topo;
    let totals = fleet.totals().await?;
    let wrong: Vec<String> = totals
        .iter()
        .enumerate()
        .filter(|(i, t)| **t != topo.expected_total(*i, per_boat))
        .map(|(i, t)| {
            let want = topo.expected_total(i, per_boat);
            format!("{} has {t}/{want}", topo.name_of(i))
        })
        .collect();
    Ok((!wrong.is_empty()).then(|| wrong.join(", ")))
}

async fn check_edits(fleet: &Fleet, edits: &[Edit]) -> anyhow::Result<Option<String>> {
    // Node by node, stopping at the first one that lacks an edit: a
    // round that has not converged usually fails on its first node.
    let topo = fleet.topo;
    for node in 0..topo.nodes.len() {
        let mine: Vec<&Edit> = edits
            .iter()
            .filter(|e| topo.holders(e.boat).contains(&node))
            .collect();
        let missing = edits_missing(fleet, node, &mine).await?;
        if missing > 0 {
            return Ok(Some(format!(
                "{} lacks {missing} of its {} edits",
                topo.name_of(node),
                mine.len()
            )));
        }
    }
    Ok(None)
}

/// How many of `edits` `node` does not show yet, read 8 requests at a time.
async fn edits_missing(fleet: &Fleet, node: usize, edits: &[&Edit]) -> anyhow::Result<usize> {
    let mut set = JoinSet::new();
    for chunk in edits.chunks(edits.len().div_ceil(8).max(1)) {
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
    Ok(missing)
}

/// The syncs a scenario took to converge. Only the syncs are timed; the
/// harness's own checks between rounds are not.
pub struct Converged {
    pub syncs: Vec<SyncDone>,
    pub sync_wall: Duration,
    pub rounds: usize,
}

impl Converged {
    /// Sync `nodes` in parallel, adding the syncs and their wall time
    /// (nothing for no nodes: one link has no stations).
    async fn sync(
        &mut self,
        fleet: &Fleet,
        nodes: &[usize],
        deadline: Instant,
        t0: Instant,
    ) -> anyhow::Result<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let start = Instant::now();
        self.syncs.extend(fleet.sync_group(nodes, deadline).await?);
        self.sync_wall += start.elapsed();
        progress!(
            t0,
            "  synced {} ({:.2} s so far)",
            fleet.topo.names(nodes),
            self.sync_wall.as_secs_f64()
        );
        Ok(())
    }
}

/// The sync schedule: boats (in parallel), then stations (in parallel), then
/// "stations, then boats" again until `goal` holds.
pub async fn converge(
    fleet: &Fleet,
    goal: &Goal<'_>,
    deadline: Instant,
    t0: Instant,
) -> anyhow::Result<Converged> {
    let mut done = Converged {
        syncs: Vec::new(),
        sync_wall: Duration::ZERO,
        rounds: 0,
    };
    let topo = fleet.topo;
    for nodes in [topo.boats, topo.stations] {
        done.sync(fleet, nodes, deadline, t0).await?;
    }
    while let Some(missing) = check(fleet, goal).await? {
        ensure!(
            done.rounds < MAX_ROUNDS,
            "no convergence after {} rounds: {missing}",
            done.rounds + 1
        );
        progress!(t0, "  not yet converged: {missing}");
        done.rounds += 1;
        for nodes in [topo.stations, topo.boats] {
            done.sync(fleet, nodes, deadline, t0).await?;
        }
    }
    // The first pass counts as a round.
    done.rounds += 1;
    Ok(done)
}

/// Full views of a sample of records must be identical on every holder:
/// equal counts alone would not notice records that differ.
pub async fn views_agree(fleet: &Fleet, sample: &[(usize, String)]) -> anyhow::Result<()> {
    let topo = fleet.topo;
    for (boat, id) in sample {
        let path = format!("/api/v1/records/{id}");
        let reference = fleet.get_bytes(*boat, &path).await?;
        let reference: Json = serde_json::from_slice(&reference)?;
        for node in topo.holders(*boat) {
            let other: Json = serde_json::from_slice(&fleet.get_bytes(node, &path).await?)?;
            ensure!(
                other == reference,
                "record {id} differs between {} and {}",
                topo.name_of(*boat),
                topo.name_of(node)
            );
        }
    }
    Ok(())
}
