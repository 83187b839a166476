//! A fault-injecting TCP proxy for sync tests and the bench harness.
//!
//! Sync must survive links that fail half-way: a boat's request can die before
//! the upstream has read all of it (nothing applied), or the upstream's answer
//! can die after it has applied everything (applied, but never acknowledged).
//! Stopping a server cannot produce the second case, and killing connections
//! "somewhere" cannot say which case a test exercised. [`FaultProxy`] sits
//! between a downstream and its upstream on loopback and cuts chosen
//! connections after an exact number of bytes in a chosen direction, so both
//! cases happen, at every kind of offset, reproducibly from a seed.
//!
//! It can also delay and throttle each direction ([`Link`]), so the bench
//! harness can run the same code over a satellite-like link without real radios.
//!
//! Decisions are drawn per accepted connection, in accept order, from a seeded
//! [`SplitMix64`]; a test that makes its connections one after another therefore
//! sees the same cuts on every run. Every connection draws the same number of
//! values whatever the plan says, so changing the plan mid-test does not shift
//! the sequence for later connections.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// A tiny deterministic generator (SplitMix64). Not for anything secret: it
/// exists so a failing run can be replayed from its seed without pulling in a
/// crate, and tests can share it for their own seeded choices.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), with the 53 bits an `f64` can hold.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (clamped to [0, 1]).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `range` (the modulo bias is irrelevant at test sizes).
    pub fn in_range(&mut self, range: RangeInclusive<u64>) -> u64 {
        scale(self.next_u64(), &range)
    }

    /// Uniform in `0..n`; `n` must not be zero.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        (self.next_u64() % n as u64) as usize
    }
}

/// Map a uniform `raw` into `range` (an empty or reversed range gives its start).
fn scale(raw: u64, range: &RangeInclusive<u64>) -> u64 {
    let (lo, hi) = (*range.start(), *range.end());
    if hi <= lo {
        return lo;
    }
    match (hi - lo).checked_add(1) {
        Some(span) => lo + raw % span,
        None => raw,
    }
}

/// Which way bytes travel through the proxy. The client is the side that
/// connected to the proxy (a downstream), the server is the target (its upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server: requests. A cut here means the server never saw all of it.
    ToServer,
    /// Server to client: responses. A cut here means the server did the work
    /// but the client never learns so.
    ToClient,
}

/// Which connections to cut, and where. Consulted once per connection, when it
/// is accepted; changing it affects only later connections.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Probability that a connection is cut at all.
    pub cut_probability: f64,
    /// Of the cut connections, the fraction cut in the [`Direction::ToServer`]
    /// direction; the rest are cut on the way back.
    pub to_server_share: f64,
    /// The cut offset, in bytes of the chosen direction: exactly that many
    /// bytes are delivered, and the connection dies when the next one arrives.
    /// A connection whose direction carries no more than the offset is not cut
    /// (and not counted as cut), so choose offsets below the traffic you expect.
    pub offsets: RangeInclusive<u64>,
}

impl FaultPlan {
    /// Forward everything.
    pub fn none() -> Self {
        FaultPlan {
            cut_probability: 0.0,
            to_server_share: 0.5,
            offsets: 0..=0,
        }
    }

    /// Cut a fraction `probability` of connections, half of them on the way
    /// to the server and half on the way back, at an offset in `offsets`.
    pub fn cuts(probability: f64, offsets: RangeInclusive<u64>) -> Self {
        FaultPlan {
            cut_probability: probability,
            to_server_share: 0.5,
            offsets,
        }
    }

    /// Cut every connection after exactly `after` bytes in `direction`.
    pub fn always(direction: Direction, after: u64) -> Self {
        FaultPlan {
            cut_probability: 1.0,
            to_server_share: if direction == Direction::ToServer {
                1.0
            } else {
                0.0
            },
            offsets: after..=after,
        }
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan::none()
    }
}

/// How one direction of the link behaves when nothing is cut. Latency is added
/// to every chunk independently (pipelined, as on a real long link, not
/// cumulative per chunk); the throttle spreads writes so the direction never
/// carries more than `bytes_per_sec` on average. Nothing is ever dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    pub latency: Duration,
    pub bytes_per_sec: Option<u64>,
}

impl Link {
    /// No delay, no throttle.
    pub const CLEAN: Link = Link {
        latency: Duration::ZERO,
        bytes_per_sec: None,
    };

    /// One direction of a geostationary satellite link as the fleet sees it:
    /// 600 ms round trip (300 ms each way) at 256 kbit/s.
    pub fn satellite() -> Link {
        Link {
            latency: Duration::from_millis(300),
            bytes_per_sec: Some(256_000 / 8),
        }
    }

    pub fn with_latency(mut self, latency: Duration) -> Link {
        self.latency = latency;
        self
    }

    /// A zero rate is treated as one byte per second rather than a stall, so
    /// a misconfigured bench is slow instead of hung.
    pub fn with_throttle(mut self, bytes_per_sec: u64) -> Link {
        self.bytes_per_sec = Some(bytes_per_sec.max(1));
        self
    }
}

/// Everything a proxy starts with. `Default` is a clean, fault-free link.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// Seed of the per-connection decisions.
    pub seed: u64,
    pub faults: FaultPlan,
    pub to_server: Link,
    pub to_client: Link,
}

/// What the proxy has done so far. Tests assert on it so that a proxy that
/// silently forwards everything cannot make a fault test pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted from clients.
    pub connections: u64,
    /// Connections whose target could not be reached (closed at once).
    pub failed_connects: u64,
    /// Bytes delivered to the server / to the client.
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    /// Connections cut in each direction (at least one byte withheld).
    pub cuts_to_server: u64,
    pub cuts_to_client: u64,
    /// Connections closed by [`FaultProxy::drop_connections`].
    pub drops: u64,
}

impl ProxyStats {
    pub fn cuts(&self) -> u64 {
        self.cuts_to_server + self.cuts_to_client
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    failed_connects: AtomicU64,
    bytes_to_server: AtomicU64,
    bytes_to_client: AtomicU64,
    cuts_to_server: AtomicU64,
    cuts_to_client: AtomicU64,
    drops: AtomicU64,
}

struct Settings {
    rng: SplitMix64,
    faults: FaultPlan,
    to_server: Link,
    to_client: Link,
}

struct Shared {
    target: SocketAddr,
    settings: Mutex<Settings>,
    counters: Counters,
    /// Bumped to close every live connection at once (the link going down).
    link_drops: watch::Sender<u64>,
}

/// What was decided for one connection.
#[derive(Debug, Clone, Copy)]
struct Fate {
    cut: Option<(Direction, u64)>,
    to_server: Link,
    to_client: Link,
}

impl Fate {
    fn cut_after(&self, direction: Direction) -> Option<u64> {
        self.cut
            .and_then(|(d, after)| (d == direction).then_some(after))
    }
}

impl Shared {
    fn decide(&self) -> Fate {
        let mut s = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        // Always three draws, so the plan does not shift later connections' fates.
        let roll = s.rng.unit();
        let side = s.rng.unit();
        let raw = s.rng.next_u64();
        let plan = &s.faults;
        let cut = (roll < plan.cut_probability).then(|| {
            let direction = if side < plan.to_server_share {
                Direction::ToServer
            } else {
                Direction::ToClient
            };
            (direction, scale(raw, &plan.offsets))
        });
        Fate {
            cut,
            to_server: s.to_server,
            to_client: s.to_client,
        }
    }
}

/// A running proxy on `127.0.0.1:<ephemeral>`. It stops (listener closed, every
/// relayed connection closed, no task left behind) on [`FaultProxy::shutdown`]
/// or when dropped, so a failing test cannot leave it looping.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on loopback and relay every connection to `target`. Must be
    /// called inside a tokio runtime, which runs the proxy's tasks.
    pub async fn start(target: SocketAddr, config: ProxyConfig) -> io::Result<FaultProxy> {
        // Loopback only: this is a test tool and must never be reachable from outside.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            settings: Mutex::new(Settings {
                rng: SplitMix64::new(config.seed),
                faults: config.faults,
                to_server: config.to_server,
                to_client: config.to_client,
            }),
            counters: Counters::default(),
            link_drops: watch::channel(0).0,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(FaultProxy {
            addr,
            shared,
            stop,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy as an HTTP base URL, for an instance's `upstream` setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replace the fault plan for connections accepted from now on.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.settings().faults = plan;
    }

    /// Replace link shaping for connections accepted from now on.
    pub fn set_links(&self, to_server: Link, to_client: Link) {
        let mut s = self.settings();
        s.to_server = to_server;
        s.to_client = to_client;
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.shared
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The link goes down for a moment: every connection relayed now is
    /// closed at once, mid-message in either direction, as when a satellite
    /// window closes. New connections are relayed as before.
    pub fn drop_connections(&self) {
        self.shared.link_drops.send_modify(|n| *n += 1);
    }

    /// A snapshot of the counters (each read atomically; the set is not one
    /// instant if connections are still running).
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::Relaxed),
            failed_connects: c.failed_connects.load(Ordering::Relaxed),
            bytes_to_server: c.bytes_to_server.load(Ordering::Relaxed),
            bytes_to_client: c.bytes_to_client.load(Ordering::Relaxed),
            cuts_to_server: c.cuts_to_server.load(Ordering::Relaxed),
            cuts_to_client: c.cuts_to_client.load(Ordering::Relaxed),
            drops: c.drops.load(Ordering::Relaxed),
        }
    }

    /// Stop accepting, close every relayed connection and wait until all of the
    /// proxy's tasks have ended. The counters stay readable. Idempotent.
    pub async fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Cannot wait here; aborting the accept task drops its JoinSet, which
        // aborts every connection task with it.
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Err: the proxy was dropped without a signal; stop all the same.
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let fate = shared.decide();
                    connections.spawn(relay(client, shared.clone(), fate));
                }
                // Out of descriptors and the like: transient, and never a reason
                // to spin; back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// How one direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The source closed and everything was delivered.
    Eof,
    /// The planned cut happened.
    Cut,
    /// An I/O error on either socket (a reset is normal): tear the connection down.
    Failed,
}

async fn relay(client: TcpStream, shared: Arc<Shared>, fate: Fate) {
    let mut link_drops = shared.link_drops.subscribe();
    let server = match TcpStream::connect(shared.target).await {
        Ok(s) => s,
        Err(_) => {
            shared
                .counters
                .failed_connects
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    // The proxy must not add Nagle/delayed-ACK stalls of its own to small messages.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let c = &shared.counters;
    let up = pump(
        client_read,
        server_write,
        fate.cut_after(Direction::ToServer),
        fate.to_server,
        &c.bytes_to_server,
    );
    let down = pump(
        server_read,
        client_write,
        fate.cut_after(Direction::ToClient),
        fate.to_client,
        &c.bytes_to_client,
    );
    tokio::pin!(up, down);
    let (first_direction, first) = tokio::select! {
        ended = &mut up => (Direction::ToServer, ended),
        ended = &mut down => (Direction::ToClient, ended),
        _ = link_drops.changed() => {
            c.drops.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let count = |direction, ended: Ended| {
        if ended == Ended::Cut {
            match direction {
                Direction::ToServer => &c.cuts_to_server,
                Direction::ToClient => &c.cuts_to_client,
            }
            .fetch_add(1, Ordering::Relaxed);
        }
    };
    count(first_direction, first);
    // A cut or an error kills the whole connection: returning drops both
    // sockets. A clean end of one direction is a half-close; let the other finish.
    if first == Ended::Eof {
        let rest = async {
            match first_direction {
                Direction::ToServer => down.await,
                Direction::ToClient => up.await,
            }
        };
        tokio::select! {
            second = rest => count(first_direction.other(), second),
            _ = link_drops.changed() => {
                c.drops.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Direction {
    fn other(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

/// Bytes read but not yet delivered, per direction, before reading pauses. Bounds
/// memory on a slow link; it is far above a 600 ms × 256 kbit/s pipe.
const MAX_QUEUED: usize = 4 * 1024 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// Copy one direction, counting delivered bytes, delaying each chunk by the
/// link's latency and pacing writes to its rate. With a cut planned after
/// `cut_after` bytes, delivers exactly that many, closes the destination's
/// write side and reports [`Ended::Cut`] when the next byte shows up.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    cut_after: Option<u64>,
    link: Link,
    delivered: &AtomicU64,
) -> Ended {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut queued = 0usize;
    let mut accepted = 0u64;
    let mut reading = true;
    let mut cut = false;
    // When the throttled link is free to carry the next byte.
    let mut free_at = Instant::now();
    // A zero rate would divide by zero below; treat it as the slowest link.
    let rate = link.bytes_per_sec.map(|r| r.max(1));
    // Write at most 50 ms worth at a time, so throttled traffic trickles
    // rather than arriving in bursts.
    let quantum = rate.map_or(usize::MAX, |rate| {
        (rate / 20).clamp(1, READ_CHUNK as u64) as usize
    });
    loop {
        if !reading && queue.is_empty() {
            // Everything allowed through has been delivered: pass on the
            // close (graceful, so the peer gets exactly those bytes).
            let _ = to.shutdown().await;
            return if cut { Ended::Cut } else { Ended::Eof };
        }
        let due = queue.front().map(|(at, _)| (*at).max(free_at));
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(due.unwrap_or(free_at)), if due.is_some() => {
                let Some((_, chunk)) = queue.front_mut() else { continue };
                let n = chunk.len().min(quantum);
                if to.write_all(&chunk[..n]).await.is_err() {
                    return Ended::Failed;
                }
                delivered.fetch_add(n as u64, Ordering::Relaxed);
                queued -= n;
                if n == chunk.len() {
                    queue.pop_front();
                } else {
                    chunk.drain(..n);
                }
                if let Some(rate) = rate {
                    free_at = free_at.max(Instant::now())
                        + Duration::from_secs_f64(n as f64 / rate as f64);
                }
            }
            read = from.read(&mut buf), if reading && queued < MAX_QUEUED => match read {
                Ok(0) => reading = false,
                Ok(n) => {
                    let mut take = n;
                    if let Some(limit) = cut_after {
                        let room = limit.saturating_sub(accepted);
                        if n as u64 > room {
                            take = room as usize;
                            reading = false;
                            cut = true;
                        }
                    }
                    accepted += take as u64;
                    if take > 0 {
                        let now = Instant::now();
                        // An absurd latency must not panic the proxy; it just is not applied.
                        let due = now.checked_add(link.latency).unwrap_or(now);
                        queue.push_back((due, buf[..take].to_vec()));
                        queued += take;
                    }
                }
                Err(_) => return Ended::Failed,
            },
        }
    }
}
