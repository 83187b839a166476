//! What the report says about a set of syncs: wire traffic from the proxies'
//! counters, sums and a log of the sync outcomes, and the rounding every
//! figure in the JSON goes through.

use crate::sync_call::{Outcome, SyncDone};
use crate::topology::{Topology, HQ};
use serde_json::{json, Map, Value as Json};
use tideline_tests::proxy::ProxyStats;

/// Per-link proxy counters, indexed by the downstream node (None for HQ).
pub type LinkStats = Vec<Option<ProxyStats>>;

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Wire totals across the links between two snapshots, and per link.
pub struct Traffic {
    pub to_upstream: u64,
    pub to_downstream: u64,
    connections: u64,
    cuts: u64,
    per_link: Map<String, Json>,
    /// Bytes (both directions) on the links to HQ (the two station ↔ HQ
    /// links of the fleet, the only link of one-link).
    pub hq_links: u64,
}

impl Traffic {
    /// Bytes on every link, both directions.
    pub fn wire(&self) -> u64 {
        self.to_upstream + self.to_downstream
    }
}

pub fn traffic(topo: &Topology, before: &LinkStats, after: &LinkStats) -> Traffic {
    let mut t = Traffic {
        to_upstream: 0,
        to_downstream: 0,
        connections: 0,
        cuts: 0,
        per_link: Map::new(),
        hq_links: 0,
    };
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        let (Some(b), Some(a)) = (b, a) else { continue };
        let up = a.bytes_to_server - b.bytes_to_server;
        let down = a.bytes_to_client - b.bytes_to_client;
        t.to_upstream += up;
        t.to_downstream += down;
        t.connections += a.connections - b.connections;
        t.cuts += a.cuts() - b.cuts();
        let node = &topo.nodes[i];
        if node.upstream == Some(HQ) {
            t.hq_links += up + down;
        }
        let upstream = node.upstream.map(|u| topo.name_of(u)).unwrap_or("-");
        t.per_link.insert(
            format!("{}->{upstream}", node.name),
            json!({
                "bytes_to_upstream": up,
                "bytes_to_downstream": down,
                "connections": a.connections - b.connections,
                "cuts": a.cuts() - b.cuts(),
            }),
        );
    }
    t
}

pub fn traffic_json(t: &Traffic) -> Json {
    json!({
        "wire_bytes_to_upstream": t.to_upstream,
        "wire_bytes_to_downstream": t.to_downstream,
        "connections": t.connections,
        "cuts": t.cuts,
        "links": t.per_link,
    })
}

fn sum(syncs: &[SyncDone], f: fn(&Outcome) -> u64) -> u64 {
    syncs.iter().map(|s| f(&s.outcome)).sum()
}

/// Sync bodies both ways, summed over a set of syncs.
pub fn body_bytes(syncs: &[SyncDone]) -> u64 {
    sum(syncs, |o| o.bytes_sent) + sum(syncs, |o| o.bytes_received)
}

/// Sums over the outcomes of a set of syncs.
pub fn outcome_sums(syncs: &[SyncDone]) -> Json {
    json!({
        "syncs": syncs.len(),
        "failed_attempts": syncs.iter().map(|s| u64::from(s.attempts - 1)).sum::<u64>(),
        "round_trips": sum(syncs, |o| o.round_trips),
        "pushed": sum(syncs, |o| o.pushed),
        "pulled": sum(syncs, |o| o.pulled),
        "rejected": sum(syncs, |o| o.rejected),
        "body_bytes_sent": sum(syncs, |o| o.bytes_sent),
        "body_bytes_received": sum(syncs, |o| o.bytes_received),
    })
}

pub fn sync_log(syncs: &[SyncDone]) -> Json {
    Json::Array(
        syncs
            .iter()
            .map(|s| {
                json!({
                    "node": s.name,
                    "round_trips": s.outcome.round_trips,
                    "pushed": s.outcome.pushed,
                    "pulled": s.outcome.pulled,
                    "bytes_sent": s.outcome.bytes_sent,
                    "bytes_received": s.outcome.bytes_received,
                    "duration_ms": s.outcome.duration_ms,
                    "attempts": s.attempts,
                })
            })
            .collect(),
    )
}
