//! Edits made while syncs run back to back: real servers on loopback, one
//! client editing the boat's records without pause, another editing the same
//! records at HQ, and syncs one after another the whole time, through taps
//! that decode every exchange. Afterwards, synced until nothing moves, every
//! acknowledged edit is everywhere, no exchange named a record twice, no sync
//! failed, and none of the boat's pushes was refused.
//!
//! The edits race the change-feed walk that builds each page: a record
//! rewritten while a page is being built is met again at its new seq. Each run
//! lasts `TIDELINE_EDIT_SYNC_SECS` seconds (default 12) per topology; longer
//! runs are in docs/SYNC.md.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tideline_tests::proxy::SplitMix64;
use tideline_tests::tap::Tap;
use tideline_tests::{report, Instance};

const RECORDS: usize = 300;

fn duration() -> Duration {
    let secs = std::env::var("TIDELINE_EDIT_SYNC_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    Duration::from_secs(secs)
}

/// The last value of `field` each record was acknowledged with.
type Acked = Arc<Mutex<HashMap<String, String>>>;

/// Edit `field` of random records of `ids` on `at` until `until`, remembering
/// every value the server acknowledged.
fn editor(
    at: Arc<Instance>,
    ids: Arc<Vec<String>>,
    field: &'static str,
    prefix: &'static str,
    seed: u64,
    until: Instant,
) -> (Acked, tokio::task::JoinHandle<usize>) {
    let acked: Acked = Arc::default();
    let mine = acked.clone();
    let task = tokio::spawn(async move {
        let mut rng = SplitMix64::new(seed);
        let mut n = 0;
        while Instant::now() < until {
            n += 1;
            let id = &ids[rng.below(ids.len())];
            let value = format!("{prefix}{n}");
            // `patch` insists on 200: the edit is acknowledged when it returns.
            at.patch(id, json!({ field: value })).await;
            mine.lock().unwrap().insert(id.clone(), value);
        }
        n
    });
    (acked, task)
}

/// What one `sync/now` answered, as a person would see it.
struct Outcome {
    who: String,
    status: u16,
    body: Value,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {}", self.who, self.status, self.body)
    }
}

/// Sync `down` with its upstream back to back until `until`.
fn syncer(down: Arc<Instance>, until: Instant) -> tokio::task::JoinHandle<Vec<Outcome>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while Instant::now() < until {
            let (status, body) = down.sync_now().await;
            seen.push(Outcome {
                who: down.name.clone(),
                status,
                body,
            });
        }
        seen
    })
}

/// Sync each link in order, over and over, until a whole round moves nothing.
async fn settle(links: &[&Instance]) -> Vec<Outcome> {
    let mut seen = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        for down in links.iter().chain(links.iter().rev()) {
            let (status, body) = down.sync_now().await;
            moved |= body["pushed"].as_u64().unwrap_or(0) > 0
                || body["pulled"].as_u64().unwrap_or(0) > 0;
            seen.push(Outcome {
                who: down.name.clone(),
                status,
                body,
            });
        }
        if !moved {
            return seen;
        }
    }
    panic!("syncs were still moving records after 20 rounds");
}

/// Run the race on a chain of instances, `chain[0]` being HQ and the last the
/// boat, each reaching the one before through `taps`.
async fn race(chain: Vec<Arc<Instance>>, taps: Vec<Tap>) {
    let boat = chain.last().unwrap().clone();
    let hq = chain[0].clone();
    let mut ids = Vec::new();
    for i in 0..RECORDS {
        let view = boat
            .create("boarding-report", report(&format!("v{i}")))
            .await;
        ids.push(view["id"].as_str().unwrap().to_string());
    }
    let ids = Arc::new(ids);
    let downstreams: Vec<&Instance> = chain[1..].iter().rev().map(|i| i.as_ref()).collect();
    let mut outcomes = settle(&downstreams).await;

    let until = Instant::now() + duration();
    let (boat_acked, boat_edits) = editor(boat.clone(), ids.clone(), "vessel_name", "b", 1, until);
    let (hq_acked, hq_edits) = editor(hq.clone(), ids.clone(), "findings", "h", 2, until);
    let syncers: Vec<_> = chain[1..]
        .iter()
        .map(|i| syncer(i.clone(), until))
        .collect();
    let boat_n = boat_edits.await.expect("boat editor");
    let hq_n = hq_edits.await.expect("hq editor");
    for s in syncers {
        outcomes.extend(s.await.expect("syncer"));
    }
    let racing = outcomes.len();
    outcomes.extend(settle(&downstreams).await);
    eprintln!(
        "{boat_n} edits on the boat, {hq_n} at HQ, {racing} syncs while editing, {} after",
        outcomes.len() - racing
    );

    let failed: Vec<_> = outcomes.iter().filter(|o| o.status != 200).collect();
    assert!(failed.is_empty(), "syncs failed: {failed:?}");
    let refused: Vec<_> = outcomes
        .iter()
        .filter(|o| o.body["rejected"].as_u64() != Some(0))
        .collect();
    assert!(refused.is_empty(), "pushes were refused: {refused:?}");
    for tap in &taps {
        let seen = tap.seen();
        assert!(seen.exchanges > 0, "no exchange went through {}", tap.url());
        assert_eq!(seen.undecodable, 0, "undecodable sync bodies");
        assert!(
            seen.pushed_twice.is_empty(),
            "records pushed twice in one request: {:?}",
            seen.pushed_twice
        );
        assert!(
            seen.pulled_twice.is_empty(),
            "records pulled twice in one page: {:?}",
            seen.pulled_twice
        );
    }

    for (at, field, acked) in [
        (&hq, "vessel_name", &boat_acked),
        (&boat, "findings", &hq_acked),
    ] {
        let acked = acked.lock().unwrap().clone();
        assert!(!acked.is_empty(), "no edit of {field} was acknowledged");
        let everywhere: HashMap<String, Value> = at
            .all()
            .await
            .into_iter()
            .map(|v| (v["id"].as_str().unwrap().to_string(), v))
            .collect();
        let lost: Vec<_> = acked
            .iter()
            .filter(|(id, value)| everywhere[*id]["fields"][field] != json!(value))
            .map(|(id, value)| {
                format!(
                    "{id}: {field} acknowledged as {value:?}, {} shows {}",
                    at.name, everywhere[id]["fields"][field]
                )
            })
            .collect();
        assert!(lost.is_empty(), "acknowledged edits lost: {lost:#?}");
    }
    let hq_all = hq.all().await;
    for other in &chain[1..] {
        assert_eq!(other.all().await, hq_all, "{} differs from HQ", other.name);
    }
    for tap in &taps {
        tap.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_during_back_to_back_syncs_all_arrive_boat_to_hq() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let tap = Tap::start(&hq.base).await;
    let boat = Instance::start_under("boat", dirs[1].path(), "BB-01", &hq, tap.url()).await;
    race(vec![Arc::new(hq), Arc::new(boat)], vec![tap]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_during_back_to_back_syncs_all_arrive_boat_to_station_to_hq() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let to_hq = Tap::start(&hq.base).await;
    let station = Instance::start_under("station", dirs[1].path(), "BB-01", &hq, to_hq.url()).await;
    let to_station = Tap::start(&station.base).await;
    let boat =
        Instance::start_under("boat", dirs[2].path(), "BB-01", &station, to_station.url()).await;
    race(
        vec![Arc::new(hq), Arc::new(station), Arc::new(boat)],
        vec![to_hq, to_station],
    )
    .await;
}
