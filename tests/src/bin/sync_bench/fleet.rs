//! The running servers: one `tideline serve` process per node of the run's
//! [`Topology`], each on its own temporary data directory, every downstream
//! reaching its upstream through a [`FaultProxy`]; and the harness's HTTP
//! calls to its servers.

use crate::options::Options;
use crate::progress::progress;
use crate::report::LinkStats;
use crate::resources::{Meter, Peaks};
use crate::sync_call::{sync_until_ok, SyncCall, SyncDone};
use crate::topology::{Node, Topology};
use anyhow::{ensure, Context};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tideline_tests::process::ServerProcess;
use tideline_tests::proxy::{FaultPlan, FaultProxy, Link, ProxyConfig};
use tokio::task::JoinSet;

/// Ordinary API calls on loopback.
const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Start one node; a downstream is first enrolled with `upstream` (the
/// running server and the proxy address it is reached at) as the kind of
/// device the node is. Syncs happen only when the harness asks, since a
/// background loop would race the measured schedule.
fn start_server(
    opts: &Options,
    node: &Node,
    upstream: Option<(&ServerProcess, &str)>,
    data: &Path,
    log: PathBuf,
) -> anyhow::Result<ServerProcess> {
    let mut args = vec![
        "--station".to_string(),
        node.station.to_string(),
        "--no-auto-sync".to_string(),
    ];
    if let Some((up, url)) = upstream {
        args.extend(["--upstream".to_string(), url.to_string()]);
        let code = up.enroll_code(node.station, node.kind)?;
        tideline_tests::process::enroll(&opts.tideline.path, data, &args, url, &code)?;
    }
    if let Some(mb) = opts.cache_mb {
        args.extend(["--cache-mb".to_string(), mb.to_string()]);
    }
    if let Some(kib) = opts.page_kib {
        args.extend(["--sync-page-kib".to_string(), kib.to_string()]);
    }
    ServerProcess::start(&opts.tideline.path, node.name, data, &args, log)
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // no_proxy: a proxy from the environment must never carry loopback traffic.
    reqwest::Client::builder()
        .no_proxy()
        .timeout(API_TIMEOUT)
        .build()
        .context("build the HTTP client")
}

pub struct Fleet {
    pub topo: &'static Topology,
    // Field order is drop order: servers are killed before their proxies stop
    // and before their data directories are deleted.
    pub servers: Vec<ServerProcess>,
    /// `proxies[i]`: the link from node i to its upstream.
    proxies: Vec<Option<FaultProxy>>,
    pub api: reqwest::Client,
    sync_http: reqwest::Client,
    _dirs: Vec<tempfile::TempDir>,
    logs: tempfile::TempDir,
    pub peaks: Peaks,
}

impl Fleet {
    /// Every node in topology order: HQ → its proxies → stations → their
    /// proxies → boats.
    pub async fn start(opts: &Options, t0: Instant) -> anyhow::Result<Fleet> {
        let topo = opts.topology();
        let link = if opts.satellite {
            Link::satellite()
        } else {
            Link::CLEAN
        };
        let mut fleet = Fleet {
            topo,
            servers: Vec::new(),
            proxies: Vec::new(),
            api: http_client()?,
            // Separate client: no overall timeout, each sync/now sets its own.
            sync_http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("build the HTTP client")?,
            _dirs: Vec::new(),
            logs: tempfile::tempdir().context("create the log directory")?,
            peaks: Peaks::new(topo.nodes.len()),
        };
        for node in 0..topo.nodes.len() {
            fleet.start_node(opts, node, link, t0).await?;
        }
        fleet.check_health().await?;
        Ok(fleet)
    }

    /// The proxy in front of `node`'s upstream, if it has one.
    async fn start_proxy(
        &self,
        opts: &Options,
        node: usize,
        link: Link,
    ) -> anyhow::Result<Option<FaultProxy>> {
        let Node { name, upstream, .. } = self.topo.nodes[node];
        let Some(up) = upstream else {
            return Ok(None);
        };
        let config = ProxyConfig {
            seed: opts.seed.wrapping_mul(1000).wrapping_add(node as u64),
            faults: FaultPlan::none(),
            to_server: link,
            to_client: link,
        };
        let proxy = FaultProxy::start(self.servers[up].addr, config)
            .await
            .with_context(|| format!("start the proxy in front of {name}'s upstream"))?;
        Ok(Some(proxy))
    }

    /// Start `node` (and the proxy to its upstream, which must be running).
    async fn start_node(
        &mut self,
        opts: &Options,
        node: usize,
        link: Link,
        t0: Instant,
    ) -> anyhow::Result<()> {
        let topo = self.topo;
        let Node {
            name,
            station,
            upstream,
            ..
        } = topo.nodes[node];
        let proxy = self.start_proxy(opts, node, link).await?;
        let dir = tempfile::tempdir().context("create a data directory")?;
        let log = self.logs.path().join(format!("{name}.log"));
        let upstream_url = proxy.as_ref().map(FaultProxy::url);
        let up = upstream.map(|u| &self.servers[u]);
        // Enrolling and starting wait on child processes: keep the proxies,
        // which run on this runtime, serving meanwhile.
        let server = tokio::task::block_in_place(|| {
            start_server(
                opts,
                &topo.nodes[node],
                up.zip(upstream_url.as_deref()),
                dir.path(),
                log,
            )
        })?;
        progress!(
            t0,
            "{name} [{station}] pid {} on {}{}",
            server.pid(),
            server.addr,
            upstream_url
                .map(|u| format!(", upstream via proxy {u}"))
                .unwrap_or_default()
        );
        self.servers.push(server);
        self.proxies.push(proxy);
        self._dirs.push(dir);
        Ok(())
    }

    async fn check_health(&self) -> anyhow::Result<()> {
        for s in &self.servers {
            let r = self
                .api
                .get(s.url("/healthz"))
                .send()
                .await
                .with_context(|| format!("{}: GET /healthz", s.name))?;
            ensure!(
                r.status().is_success(),
                "{}: /healthz {}",
                s.name,
                r.status()
            );
        }
        Ok(())
    }

    pub fn set_faults(&self, plan: &FaultPlan) {
        for p in self.proxies.iter().flatten() {
            p.set_faults(plan.clone());
        }
    }

    pub fn link_stats(&self) -> LinkStats {
        self.proxies
            .iter()
            .map(|p| p.as_ref().map(FaultProxy::stats))
            .collect()
    }

    fn call(&self, node: usize, deadline: Instant) -> SyncCall {
        SyncCall {
            node,
            name: self.topo.name_of(node),
            url: self.servers[node].url("/api/v1/sync/now"),
            token: self.servers[node].token.clone(),
            http: self.sync_http.clone(),
            deadline,
        }
    }

    /// Sync `nodes` in parallel; results in the order given.
    pub async fn sync_group(
        &self,
        nodes: &[usize],
        deadline: Instant,
    ) -> anyhow::Result<Vec<SyncDone>> {
        let mut set = JoinSet::new();
        for &n in nodes {
            set.spawn(sync_until_ok(self.call(n, deadline)));
        }
        let mut done = Vec::new();
        while let Some(joined) = set.join_next().await {
            done.push(joined.context("a sync task panicked")??);
        }
        done.sort_by_key(|d| nodes.iter().position(|&n| n == d.node));
        Ok(done)
    }

    async fn total(&self, node: usize) -> anyhow::Result<u64> {
        let s = &self.servers[node];
        let page: Json = self
            .api
            .get(s.url("/api/v1/records?limit=1"))
            .bearer_auth(&s.token)
            .send()
            .await
            .with_context(|| format!("{}: list", s.name))?
            .error_for_status()?
            .json()
            .await?;
        page["total"]
            .as_u64()
            .with_context(|| format!("{}: list without total: {page}", s.name))
    }

    /// Records each node holds, in node order.
    pub async fn totals(&self) -> anyhow::Result<Vec<u64>> {
        let mut out = Vec::new();
        for n in 0..self.topo.nodes.len() {
            out.push(self.total(n).await?);
        }
        Ok(out)
    }

    /// Start measuring a phase (see [`Peaks::begin`]).
    pub fn begin(&mut self) -> anyhow::Result<Meter> {
        self.peaks.begin(&self.servers)
    }

    /// The phase's resources since `m` (see [`Peaks::end`]).
    pub fn end(&mut self, m: &Meter, sync: bool) -> anyhow::Result<Json> {
        self.peaks.end(&self.servers, m, sync)
    }

    /// Fold the servers' current VmHWM into the overall peaks.
    pub fn observe_rss(&mut self) -> anyhow::Result<()> {
        self.peaks.observe(&self.servers).map(drop)
    }

    pub async fn get_bytes(&self, node: usize, path: &str) -> anyhow::Result<Vec<u8>> {
        let s = &self.servers[node];
        let r = self
            .api
            .get(s.url(path))
            .bearer_auth(&s.token)
            .send()
            .await
            .with_context(|| format!("{}: GET {path}", s.name))?;
        ensure!(
            r.status().is_success(),
            "{}: GET {path}: {}",
            s.name,
            r.status()
        );
        Ok(r.bytes().await?.to_vec())
    }

    /// The last lines of every server's log, for a run that failed.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            let text = std::fs::read_to_string(&s.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(15);
            out.push_str(&format!("--- {} ({}):\n", s.name, s.log.display()));
            for l in &lines[from..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}
