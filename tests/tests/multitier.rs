//! HQ ← station ← two boats, each a real server on loopback: work done while
//! the links are down converges once they are up, changes keep their authors,
//! and conflicts are shown identically everywhere until someone resolves them.

use serde_json::{json, Value};
use std::collections::HashSet;
use tideline_tests::{report, Instance};

struct Fleet {
    hq: Instance,
    station: Instance,
    boats: [Instance; 2],
    _dirs: Vec<tempfile::TempDir>,
}

async fn fleet() -> Fleet {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let station = Instance::start_under("station", dirs[1].path(), "BB-01", &hq, &hq.base).await;
    let boat1 =
        Instance::start_under("boat1", dirs[2].path(), "BB-01", &station, &station.base).await;
    let boat2 =
        Instance::start_under("boat2", dirs[3].path(), "BB-01", &station, &station.base).await;
    Fleet {
        hq,
        station,
        boats: [boat1, boat2],
        _dirs: dirs,
    }
}

impl Fleet {
    /// Sync everyone until all four agree: boats up, station up and down, boats down.
    async fn converge(&self) {
        for boat in &self.boats {
            boat.sync_ok().await;
        }
        self.station.sync_ok().await;
        for boat in &self.boats {
            boat.sync_ok().await;
        }
    }

    async fn assert_identical(&self) -> Vec<Value> {
        let hq = self.hq.all().await;
        for other in [&self.station, &self.boats[0], &self.boats[1]] {
            assert_eq!(other.all().await, hq, "{} differs from hq", other.name);
        }
        hq
    }
}

fn id(view: &Value) -> String {
    view["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn work_done_while_hq_is_down_converges_everywhere() {
    let mut f = fleet().await;
    f.hq.stop().await;

    let mut ids = Vec::new();
    for (b, boat) in f.boats.iter().enumerate() {
        for n in 0..3 {
            ids.push(id(&boat
                .create("boarding-report", report(&format!("Boat{b} vessel {n}")))
                .await));
        }
    }
    f.boats[0].patch(&ids[0], json!({"arrests": 1})).await;
    f.boats[1]
        .patch(&ids[4], json!({"vessel_registration": "VC-204"}))
        .await;
    for boat in &f.boats {
        boat.sync_ok().await;
    }
    let (status, body) = f.station.sync_now().await;
    assert_eq!(status, 502, "HQ is down: {body}");
    assert_eq!(body["error"], "upstream_failed");
    let st: Value = f
        .station
        .client
        .get(f.station.url("/api/v1/sync/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{st}"
    );
    assert!(st["pending_local_changes"].as_u64().unwrap() >= 6, "{st}");

    // The boats keep working offline from HQ's point of view.
    f.boats[0]
        .patch(
            &ids[1],
            json!({"findings": "Second look: papers in order."}),
        )
        .await;

    f.hq.restart().await;
    f.converge().await;
    // HQ reviews and corrects; the correction reaches both boats.
    f.hq.patch(&ids[3], json!({"master_name": "Corrected by HQ"}))
        .await;
    f.converge().await;
    let all = f.assert_identical().await;
    assert_eq!(all.len(), 6);
    for boat in &f.boats {
        assert_eq!(
            boat.get(&ids[3]).await["fields"]["master_name"],
            "Corrected by HQ"
        );
    }
    assert_eq!(f.hq.get(&ids[0]).await["fields"]["arrests"], 1);
    assert_eq!(
        f.hq.get(&ids[4]).await["fields"]["vessel_registration"],
        "VC-204"
    );

    // Changes keep their original author end to end: boat 1's record at HQ was
    // written by boat 1's actor, and HQ's correction by HQ's.
    let (_, bytes) =
        f.hq.get_bytes(&format!("/api/v1/records/{}/automerge", ids[0]))
            .await;
    let mut doc = automerge::AutoCommit::load(&bytes).unwrap();
    let actors: HashSet<String> = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.actor_id().to_hex_string())
        .collect();
    let boat1_device = f.boats[0].get(&ids[0]).await["created_by"]
        .as_str()
        .unwrap()
        .replace('-', "");
    assert_eq!(actors, HashSet::from([boat1_device]));

    // And a sync with nothing new is a single small round trip.
    let outcome = f.boats[0].sync_ok().await;
    assert_eq!(outcome["round_trips"], 1);
    assert!(
        outcome["bytes_sent"].as_u64().unwrap() + outcome["bytes_received"].as_u64().unwrap()
            <= 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicts_are_shown_everywhere_and_resolved_once() {
    let f = fleet().await;
    let view = f.boats[0]
        .create("boarding-report", report("Night Runner"))
        .await;
    let rid = id(&view);
    f.converge().await;

    // Between syncs, the boat and HQ both change the outcome and the narrative.
    f.boats[0].patch(&rid, json!({"outcome": "warning_issued", "findings": "Vessel boarded without incident at dawn. Papers in order."})).await;
    f.hq.patch(&rid, json!({"outcome": "detained", "findings": "Vessel boarded without incident. Papers in order; master questioned."})).await;
    f.converge().await;
    f.converge().await;

    let all = f.assert_identical().await;
    let rec = all.iter().find(|r| r["id"] == rid.as_str()).unwrap();
    let conflict = rec["conflicts"]["outcome"]
        .as_array()
        .expect("outcome conflict listed");
    let values: HashSet<&str> = conflict
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, HashSet::from(["warning_issued", "detained"]));
    let authors: HashSet<&str> = conflict
        .iter()
        .map(|c| c["author"].as_str().unwrap())
        .collect();
    assert_eq!(authors.len(), 2, "each value names its author");
    assert_eq!(
        rec["fields"]["findings"],
        "Vessel boarded without incident at dawn. Papers in order; master questioned.",
        "both narrative edits survive"
    );

    // A supervisor at HQ resolves it; after the next syncs it is gone everywhere.
    let resp =
        f.hq.client
            .post(f.hq.url(&format!("/api/v1/records/{rid}/resolve")))
            .json(&json!({"path": "outcome", "value": "detained"}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    let again =
        f.hq.client
            .post(f.hq.url(&format!("/api/v1/records/{rid}/resolve")))
            .json(&json!({"path": "outcome", "value": "released"}))
            .send()
            .await
            .unwrap();
    assert_eq!(again.status(), 409, "nothing left to resolve");
    f.converge().await;
    for inst in [&f.hq, &f.station, &f.boats[0], &f.boats[1]] {
        let v = inst.get(&rid).await;
        assert_eq!(v["conflicts"], json!({}), "{}", inst.name);
        assert_eq!(v["fields"]["outcome"], "detained", "{}", inst.name);
    }
    f.assert_identical().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_without_an_upstream_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Instance::start("hq", dir.path(), "HQ").await;
    let (status, body) = hq.sync_now().await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "no_upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_local_change_reaches_the_upstream_without_anyone_asking() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let started = std::time::Instant::now();
    let boat =
        Instance::start_syncing("boat", dirs[1].path(), "BB-01", &station, &station.base).await;
    // The first sync comes within seconds of start, with nothing to send.
    loop {
        let status: serde_json::Value = boat
            .client
            .get(boat.url("/api/v1/sync/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["last_success"].is_string() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "no first sync within 15 s of start: {status}"
        );
        tokio::task::yield_now().await;
    }
    // The periodic sync is a day away: only the change itself can trigger this.
    let created = boat.create("boarding-report", report("Quick Silver")).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let resp = station
            .client
            .get(station.url(&format!("/api/v1/records/{}", id(&created))))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change never reached the station"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(
        station.get(&id(&created)).await["fields"],
        created["fields"]
    );
}
