//! Signed authorship across real instances (docs/EVIDENCE.md): HQ ← station
//! ← boat. A boat's changes reach HQ under the boat's own signature, passed
//! on by the station with the certificate it signed at enrolment; a station
//! that writes a change in the boat's name is refused at HQ, and so is one
//! that replays the boat's old signature or cuts its own short.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};
use serde_json::Value;
use tideline_schemas::RecordId;
use tideline_server::auth::attest::InstanceAttestor;
use tideline_server::auth::InstanceKey;
use tideline_sync::engine::sign_request;
use tideline_sync::evidence;
use tideline_sync::protocol::{DocChanges, SyncRequest};
use tideline_tests::{report, Instance};

/// Post a request to `up` as `down`, with `down`'s credential.
async fn post(down: &Instance, up: &Instance, request: &SyncRequest) -> (u16, Value) {
    let resp = down.post_sync(up, request).await;
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// A request from `down` pushing `changes` of record `id`, signed by `down`.
fn signed_push(down: &Instance, id: &RecordId, changes: Vec<Vec<u8>>) -> SyncRequest {
    let mut request = SyncRequest {
        instance: *down.records.identity().device_id.as_bytes(),
        station: down.records.station().to_string(),
        push: vec![DocChanges {
            id: id.to_string(),
            changes,
            document: Vec::new(),
        }],
        ..Default::default()
    };
    let key = InstanceKey::load(&down.settings.data_dir).unwrap();
    sign_request(
        &mut request,
        &InstanceAttestor::new(&key, down.records.store().as_ref()),
    );
    request
}

/// The audit entries of `action` at `inst`, read by an admin of `station`.
async fn audit_entries(inst: &Instance, station: &str, action: &str) -> Vec<Value> {
    tideline_tests::add_user(&inst.records, "adam", "admin", station);
    let admin = tideline_tests::client_with(&tideline_tests::login(&inst.base, "adam").await);
    let body: Value = admin
        .get(inst.url(&format!("/api/v1/audit?action={action}&limit=100")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["entries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_station_cannot_write_in_a_boats_name_at_hq() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let station = Instance::start_under("station", dirs[1].path(), "BB-01", &hq, &hq.base).await;
    let boat =
        Instance::start_under("boat", dirs[2].path(), "BB-01", &station, &station.base).await;

    // The honest path: the boat's record reaches HQ through the station,
    // under the boat's signature and the station's certificate for it.
    let made = boat.create("boarding-report", report("Sea Breeze")).await;
    let id: RecordId = made["id"].as_str().unwrap().parse().unwrap();
    boat.sync_ok().await;
    station.sync_ok().await;
    assert_eq!(
        hq.get(&id.to_string()).await["fields"]["vessel_name"],
        "Sea Breeze"
    );
    let boat_id = *boat.records.identity().device_id.as_bytes();
    let hq_store = hq.records.store().as_ref();
    let cert = evidence::certificate(hq_store, &boat_id)
        .unwrap()
        .expect("HQ keeps the boat's certificate");
    assert_eq!(
        cert.enrolment.issuer,
        *station.records.identity().device_id.as_bytes()
    );
    let kept = evidence::record_batches(hq_store, &id).unwrap();
    assert!(
        kept.iter().any(|(_, signer)| *signer == boat_id),
        "HQ keeps the boat's signature over its record: {kept:?}"
    );

    // The station writes a change in the boat's name and signs the request
    // with its own, real key.
    let bytes = station.records.automerge_bytes(&id).unwrap();
    let mut doc = AutoCommit::load(&bytes)
        .unwrap()
        .with_actor(ActorId::from(&boat_id[..]));
    doc.put(ROOT, "status", "submitted").unwrap();
    doc.commit().unwrap();
    let forged = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
    let before = hq.get(&id.to_string()).await;

    let request = signed_push(&station, &id, vec![forged.clone()]);
    let (status, body) = post(&station, &hq, &request).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no signature of its author covers"),
        "{body}"
    );

    // Replaying the boat's genuine signature from before does not cover
    // the new change either.
    let mut replay = signed_push(&station, &id, vec![forged.clone()]);
    let (batch_id, _) = kept.iter().find(|(_, s)| *s == boat_id).unwrap();
    let old = evidence::batch(station.records.store().as_ref(), batch_id)
        .unwrap()
        .expect("the station keeps the boat's signature it passed on");
    replay.relayed = vec![old.clone()];
    let (status, body) = post(&station, &hq, &replay).await;
    assert_eq!(status, 403, "{body}");

    // The boat's old signature stretched over the new change is not the
    // boat's signature.
    let mut stretched = signed_push(&station, &id, vec![forged.clone()]);
    let mut widened = old.clone();
    let new_hash = automerge::Change::from_bytes(forged.clone())
        .unwrap()
        .hash();
    widened.tips.push(new_hash.0);
    widened.tips.sort_unstable();
    stretched.relayed = vec![widened];
    let (status, body) = post(&station, &hq, &stretched).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not valid"),
        "{body}"
    );

    // A request whose own signature is cut short is refused by name.
    let mut cut = signed_push(&station, &id, Vec::new());
    cut.signature.truncate(40);
    let (status, body) = post(&station, &hq, &cut).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("40 bytes"),
        "{body}"
    );

    // Nothing of any of them was stored, and HQ's audit log names each.
    assert_eq!(hq.get(&id.to_string()).await, before);
    let refused = audit_entries(&hq, "HQ", "sync.refused").await;
    assert_eq!(refused.len(), 4, "{refused:?}");
    let station_id = station.records.identity().device_id;
    assert!(refused
        .iter()
        .all(|e| e["actor"] == format!("device:{station_id}")));

    // Honest work still flows, a station edit included.
    boat.patch(&id.to_string(), serde_json::json!({"arrests": 2}))
        .await;
    boat.sync_ok().await;
    station
        .patch(
            &id.to_string(),
            serde_json::json!({"findings": "Checked at the station."}),
        )
        .await;
    station.sync_ok().await;
    let at_hq = hq.get(&id.to_string()).await;
    assert_eq!(at_hq["fields"]["arrests"], 2);
    assert_eq!(at_hq["fields"]["findings"], "Checked at the station.");
}

/// The bytes an audit entry's hash covers, as the log writes them: its
/// fields in a fixed order, compact JSON. What someone rewriting the chain
/// by hand would reproduce.
fn hashed(e: &Value, prev: &str) -> Vec<u8> {
    let text = |v: &Value| serde_json::to_string(v).unwrap();
    format!(
        r#"{{"seq":{},"time":{},"actor":{},"action":{},"target":{},"details":{},"prev":{}}}"#,
        e["seq"],
        text(&e["time"]),
        text(&e["actor"]),
        text(&e["action"]),
        text(&e["target"]),
        text(&e["details"]),
        text(&Value::from(prev)),
    )
    .into_bytes()
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Rewrite the audit chain in `store` from entry `from` on, consistently:
/// entry `from` gets another actor, and every hash and link after it is
/// made to match, head included.
fn rewrite_chain(store: &dyn tideline_sync::DocStore, from: u64) {
    let entries = store.scan_state(b"audit/e/").unwrap();
    let mut prev = String::new();
    let mut writes = Vec::new();
    for (key, bytes) in entries {
        let mut e: Value = serde_json::from_slice(&bytes).unwrap();
        let seq = e["seq"].as_u64().unwrap();
        if seq < from {
            prev = e["hash"].as_str().unwrap().to_string();
            continue;
        }
        if seq == from {
            e["actor"] = Value::from("user:nobody");
        }
        e["prev"] = Value::from(prev.clone());
        let hash = hex_sha256(&hashed(&e, &prev));
        e["hash"] = Value::from(hash.clone());
        prev = hash;
        writes.push(tideline_sync::store::StateWrite {
            key,
            value: Some(serde_json::to_vec(&e).unwrap()),
        });
        let head = serde_json::json!({"seq": seq, "hash": prev});
        writes.push(tideline_sync::store::StateWrite {
            key: b"audit/head".to_vec(),
            value: Some(serde_json::to_vec(&head).unwrap()),
        });
    }
    store
        .commit(tideline_sync::store::Commit {
            records: Vec::new(),
            state: writes,
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chain_rewritten_after_a_sync_is_caught_on_both_sides() {
    use tideline_server::auth::audit;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat =
        Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &station.base).await;
    boat.create("boarding-report", report("Before")).await;
    boat.sync_ok().await;
    let store = boat.records.store().as_ref();
    let anchored = audit::head(store).unwrap();
    assert!(anchored.seq > 0, "the boat's writes are audited");
    assert!(audit::verify(store).unwrap().1.is_empty());

    // Someone with the data directory rewrites the chain from the entry the
    // sync anchored, consistently: every link still holds.
    rewrite_chain(store, anchored.seq);
    let (_, problems) = audit::verify(store).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].seq, anchored.seq);
    assert!(
        problems[0].message.contains("rewritten"),
        "{}",
        problems[0].message
    );

    // The next sync reports it in the station's audit log.
    boat.create("boarding-report", report("After")).await;
    boat.sync_ok().await;
    let found = audit_entries(&station, "BB-01", "audit.rewritten").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let boat_id = boat.records.identity().device_id.to_string();
    assert_eq!(found[0]["target"], boat_id);
    assert!(found[0]["details"]["finding"]
        .as_str()
        .unwrap()
        .contains(&format!("entry {}", anchored.seq)));
}
