//! Sync over a link that keeps dying mid-message. Every downstream→upstream
//! exchange crosses a [`FaultProxy`] that cuts a large share of connections at a
//! random byte of the request (the upstream never sees all of it) or of the
//! response (the upstream applied it, the downstream never hears so). Whatever
//! the cuts, once the link is clean again every instance must hold the same
//! records, none lost, none doubled, and no acknowledged edit may vanish.
//!
//! The workload and the proxy's cuts come from one seed, and the instances run
//! without background sync (the test settings turn it off), so every sync
//! crossing the proxy is one the test asked for.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use tideline_tests::proxy::{
    Direction, FaultPlan, FaultProxy, Link, ProxyConfig, ProxyStats, SplitMix64,
};
use tideline_tests::{report, Instance};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SEED: u64 = 0x71DE_11AE;
const SYNCS: usize = 200;
const INITIAL_RECORDS: usize = 50;
/// Scalar fields the workload edits (no long text: those merge character-wise,
/// so "the last value wins or conflicts" would not hold for them).
const FIELDS: [&str; 3] = ["master_name", "vessel_registration", "arrests"];
/// Cut offsets are drawn from `0..=OFFSET_MAX` bytes of the chosen direction.
/// HTTP headers take about 130 bytes each way and the smallest exchange is about
/// 180 bytes each way, so every planned cut happens and about a quarter of them
/// land in a body rather than in the headers.
const OFFSET_MAX: u64 = 170;
/// Cuts required in each direction during the faulty phase (about 60 expected).
const MIN_CUTS: u64 = 50;
const UP: usize = 0;
const NAMES: [&str; 3] = ["upstream", "downstream-a", "downstream-b"];

/// What the instances acknowledged, so the end state can be checked against it.
struct Ledger {
    rng: SplitMix64,
    /// Every record id a create answered 201 for, in creation order.
    created: Vec<String>,
    index: HashMap<String, usize>,
    /// Creation indices each instance is known to hold; ids only ever arrive.
    present: [Vec<usize>; 3],
    /// The last acknowledged value of each (record, field), across all instances.
    last: BTreeMap<(usize, &'static str), Value>,
    edits: u64,
}

impl Ledger {
    fn new(seed: u64) -> Self {
        Ledger {
            rng: SplitMix64::new(seed),
            created: Vec::new(),
            index: HashMap::new(),
            present: Default::default(),
            last: BTreeMap::new(),
            edits: 0,
        }
    }

    async fn create(&mut self, inst: &Instance, i: usize) {
        let n = self.created.len();
        let view = inst
            .create(
                "boarding-report",
                report(&format!("{} vessel {n}", inst.name)),
            )
            .await;
        let id = view["id"].as_str().expect("id").to_string();
        assert!(
            self.index.insert(id.clone(), n).is_none(),
            "{}: create returned an existing id {id}",
            inst.name
        );
        self.created.push(id);
        self.present[i].push(n);
    }

    async fn edit(&mut self, inst: &Instance, i: usize) {
        if self.present[i].is_empty() {
            return;
        }
        let n = self.present[i][self.rng.below(self.present[i].len())];
        let field = FIELDS[self.rng.below(FIELDS.len())];
        self.edits += 1;
        let value = if field == "arrests" {
            json!(self.edits)
        } else {
            json!(format!("{} edit {}", inst.name, self.edits))
        };
        let view = inst
            .patch(&self.created[n], json!({ field: value.clone() }))
            .await;
        assert_eq!(
            view["fields"][field], value,
            "{}: edit not applied",
            inst.name
        );
        self.last.insert((n, field), value);
    }

    /// Learn which records `inst` holds now (after a sync pulled some).
    async fn refresh(&mut self, inst: &Instance, i: usize) {
        let mut held: Vec<usize> = inst
            .all()
            .await
            .iter()
            .map(|v| {
                let id = v["id"].as_str().expect("id");
                *self
                    .index
                    .get(id)
                    .unwrap_or_else(|| panic!("{}: unknown record {id}", inst.name))
            })
            .collect();
        held.sort_unstable();
        self.present[i] = held;
    }
}

fn quiet(outcome: &Value) -> bool {
    outcome["pushed"] == 0 && outcome["pulled"] == 0 && outcome["rejected"] == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_links_lose_and_duplicate_nothing() {
    tokio::time::timeout(Duration::from_secs(110), cut_links_scenario())
        .await
        .expect("the cut-link scenario took too long");
}

async fn cut_links_scenario() {
    let started = Instant::now();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let up = Instance::start(NAMES[0], dirs[0].path(), "BB-01").await;
    let mut proxy = FaultProxy::start(
        up.settings.listen,
        ProxyConfig {
            seed: SEED,
            ..Default::default()
        },
    )
    .await
    .expect("proxy");
    let a = Instance::start_under(NAMES[1], dirs[1].path(), "BB-01", &up, &proxy.url()).await;
    let b = Instance::start_under(NAMES[2], dirs[2].path(), "BB-01", &up, &proxy.url()).await;
    let insts = [&up, &a, &b];
    let mut ledger = Ledger::new(SEED);

    for _ in 0..INITIAL_RECORDS {
        ledger.create(&a, 1).await;
        ledger.create(&b, 2).await;
    }
    for _ in 0..INITIAL_RECORDS / 5 {
        ledger.create(&up, UP).await;
    }

    // Cut 60% of connections, at any byte of the request or of the response.
    // Offsets stay below the smallest exchange, so a planned cut really happens.
    let clean = proxy.stats();
    proxy.set_faults(FaultPlan::cuts(0.6, 0..=OFFSET_MAX));
    let (mut ok, mut failed) = (0, 0);
    for round in 0..SYNCS {
        for _ in 0..1 + ledger.rng.below(3) {
            let i = ledger.rng.below(3);
            if ledger.rng.chance(0.3) {
                ledger.create(insts[i], i).await;
            } else {
                ledger.edit(insts[i], i).await;
            }
        }
        let d = 1 + round % 2;
        let (status, body) = insts[d].sync_now().await;
        match status {
            200 => ok += 1,
            502 => failed += 1,
            other => panic!("round {round}: {} sync answered {other}: {body}", NAMES[d]),
        }
        ledger.refresh(insts[d], d).await;
        ledger.refresh(&up, UP).await;
    }
    let faulty = proxy.stats();
    eprintln!(
        "{SYNCS} syncs under faults: {ok} ok, {failed} failed; {} connections before the \
         faults; {faulty:?}; {:.1}s",
        clean.connections,
        started.elapsed().as_secs_f64()
    );

    // A clean link: every downstream converges in a few syncs.
    proxy.set_faults(FaultPlan::none());
    for d in [1, 2, 1] {
        insts[d].sync_ok().await;
    }
    let mut rounds = 0;
    loop {
        let (qa, qb) = (a.sync_ok().await, b.sync_ok().await);
        if quiet(&qa) && quiet(&qb) {
            break;
        }
        rounds += 1;
        assert!(rounds < 5, "no quiescence after clean syncs: {qa} {qb}");
    }

    let views = up.all().await;
    for other in [&a, &b] {
        assert_eq!(
            other.all().await,
            views,
            "{} differs from upstream",
            other.name
        );
    }
    let mut seen = HashSet::new();
    for v in &views {
        let id = v["id"].as_str().unwrap();
        assert!(seen.insert(id), "record {id} listed twice");
    }
    let lost: Vec<&String> = ledger
        .created
        .iter()
        .filter(|id| !seen.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    assert_eq!(views.len(), ledger.created.len(), "records from nowhere");

    let by_id: HashMap<&str, &Value> = views
        .iter()
        .map(|v| (v["id"].as_str().unwrap(), v))
        .collect();
    for ((n, field), value) in &ledger.last {
        let view = by_id[ledger.created[*n].as_str()];
        let shown = &view["fields"][*field];
        let in_conflict = view["conflicts"][*field]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| &c["value"] == value));
        assert!(
            shown == value || in_conflict,
            "record {}: the last acknowledged {field} {value} is gone (shows {shown}, conflicts {})",
            ledger.created[*n],
            view["conflicts"]
        );
    }

    let stats = proxy.stats();
    eprintln!(
        "{} records, {} last edits checked, {failed} failed syncs; proxy {stats:?}; {:.1}s",
        views.len(),
        ledger.last.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        faulty.cuts_to_server >= MIN_CUTS && faulty.cuts_to_client >= MIN_CUTS,
        "the proxy did not cut enough: {faulty:?}"
    );
    assert!(
        failed >= SYNCS / 3 && ok >= SYNCS / 10,
        "{ok} ok, {failed} failed"
    );
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// The proxy itself.

/// A server that counts what it receives until the client goes away.
async fn sink() -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got).await;
        got
    });
    (addr, task)
}

/// A server that echoes everything back.
async fn echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

fn pattern(len: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(len as u64);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Read until EOF or a reset, returning what arrived.
async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_forwards_intact_without_faults() {
    let mut proxy = FaultProxy::start(echo().await, ProxyConfig::default())
        .await
        .unwrap();
    let data = pattern(1 << 20);
    let (mut r, mut w) = TcpStream::connect(proxy.addr()).await.unwrap().into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    assert!(
        back == data,
        "echo differs ({} of {} bytes)",
        back.len(),
        data.len()
    );
    proxy.shutdown().await;
    let stats = proxy.stats();
    assert_eq!(
        stats,
        ProxyStats {
            connections: 1,
            bytes_to_server: 1 << 20,
            bytes_to_client: 1 << 20,
            ..Default::default()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_on_the_way_to_the_server_delivers_exactly_n_bytes() {
    const N: u64 = 12_345;
    let (target, received) = sink().await;
    let proxy = FaultProxy::start(
        target,
        ProxyConfig {
            faults: FaultPlan::always(Direction::ToServer, N),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let data = pattern(200_000);
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    // The proxy resets us part-way: a write error is the expected outcome.
    let _ = s.write_all(&data).await;
    let got = received.await.unwrap();
    assert_eq!(got.len() as u64, N);
    assert!(got == data[..N as usize], "the first N bytes arrive intact");
    // The client's side is closed too.
    assert!(read_all(&mut s).await.is_empty());
    let stats = proxy.stats();
    assert_eq!((stats.cuts_to_server, stats.cuts_to_client), (1, 0));
    assert_eq!(stats.bytes_to_server, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_on_the_way_back_delivers_exactly_n_bytes() {
    const N: u64 = 777;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let data = pattern(100_000);
    let sent = data.clone();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = s.write_all(&sent).await;
        // Wait for the proxy to drop us.
        read_all(&mut s).await
    });
    let proxy = FaultProxy::start(
        target,
        ProxyConfig {
            faults: FaultPlan::always(Direction::ToClient, N),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let got = read_all(&mut s).await;
    assert_eq!(got.len() as u64, N);
    assert!(got == data[..N as usize]);
    server.await.unwrap();
    let stats = proxy.stats();
    assert_eq!((stats.cuts_to_server, stats.cuts_to_client), (0, 1));
    assert_eq!(stats.bytes_to_client, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_shorter_than_the_offset_is_not_cut() {
    let (target, received) = sink().await;
    let proxy = FaultProxy::start(
        target,
        ProxyConfig {
            faults: FaultPlan::always(Direction::ToServer, 100),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(&[7u8; 100]).await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(received.await.unwrap(), vec![7u8; 100]);
    assert_eq!(read_all(&mut s).await, Vec::<u8>::new());
    assert_eq!(proxy.stats().cuts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_throttle_slow_the_link_without_losing_bytes() {
    let link = Link::CLEAN
        .with_latency(Duration::from_millis(50))
        .with_throttle(100_000);
    let mut proxy = FaultProxy::start(
        echo().await,
        ProxyConfig {
            to_server: link,
            to_client: link,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    // A small ping pays the latency both ways.
    let t = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    s.read_exact(&mut pong).await.unwrap();
    let rtt = t.elapsed();
    assert_eq!(&pong, b"ping");
    assert!(rtt >= Duration::from_millis(100), "rtt {rtt:?}");
    // 50 kB at 100 kB/s takes about half a second each way (pipelined).
    let data = pattern(50_000);
    let t = Instant::now();
    let (mut r, mut w) = s.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move { w.write_all(&sent).await.unwrap() });
    let mut back = vec![0u8; data.len()];
    r.read_exact(&mut back).await.unwrap();
    writer.await.unwrap();
    let took = t.elapsed();
    assert!(back == data);
    assert!(took >= Duration::from_millis(450), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_listener_and_open_connections() {
    let mut proxy = FaultProxy::start(echo().await, ProxyConfig::default())
        .await
        .unwrap();
    let addr = proxy.addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    open.write_all(b"hello").await.unwrap();
    let mut hello = [0u8; 5];
    open.read_exact(&mut hello).await.unwrap();
    proxy.shutdown().await;
    assert!(
        read_all(&mut open).await.is_empty(),
        "relayed connection closed"
    );
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");

    // Dropping does the same, without an await.
    let proxy = FaultProxy::start(echo().await, ProxyConfig::default())
        .await
        .unwrap();
    let addr = proxy.addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    open.write_all(b"hello").await.unwrap();
    open.read_exact(&mut hello).await.unwrap();
    drop(proxy);
    assert!(
        read_all(&mut open).await.is_empty(),
        "relayed connection closed"
    );
    // The accept task is aborted asynchronously: poll with a deadline.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "listener still open after drop");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_drop_closes_live_connections_and_the_next_ones_get_through() {
    let proxy = FaultProxy::start(echo().await, ProxyConfig::default())
        .await
        .unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    open.write_all(b"hello").await.unwrap();
    let mut hello = [0u8; 5];
    open.read_exact(&mut hello).await.unwrap();
    proxy.drop_connections();
    assert!(
        read_all(&mut open).await.is_empty(),
        "the live connection was closed"
    );
    assert_eq!(proxy.stats().drops, 1);

    let mut next = TcpStream::connect(proxy.addr()).await.unwrap();
    next.write_all(b"again").await.unwrap();
    let mut again = [0u8; 5];
    next.read_exact(&mut again).await.unwrap();
    assert_eq!(&again, b"again");
    assert_eq!(proxy.stats().drops, 1, "a drop is not sticky");
}
