//! What the harness writes on the boats: the boarding reports loaded before
//! the first sync, the single-field edits of the incremental one, and the
//! raw Automerge changes those edits made, which the report compares with.

use crate::fleet::Fleet;
use crate::reports::{Reports, FORM};
use anyhow::{ensure, Context};
use automerge::{AutoCommit, ChangeHash};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Create `n` reports on every boat, `concurrency` requests in flight per
/// boat; the `i`-th record of the `b`-th boat gets `reports.fields(b * n + i)`.
/// Returns each boat's record ids, in that order.
pub async fn load_records(
    fleet: &Fleet,
    reports: &Arc<Reports>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Vec<String>>> {
    let boats = fleet.topo.boats;
    let mut set = JoinSet::new();
    for (b, &boat) in boats.iter().enumerate() {
        for t in 0..concurrency {
            let url = fleet.servers[boat].url("/api/v1/records");
            let token = fleet.servers[boat].token.clone();
            let http = fleet.api.clone();
            let reports = Arc::clone(reports);
            set.spawn(async move {
                let mut ids = Vec::new();
                for i in (t..n).step_by(concurrency) {
                    let fields = reports.fields(b * n + i);
                    let id = post_record(&http, &url, &token, fields).await?;
                    ids.push((i, id));
                }
                anyhow::Ok((b, ids))
            });
        }
    }
    let mut per_boat: Vec<Vec<(usize, String)>> = vec![Vec::new(); boats.len()];
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

/// Create one boarding report; its id.
async fn post_record(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    fields: Map<String, Json>,
) -> anyhow::Result<String> {
    let body = json!({"form": FORM, "fields": fields});
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .context("POST a record")?;
    let status = r.status();
    let view: Json = r.json().await.context("read the POST answer")?;
    ensure!(status.as_u16() == 201, "POST returned {status}: {view}");
    Ok(view["id"]
        .as_str()
        .context("a view without id")?
        .to_string())
}

/// One single-field edit: `arrests` of record `id`, made on `boat`.
#[derive(Debug, Clone)]
pub struct Edit {
    pub boat: usize,
    pub id: String,
    pub arrests: u64,
}

/// `count` edits spread evenly over the boats' records (`ids`, as loaded
/// from `reports`, `n` per boat, of the nodes `boats`), round robin over the
/// boats.
pub fn plan_edits(
    ids: &[Vec<String>],
    reports: &Reports,
    boats: &[usize],
    n: usize,
    count: usize,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    let per = boats.len();
    for i in 0..count {
        let b = i % per;
        let on_this_boat = count / per + usize::from(b < count % per);
        let stride = (n / on_this_boat.max(1)).max(1);
        let idx = ((i / per) * stride) % n;
        // Never the loaded value (0 to 2 in generated and reference
        // reports alike), so every edit is a real change.
        let loaded = reports
            .fields(b * n + idx)
            .get("arrests")
            .and_then(Json::as_u64);
        let mut arrests = 3 + (i % 9) as u64;
        if loaded == Some(arrests) {
            arrests += 9;
        }
        edits.push(Edit {
            boat: boats[b],
            id: ids[b][idx].clone(),
            arrests,
        });
    }
    edits
}

/// Make `edits` on their boats, about `concurrency` requests in flight per boat.
pub async fn apply_edits(fleet: &Fleet, edits: &[Edit], concurrency: usize) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    let tasks = concurrency * fleet.topo.boats.len();
    for chunk in edits.chunks(edits.len().div_ceil(tasks).max(1)) {
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
    Ok(())
}

/// A record's Automerge document as `node` holds it.
async fn document(fleet: &Fleet, node: usize, id: &str) -> anyhow::Result<AutoCommit> {
    let bytes = fleet
        .get_bytes(node, &format!("/api/v1/records/{id}/automerge"))
        .await?;
    AutoCommit::load(&bytes).with_context(|| format!("load record {id}"))
}

/// Heads of a record's Automerge document on a node.
async fn heads(fleet: &Fleet, node: usize, id: &str) -> anyhow::Result<Vec<ChangeHash>> {
    Ok(document(fleet, node, id).await?.get_heads())
}

/// Raw bytes (`Change::raw_bytes`, what sync puts on the wire before zstd) and
/// count of the changes a record gained since `before`.
async fn changes_since(
    fleet: &Fleet,
    node: usize,
    id: &str,
    before: &[ChangeHash],
) -> anyhow::Result<(u64, u64)> {
    let mut doc = document(fleet, node, id).await?;
    let changes = doc.get_changes(before);
    Ok((
        changes.iter().map(|c| c.raw_bytes().len() as u64).sum(),
        changes.len() as u64,
    ))
}

/// Per edited record: the boat it was edited on and its heads before the
/// edits.
pub type HeadsBefore = HashMap<String, (usize, Vec<ChangeHash>)>;

/// Heads before, once per distinct record (an id edited twice is measured
/// once, over both edits).
pub async fn heads_before(fleet: &Fleet, edits: &[Edit]) -> anyhow::Result<HeadsBefore> {
    let mut before = HeadsBefore::new();
    for e in edits {
        if !before.contains_key(&e.id) {
            let h = heads(fleet, e.boat, &e.id).await?;
            before.insert(e.id.clone(), (e.boat, h));
        }
    }
    Ok(before)
}

/// Raw bytes and count of the changes the edited records gained since
/// `before`, summed over the records.
pub async fn raw_changes(fleet: &Fleet, before: &HeadsBefore) -> anyhow::Result<(u64, u64)> {
    let mut raw_change_bytes = 0u64;
    let mut raw_changes = 0u64;
    for (id, (boat, h)) in before {
        let (bytes, count) = changes_since(fleet, *boat, id, h).await?;
        raw_change_bytes += bytes;
        raw_changes += count;
    }
    Ok((raw_change_bytes, raw_changes))
}
