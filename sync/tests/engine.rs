//! The sync engine in process: instances exchange encoded messages directly,
//! so every protocol rule is exercised without a network.

mod support;

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tideline_schemas::{FormRegistry, RecordId};
use tideline_sync::engine::{Downstream, Upstream};
use tideline_sync::protocol::{self, Limits};
use tideline_sync::store::{Commit, FeedEntry, Seq, StateWrite, StoredDoc, Summary};
use tideline_sync::{Author, DocStore, MemoryStore, Patch, Records, StoreError};

/// A store that counts document loads (of documents that exist: asking for a
/// record that is not there costs a key lookup), to check that sync cost
/// follows change, and the commits that carry bookkeeping.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    loads: AtomicUsize,
    state_commits: AtomicUsize,
}

impl DocStore for Counting {
    fn commit(&self, c: Commit) -> Result<Vec<Seq>, StoreError> {
        // Signatures are committed with the records they cover, not with
        // the bookkeeping.
        if c.state.iter().any(|w| !w.key.starts_with(b"sig/")) {
            self.state_commits.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.commit(c)
    }
    fn load(&self, id: &RecordId) -> Result<Option<StoredDoc>, StoreError> {
        let doc = self.inner.load(id)?;
        if doc.is_some() {
            self.loads.fetch_add(1, Ordering::SeqCst);
        }
        Ok(doc)
    }
    fn view(&self, id: &RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.view(id)
    }
    fn summary(&self, id: &RecordId) -> Result<Option<Summary>, StoreError> {
        self.inner.summary(id)
    }
    fn scan_summaries(
        &self,
        v: &mut dyn FnMut(RecordId, Summary) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan_summaries(v)
    }
    fn changes_since(&self, after: Seq, limit: usize) -> Result<Vec<FeedEntry>, StoreError> {
        self.inner.changes_since(after, limit)
    }
    fn last_seq(&self) -> Result<Seq, StoreError> {
        self.inner.last_seq()
    }
    fn count(&self) -> Result<usize, StoreError> {
        self.inner.count()
    }
    fn get_meta(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(k)
    }
    fn put_meta(&self, k: &str, v: &[u8]) -> Result<(), StoreError> {
        self.inner.put_meta(k, v)
    }
    fn get_state(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_state(k)
    }
    fn scan_state(&self, p: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.inner.scan_state(p)
    }
    fn put_state_lazy(&self, w: Vec<StateWrite>) -> Result<(), StoreError> {
        self.state_commits.fetch_add(1, Ordering::SeqCst);
        self.inner.put_state_lazy(w)
    }
}

struct Node {
    records: Records<Arc<Counting>>,
    store: Arc<Counting>,
    upstream: Upstream,
}

fn node(station: &str) -> Node {
    let store = Arc::new(Counting::default());
    Node {
        records: Records::open(store.clone(), FormRegistry::builtin(), station).unwrap(),
        store,
        upstream: Upstream::new(),
    }
}

#[derive(Debug, Default)]
struct Tally {
    round_trips: usize,
    bytes: usize,
}

/// Sync `down` with `up` until neither has anything left to send.
fn sync(down: &Node, up: &Node) -> Tally {
    let signer = support::signer(&down.records);
    let mut ds = Downstream::new(&down.records, &signer);
    let mut tally = Tally::default();
    for _ in 0..1000 {
        let (request, pending) = ds.prepare().unwrap();
        let req_bytes = protocol::encode_request(&request).unwrap();
        let request = protocol::decode_request(&req_bytes, &Limits::default()).unwrap();
        let response = up
            .upstream
            .handle(&up.records, request, &support::peer(&down.records))
            .unwrap();
        let resp_bytes = protocol::encode_response(&response).unwrap();
        let response = protocol::decode_response(&resp_bytes, &Limits::default()).unwrap();
        tally.round_trips += 1;
        tally.bytes += req_bytes.len() + resp_bytes.len();
        if !ds.absorb(pending, response).unwrap().more {
            return tally;
        }
    }
    panic!("sync did not finish in 1000 round trips");
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn report(n: usize) -> Map<String, Value> {
    obj(json!({
        "boarding_time": "2026-11-20T14:05:00Z",
        "position": {"lat": 13.1, "lon": -59.6},
        "vessel_name": format!("Vessel {n}"),
        "persons_on_board": 3,
        "reason": "fisheries",
        "crew": [{"name": "A. Joseph"}],
        "contraband_found": false,
        "findings": "Catch inspected.",
        "outcome": "released"
    }))
}

fn create(n: &Node, i: usize) -> RecordId {
    n.records
        .create(Author::Instance, "boarding-report", &report(i))
        .unwrap()
        .id
}

fn patch(n: &Node, id: &RecordId, fields: Value) {
    n.records
        .patch(
            Author::Instance,
            id,
            &Patch {
                fields: Some(obj(fields)),
                status: None,
            },
        )
        .unwrap();
}

fn view(n: &Node, id: &RecordId) -> Value {
    serde_json::from_str(n.records.get(id).unwrap().get()).unwrap()
}

fn all_views(n: &Node) -> Vec<Value> {
    let page = n.records.list(&Default::default(), 10_000, 0).unwrap();
    page.records
        .iter()
        .map(|r| serde_json::from_str(r.get()).unwrap())
        .collect()
}

#[test]
fn records_travel_up_and_edits_come_back_down() {
    let boat = node("BB-01");
    let station = node("BB-01");
    let a = create(&boat, 1);
    let b = create(&boat, 2);
    sync(&boat, &station);
    assert_eq!(view(&station, &a)["fields"], view(&boat, &a)["fields"]);
    assert_eq!(view(&station, &b)["fields"]["vessel_name"], "Vessel 2");

    patch(&station, &a, json!({"vessel_registration": "BB-77"}));
    patch(&boat, &b, json!({"arrests": 1}));
    sync(&boat, &station);
    assert_eq!(all_views(&boat), all_views(&station));
    assert_eq!(view(&boat, &a)["fields"]["vessel_registration"], "BB-77");
    assert_eq!(view(&station, &b)["fields"]["arrests"], 1);
}

#[test]
fn the_same_field_edited_on_both_sides_is_one_conflict_everywhere() {
    let boat = node("BB-01");
    let hq = node("BB-01");
    let a = create(&boat, 1);
    sync(&boat, &hq);
    patch(&boat, &a, json!({"outcome": "warning_issued"}));
    patch(&hq, &a, json!({"outcome": "detained"}));
    sync(&boat, &hq);
    let (vb, vh) = (view(&boat, &a), view(&hq, &a));
    assert_eq!(vb, vh);
    let conflict = vb["conflicts"]["outcome"].as_array().unwrap();
    assert_eq!(conflict.len(), 2);

    hq.records
        .resolve(Author::Instance, &a, "outcome", &json!("detained"))
        .unwrap();
    sync(&boat, &hq);
    assert_eq!(view(&boat, &a)["conflicts"], json!({}));
    assert_eq!(view(&boat, &a)["fields"]["outcome"], "detained");
    assert_eq!(view(&boat, &a), view(&hq, &a));
}

#[test]
fn a_sync_with_nothing_new_is_one_small_round_trip() {
    let boat = node("BB-01");
    let station = node("BB-01");
    // 10,000 records on each side: the cost must not depend on how many exist.
    for i in 0..10_000 {
        create(&boat, i);
    }
    sync(&boat, &station);
    sync(&boat, &station);
    assert_eq!(station.store.count().unwrap(), 10_000);
    let loads = (
        boat.store.loads.load(Ordering::SeqCst),
        station.store.loads.load(Ordering::SeqCst),
    );
    let idle = sync(&boat, &station);
    assert_eq!(idle.round_trips, 1);
    assert!(idle.bytes <= 1024, "a no-op sync cost {} bytes", idle.bytes);
    assert_eq!(
        (
            boat.store.loads.load(Ordering::SeqCst),
            station.store.loads.load(Ordering::SeqCst)
        ),
        loads,
        "a no-op sync loads no documents"
    );
}

#[test]
fn records_a_peer_already_has_are_not_loaded_to_find_nothing_to_send() {
    let boat = node("BB-01");
    let station = node("BB-01");
    for i in 0..200 {
        create(&boat, i);
    }
    let loads = |n: &Node| n.store.loads.load(Ordering::SeqCst);
    let (boat_before, station_before) = (loads(&boat), loads(&station));
    sync(&boat, &station);
    // The station's feed now holds the 200 records it just received; its pull
    // page must recognise them as the boat's own without loading any. The boat
    // loads each record once, to send it.
    assert_eq!(loads(&station) - station_before, 0);
    assert!(loads(&boat) - boat_before <= 200);

    // Records pulled from the station enter the boat's feed; the boat's next
    // push must not load them either.
    let other = node("BB-01");
    for i in 0..50 {
        create(&other, i);
    }
    sync(&other, &station);
    sync(&boat, &station);
    let boat_before = loads(&boat);
    let t = sync(&boat, &station);
    assert_eq!(t.round_trips, 1);
    assert_eq!(loads(&boat), boat_before, "pulled records were reloaded");
    assert_eq!(boat.store.count().unwrap(), 250);
}

#[test]
fn a_sync_after_k_edits_touches_order_k_documents() {
    let boat = node("BB-01");
    let station = node("BB-01");
    let ids: Vec<RecordId> = (0..300).map(|i| create(&boat, i)).collect();
    sync(&boat, &station);
    sync(&boat, &station);
    let before =
        boat.store.loads.load(Ordering::SeqCst) + station.store.loads.load(Ordering::SeqCst);
    for id in &ids[..5] {
        patch(&boat, id, json!({"arrests": 2}));
    }
    let edits_loads =
        boat.store.loads.load(Ordering::SeqCst) + station.store.loads.load(Ordering::SeqCst);
    let t = sync(&boat, &station);
    let after =
        boat.store.loads.load(Ordering::SeqCst) + station.store.loads.load(Ordering::SeqCst);
    assert_eq!(t.round_trips, 1);
    assert!(edits_loads - before <= 5 * 2);
    let sync_loads = after - edits_loads;
    assert!(
        sync_loads <= 5 * 6,
        "5 changed records cost {sync_loads} document loads"
    );
}

#[test]
fn the_same_request_twice_changes_nothing_the_second_time() {
    let boat = node("BB-01");
    let station = node("BB-01");
    let a = create(&boat, 1);
    sync(&boat, &station);
    patch(&boat, &a, json!({"arrests": 3}));
    let signer = support::signer(&boat.records);
    let mut ds = Downstream::new(&boat.records, &signer);
    let (request, pending) = ds.prepare().unwrap();
    let first = station
        .upstream
        .handle(
            &station.records,
            request.clone(),
            &support::peer(&boat.records),
        )
        .unwrap();
    let seq = station.store.last_seq().unwrap();
    let views = all_views(&station);
    let second = station
        .upstream
        .handle(&station.records, request, &support::peer(&boat.records))
        .unwrap();
    assert_eq!(
        station.store.last_seq().unwrap(),
        seq,
        "a redelivered request writes nothing"
    );
    assert_eq!(all_views(&station), views);
    assert_eq!(first.rejected, second.rejected);
    ds.absorb(pending, second).unwrap();
    assert_eq!(all_views(&boat), all_views(&station));
}

#[test]
fn records_of_other_stations_are_neither_pulled_nor_accepted() {
    let hq = node("HQ");
    let boat = node("BB-01");
    let other = node("LC-01");
    let mine = create(&boat, 1);
    create(&other, 2);
    sync(&boat, &hq);
    sync(&other, &hq);
    sync(&boat, &hq);
    assert_eq!(
        boat.store.count().unwrap(),
        1,
        "the boat sees only its station's records"
    );
    assert_eq!(hq.store.count().unwrap(), 2);
    assert!(view(&boat, &mine)["fields"].is_object());
}

#[test]
fn each_side_commits_its_bookkeeping_once_per_exchange() {
    let boat = node("BB-01");
    let station = node("BB-01");
    let commits = |n: &Node| n.store.state_commits.load(Ordering::SeqCst);
    for round in 0..3 {
        // Both directions at once: the boat pushes two records and an edit,
        // the station has a record of its own to send down.
        let a = create(&boat, round * 10);
        create(&boat, round * 10 + 1);
        patch(&boat, &a, json!({"arrests": round + 1}));
        create(&station, round * 10 + 2);
        let before = (commits(&boat), commits(&station));
        let tally = sync(&boat, &station);
        assert_eq!(
            commits(&boat) - before.0,
            tally.round_trips,
            "round {round}"
        );
        assert_eq!(
            commits(&station) - before.1,
            tally.round_trips,
            "round {round}"
        );
    }
    assert_eq!(all_views(&boat), all_views(&station));
}

/// A node whose store is a copy of `n`'s as it is now: a backup.
fn backup_of(n: &Node) -> Counting {
    Counting {
        inner: n.store.inner.snapshot(),
        ..Default::default()
    }
}

fn restore(backup: Counting, station: &str) -> Node {
    let store = Arc::new(backup);
    Node {
        records: Records::open(store.clone(), FormRegistry::builtin(), station).unwrap(),
        store,
        upstream: Upstream::new(),
    }
}

#[test]
fn an_upstream_restored_from_an_older_backup_is_repaired() {
    let boat = node("BB-01");
    let other_boat = node("BB-01");
    let station = node("BB-01");
    let a = create(&boat, 1);
    sync(&boat, &station);
    let backup = backup_of(&station);

    // After the backup: a new record and an edit reach the station...
    let b = create(&boat, 2);
    patch(&boat, &a, json!({"arrests": 4}));
    sync(&boat, &station);

    // ...which is then lost and restored from the backup. Another boat syncs
    // first and pushes the restored store's seqs past the boat's checkpoint.
    let restored = restore(backup, "BB-01");
    for i in 0..20 {
        create(&other_boat, 100 + i);
    }
    sync(&other_boat, &restored);
    assert!(
        restored.store.last_seq().unwrap()
            > Downstream::checkpoint(&boat.records).unwrap().pull_seq
    );

    sync(&boat, &restored);
    sync(&other_boat, &restored);
    sync(&boat, &restored);
    assert_eq!(view(&restored, &a)["fields"]["arrests"], 4);
    assert_eq!(view(&restored, &b)["fields"]["vessel_name"], "Vessel 2");
    assert_eq!(all_views(&boat), all_views(&restored));
    assert_eq!(all_views(&other_boat), all_views(&restored));
}

#[test]
fn a_record_whose_heads_show_missing_dependencies_is_repaired_by_automerge_sync() {
    let boat = node("BB-01");
    let station = node("BB-01");
    let a = create(&boat, 1);
    sync(&boat, &station);
    let backup = backup_of(&station);
    patch(&boat, &a, json!({"arrests": 1}));
    sync(&boat, &station);

    // The station loses the record's last edit but keeps its sync bookkeeping,
    // so no checkpoint reveals the loss: only the record's heads do.
    let restored = restore(backup, "BB-01");
    let bookkeeping: Vec<StateWrite> = station
        .store
        .scan_state(b"us/")
        .unwrap()
        .into_iter()
        .map(|(key, value)| StateWrite {
            key,
            value: Some(value),
        })
        .collect();
    restored.store.put_state_lazy(bookkeeping).unwrap();

    patch(&boat, &a, json!({"arrests": 2, "master_name": "A. Joseph"}));
    let tally = sync(&boat, &restored);
    assert!(tally.round_trips > 1, "the repair takes extra round trips");
    assert_eq!(view(&restored, &a)["fields"]["arrests"], 2);
    assert_eq!(view(&restored, &a), view(&boat, &a));
    // And afterwards ordinary sync carries on.
    patch(&restored, &a, json!({"vessel_registration": "BB-9"}));
    sync(&boat, &restored);
    assert_eq!(view(&restored, &a), view(&boat, &a));
    assert_eq!(sync(&boat, &restored).round_trips, 1);
}

fn create_typical(n: &Node, i: usize) -> RecordId {
    n.records
        .create(
            Author::Instance,
            "boarding-report",
            &tideline_schemas::samples::varied_report(i),
        )
        .unwrap()
        .id
}

fn heads(n: &Node, id: &RecordId) -> Vec<automerge::ChangeHash> {
    automerge::AutoCommit::load(&n.records.automerge_bytes(id).unwrap())
        .unwrap()
        .get_heads()
}

#[test]
fn single_field_edits_cost_about_their_raw_change_bytes() {
    let boat = node("BB-01");
    let station = node("BB-01");
    let ids: Vec<RecordId> = (0..1000).map(|i| create(&boat, i)).collect();
    sync(&boat, &station);
    sync(&boat, &station);
    let before: Vec<_> = ids.iter().map(|id| heads(&boat, id)).collect();
    for (i, id) in ids.iter().enumerate() {
        patch(&boat, id, json!({"arrests": i % 7 + 1}));
    }
    let raw: usize = ids
        .iter()
        .zip(&before)
        .map(|(id, h)| {
            boat.records
                .changes_since(id, h)
                .unwrap()
                .unwrap()
                .iter()
                .map(|c| c.raw_bytes().len())
                .sum::<usize>()
        })
        .sum();
    let t = sync(&boat, &station);
    assert_eq!(t.round_trips, 1);
    assert!(
        t.bytes <= raw + 1024,
        "1,000 edits: {} bytes on the wire for {raw} raw change bytes",
        t.bytes
    );
    assert_eq!(all_views(&boat), all_views(&station));
}

#[test]
fn a_first_sync_costs_little_more_than_the_records_as_compressed_json() {
    let boat = node("BB-01");
    let station = node("BB-01");
    for i in 0..1000 {
        create_typical(&boat, i);
    }
    // The records as the reference workload holds them (docs/PERFORMANCE.md):
    // one `{"meta":{"id"},"form","fields"}` object a line.
    let jsonl: Vec<u8> = all_views(&boat)
        .iter()
        .flat_map(|v| {
            let line = json!({"meta": {"id": v["id"]}, "form": v["form"], "fields": v["fields"]});
            let mut bytes = serde_json::to_vec(&line).unwrap();
            bytes.push(b'\n');
            bytes
        })
        .collect();
    let baseline = zstd::bulk::compress(&jsonl, 3).unwrap().len();
    let t = sync(&boat, &station);
    let ratio = t.bytes as f64 / baseline as f64;
    eprintln!(
        "first sync of 1000 reports: {} bytes in {} round trips; zstd JSON lines {baseline} bytes; ratio {ratio:.2}",
        t.bytes, t.round_trips
    );
    assert!(
        ratio <= 1.5,
        "first sync costs {ratio:.2}x the compressed JSON lines"
    );
    assert_eq!(all_views(&boat), all_views(&station));
}

#[test]
fn the_first_sync_goes_in_pages_and_a_cut_resumes_at_the_next_page() {
    let boat = node("BB-01");
    let station = node("BB-01");
    for i in 0..120 {
        create(&boat, i);
    }
    let signer = support::signer(&boat.records);
    let exchange = |ds: &mut Downstream<'_, Arc<Counting>>, deliver: bool| {
        let (request, pending) = ds.prepare().unwrap();
        let pushed: Vec<String> = request.push.iter().map(|d| d.id.clone()).collect();
        let response = station
            .upstream
            .handle(&station.records, request, &support::peer(&boat.records))
            .unwrap();
        if deliver {
            assert!(ds.absorb(pending, response).unwrap().more);
        }
        pushed
    };
    let mut ds = Downstream::new(&boat.records, &signer).with_page_bytes(8 * 1024);
    let mut pages = Vec::new();
    for _ in 0..3 {
        pages.push(exchange(&mut ds, true));
    }
    // Page 4 reaches the station but its answer is lost: the link is cut.
    let lost = exchange(&mut ds, false);
    assert!(
        pages.iter().all(|p| !p.is_empty() && p.len() < 120),
        "several records per page, several pages"
    );

    // A new sync starts from page 4 again, not from the beginning.
    let mut ds = Downstream::new(&boat.records, &signer).with_page_bytes(8 * 1024);
    let resumed = exchange(&mut ds, true);
    assert_eq!(
        resumed, lost,
        "the first page after the cut is the one that was cut"
    );
    let sent_before: std::collections::HashSet<_> = pages.iter().flatten().collect();
    assert!(
        resumed.iter().all(|id| !sent_before.contains(id)),
        "committed pages are not resent"
    );

    sync(&boat, &station);
    assert_eq!(station.store.count().unwrap(), 120);
    assert_eq!(all_views(&boat), all_views(&station));
}
