//! Crash safety: the real binary is killed with SIGKILL right after it
//! acknowledges a write, at many points, and every acknowledged write must be
//! there, intact, when it restarts on the same data directory.

mod common;

use common::{spawn_serve, ServeProcess};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tideline_sync::{DocStore, RecordDoc, SledStore};

const KILL_POINTS: usize = 24;

fn start(data: &Path) -> ServeProcess {
    let data = data.to_str().expect("utf-8 path");
    spawn_serve(
        &["--station", "BB-01", "--data", data],
        &["--listen", "127.0.0.1:0"],
    )
}

fn report(n: usize) -> Value {
    json!({
        "boarding_time": "2026-11-20T14:05:00Z",
        "position": {"lat": 13.1, "lon": -59.6},
        "vessel_name": format!("Vessel {n}"),
        "persons_on_board": 4,
        "reason": "routine_inspection",
        "crew": [{"name": "A. Joseph"}, {"name": "B. Charles"}],
        "contraband_found": false,
        "findings": format!("Boarding number {n}."),
        "outcome": "released"
    })
}

/// What the test knows was acknowledged: record id -> fields as last acknowledged.
type Acked = Arc<Mutex<BTreeMap<String, Value>>>;

fn create(client: &reqwest::blocking::Client, base: &str, n: usize) -> Option<(String, Value)> {
    let resp = client
        .post(format!("{base}/api/v1/records"))
        .json(&json!({"form": "boarding-report", "fields": report(n)}))
        .send()
        .ok()?;
    if resp.status() != 201 {
        return None;
    }
    let view: Value = resp.json().ok()?;
    Some((view["id"].as_str()?.to_string(), view["fields"].clone()))
}

fn verify(client: &reqwest::blocking::Client, base: &str, acked: &BTreeMap<String, Value>) {
    for (id, fields) in acked {
        let resp = client
            .get(format!("{base}/api/v1/records/{id}"))
            .send()
            .expect("GET after restart");
        assert_eq!(resp.status(), 200, "acknowledged record {id} is missing");
        let view: Value = resp.json().unwrap();
        assert_eq!(&view["fields"], fields, "acknowledged record {id} changed");
    }
    let list: Value = client
        .get(format!("{base}/api/v1/records?limit=10000"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(list["total"].as_u64().unwrap() as usize >= acked.len());
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Acked = Arc::default();
    let mut n = 0;

    for point in 0..KILL_POINTS {
        let mut server = start(dir.path());
        // Sessions end with the process: log in anew after every restart.
        let client = server.client();
        verify(&client, &server.base, &acked.lock().unwrap());

        // A second writer keeps requests in flight, so the kill also lands in
        // the middle of writes that were never acknowledged.
        let stop = Arc::new(AtomicBool::new(false));
        let background = {
            let (stop, acked, base) = (stop.clone(), acked.clone(), server.base.clone());
            let client = server.client();
            let start_n = 1_000_000 * (point + 1);
            std::thread::spawn(move || {
                let mut m = start_n;
                while !stop.load(Ordering::SeqCst) {
                    m += 1;
                    match create(&client, &base, m) {
                        Some((id, fields)) => {
                            acked.lock().unwrap().insert(id, fields);
                        }
                        None => break,
                    }
                }
            })
        };

        // Vary the kill point: a few creates and edits, then kill right after
        // the last acknowledgement.
        for op in 0..=(point % 4) {
            n += 1;
            let existing = acked.lock().unwrap().keys().next_back().cloned();
            match (op % 2, existing) {
                (1, Some(id)) => {
                    let patch =
                        json!({"fields": {"arrests": n, "findings": format!("Edited at {n}.")}});
                    let resp = client
                        .patch(format!("{}/api/v1/records/{id}", server.base))
                        .json(&patch)
                        .send()
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                    let view: Value = resp.json().unwrap();
                    acked.lock().unwrap().insert(id, view["fields"].clone());
                }
                _ => {
                    let (id, fields) = create(&client, &server.base, n).expect("create");
                    acked.lock().unwrap().insert(id, fields);
                }
            }
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        background.join().unwrap();
    }

    let mut server = start(dir.path());
    verify(&server.client(), &server.base, &acked.lock().unwrap());
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The feed and the documents agree: every record once in the feed, every
    // feed entry a record whose document loads to the view that was served.
    let store = SledStore::open(dir.path()).unwrap();
    let feed = store.changes_since(0, usize::MAX).unwrap();
    let feed_ids: HashSet<_> = feed.iter().map(|e| e.id).collect();
    assert_eq!(
        feed_ids.len(),
        feed.len(),
        "a record appears twice in the feed"
    );
    assert!(feed.windows(2).all(|w| w[0].seq < w[1].seq));
    let mut summary_ids = HashSet::new();
    store
        .scan_summaries(&mut |id, _| {
            summary_ids.insert(id);
            true
        })
        .unwrap();
    assert_eq!(feed_ids, summary_ids);
    assert_eq!(store.count().unwrap(), feed.len());
    for entry in &feed {
        let stored = store
            .load(&entry.id)
            .unwrap()
            .expect("document for feed entry");
        let doc = RecordDoc::load(
            &stored.snapshot,
            &stored.chunks,
            automerge::ActorId::random(),
        )
        .expect("document loads");
        let view: Value = serde_json::from_slice(&store.view(&entry.id).unwrap().unwrap()).unwrap();
        assert_eq!(Value::Object(doc.fields()), view["fields"]);
    }
    for id in acked.lock().unwrap().keys() {
        assert!(feed.iter().any(|e| e.id.to_string() == *id));
    }
}
