//! Memory and list-latency benchmark of the real `tideline serve` process
//! (docs/PERFORMANCE.md): start the release binary on an empty data directory,
//! POST N typical boarding reports over loopback, then read the server's RSS
//! from /proc and time the list endpoint. Prints one JSON object on stdout;
//! progress goes to stderr.
//!
//! ```text
//! cargo build --release -p tideline-server
//! cargo run --release -p tideline-tests --bin rss_bench -- [--tideline PATH] [--records N] [--threads T]
//! ```
//!
//! The binary defaults to `$TIDELINE_BIN`, then `<workspace>/target/release/tideline`.
//! Linux only (it reads /proc/<pid>/status).

#![forbid(unsafe_code)]

use anyhow::{bail, ensure, Context};
use serde_json::{json, Map, Value as Json};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Options {
    tideline: PathBuf,
    records: usize,
    threads: usize,
}

fn usage() -> &'static str {
    "usage: rss_bench [--tideline PATH] [--records N] [--threads T]"
}

fn parse_args() -> anyhow::Result<Options> {
    let mut tideline = std::env::var_os("TIDELINE_BIN").map(PathBuf::from);
    let mut records = 10_000usize;
    let mut threads = 4usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--tideline" => tideline = Some(PathBuf::from(value("--tideline")?)),
            "--records" => records = value("--records")?.parse().context("--records")?,
            "--threads" => threads = value("--threads")?.parse().context("--threads")?,
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; {}", usage()),
        }
    }
    ensure!(records > 0, "--records must be at least 1");
    ensure!(threads > 0, "--threads must be at least 1");
    let tideline = tideline.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target/release/tideline")
    });
    ensure!(
        tideline.is_file(),
        "{} does not exist; build it with `cargo build --release -p tideline-server` \
         or pass --tideline PATH",
        tideline.display()
    );
    Ok(Options {
        tideline,
        records,
        threads,
    })
}

/// The server child; killed when dropped so that an error anywhere in the
/// harness never leaves a server running.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(bin: &Path, data: &Path, log: &Path) -> anyhow::Result<Server> {
        let log_file = std::fs::File::create(log).context("create the server log")?;
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--station",
                "BB-01",
                "--data",
            ])
            .arg(data)
            // Settings from the caller's environment would change what is measured
            // (an upstream sync loop, another cache size, chattier logs).
            .env_remove("TIDELINE_CONFIG")
            .env_remove("TIDELINE_UPSTREAM")
            .env_remove("TIDELINE_CACHE_MB")
            .env_remove("TIDELINE_MAX_BODY_BYTES")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        // Wrap the child at once so that it is killed on every early return.
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                        let _ = tx.send(addr.to_string());
                        sent = true;
                    }
                }
                // Keep draining so the server never blocks on a full pipe.
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => bail!(
                "the server did not print its address within 30 s; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("the server printed an odd address {addr:?}"))?;
        ensure!(
            addr.ip().is_loopback(),
            "refusing a non-loopback address {addr}"
        );
        server.addr = addr;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// VmRSS and VmHWM of a process, in MiB.
fn memory_mb(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing from /proc/{pid}/status"))?;
        let kb: f64 = line
            .split_whitespace()
            .nth(1)
            .with_context(|| format!("odd line {line:?}"))?
            .parse()
            .with_context(|| format!("odd line {line:?}"))?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Apparent and allocated size of everything under `dir`.
fn dir_bytes(dir: &Path) -> anyhow::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut len = 0;
    let mut allocated = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (l, a) = dir_bytes(&entry.path())?;
            len += l;
            allocated += a;
        } else {
            len += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((len, allocated))
}

/// The findings narrative, exactly 600 characters (as in sync/benches/records.rs).
fn findings(n: usize) -> String {
    let base = format!(
        "Boarding {n}: vessel hailed on channel 16 and stopped without resistance. \
         Master produced registration papers and crew list; six persons identified. \
         Search of the forward hold found two concealed compartments behind the fuel \
         tanks, both opened in the presence of the master. Compartment one held \
         packages wrapped in black plastic, field test positive for cocaine. \
         Compartment two held a pistol and loose ammunition. Items photographed in \
         place, bagged and tagged. Crew cooperative throughout; master detained and \
         vessel escorted to port for a full search by customs. "
    );
    base.chars().cycle().take(600).collect()
}

/// A typical boarding report, the same shape as the one in
/// sync/benches/records.rs: 6 crew, 2 seizures, contraband found, 600-character findings.
fn typical_report(n: usize) -> Map<String, Json> {
    let roles = ["master", "crew", "crew", "crew", "crew", "passenger"];
    let crew: Vec<Json> = roles
        .iter()
        .enumerate()
        .map(|(i, role)| {
            json!({
                "name": format!("Crew Member {n}-{i}"),
                "nationality": "Trinidad and Tobago",
                "id_document": format!("passport TT{:07}", n * 10 + i),
                "role": role,
            })
        })
        .collect();
    let report = json!({
        "boarding_time": "2025-03-14T09:42:00-04:00",
        "position": {"lat": 12.9843, "lon": -61.2872},
        "vessel_name": format!("Sea Breeze {n}"),
        "vessel_registration": format!("TT-FV-{n:05}"),
        "flag_state": "TT",
        "vessel_type": "go_fast",
        "persons_on_board": 6,
        "master_name": format!("Crew Member {n}-0"),
        "reason": "suspected_trafficking",
        "crew": crew,
        "contraband_found": true,
        "seizures": [
            {
                "item_type": "narcotics",
                "description": "Packages in black plastic, forward hold compartment one",
                "quantity": 24.5,
                "unit": "kg",
                "evidence_tag": format!("EV-{n:06}-1"),
            },
            {
                "item_type": "firearms",
                "description": "Pistol with loose ammunition, compartment two",
                "quantity": 1,
                "unit": "pcs",
                "evidence_tag": format!("EV-{n:06}-2"),
            }
        ],
        "arrests": 1,
        "findings": findings(n),
        "outcome": "escorted_to_port",
        "officers": ["Sgt. A. Baptiste 4411", "PC R. Charles 5120"],
    });
    match report {
        Json::Object(map) => map,
        _ => unreachable!("the report literal is an object"),
    }
}

fn client() -> anyhow::Result<reqwest::blocking::Client> {
    // no_proxy: a proxy from the environment must not carry loopback traffic.
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .context("build the HTTP client")
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    let mid = samples.len() / 2;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if samples.len().is_multiple_of(2) {
        (ms(samples[mid - 1]) + ms(samples[mid])) / 2.0
    } else {
        ms(samples[mid])
    }
}

/// POST `count` reports from `threads` clients; returns each request's latency.
fn post_reports(server: &Server, count: usize, threads: usize) -> anyhow::Result<Vec<Duration>> {
    let url = server.url("/api/v1/records");
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let url = &url;
                s.spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let http = client()?;
                    let mut latencies = Vec::new();
                    for n in (t..count).step_by(threads) {
                        let body = json!({"form": "boarding-report", "fields": typical_report(n)});
                        let start = Instant::now();
                        let resp = http.post(url).json(&body).send().context("POST a record")?;
                        let status = resp.status();
                        let text = resp.text().context("read the POST response")?;
                        latencies.push(start.elapsed());
                        ensure!(status.as_u16() == 201, "POST returned {status}: {text}");
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for w in workers {
            let latencies = w
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
            all.extend(latencies);
        }
        Ok(all)
    })
}

/// Time `runs` GETs of `path` (body read in full); checks the page's length.
fn time_list(
    http: &reqwest::blocking::Client,
    server: &Server,
    path: &str,
    runs: usize,
    expect_len: usize,
) -> anyhow::Result<Vec<Duration>> {
    let url = server.url(path);
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let resp = http
            .get(&url)
            .send()
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        let body = resp.bytes().context("read the list")?;
        samples.push(start.elapsed());
        ensure!(status.is_success(), "GET {path} returned {status}");
        let page: Json = serde_json::from_slice(&body).context("the list is JSON")?;
        let len = page["records"].as_array().map_or(0, Vec::len);
        ensure!(
            len == expect_len,
            "GET {path} returned {len} records, expected {expect_len}"
        );
    }
    Ok(samples)
}

fn run(opts: &Options) -> anyhow::Result<Json> {
    let data = tempfile::tempdir().context("create the data directory")?;
    let scratch = tempfile::tempdir().context("create a scratch directory")?;
    let log = scratch.path().join("server.log");
    let server = Server::start(&opts.tideline, data.path(), &log)?;
    let pid = server.pid();
    let http = client()?;

    let health = http
        .get(server.url("/healthz"))
        .send()
        .context("GET /healthz")?;
    ensure!(
        health.status().is_success(),
        "/healthz returned {}",
        health.status()
    );
    let (idle_rss, _) = memory_mb(pid)?;
    eprintln!(
        "server pid {pid} on {}; idle RSS {idle_rss:.1} MiB",
        server.addr
    );

    let start = Instant::now();
    let posts = post_reports(&server, opts.records, opts.threads)?;
    let post_secs = start.elapsed().as_secs_f64();
    eprintln!(
        "posted {} records in {post_secs:.1} s ({:.0}/s)",
        opts.records,
        opts.records as f64 / post_secs
    );
    let (rss_after, _) = memory_mb(pid)?;

    let page = opts.records.min(50);
    let list_page = time_list(&http, &server, "/api/v1/records", 20, page)?;
    // Read between the two lists so the cost of one big page shows on its own.
    let (rss_after_page_lists, _) = memory_mb(pid)?;
    let limit = opts.records.min(10_000);
    let list_all = time_list(
        &http,
        &server,
        &format!("/api/v1/records?limit={limit}"),
        5,
        limit,
    )?;
    let (rss_after_lists, peak_rss) = memory_mb(pid)?;
    let (data_len, data_allocated) = dir_bytes(data.path())?;
    drop(server);

    Ok(json!({
        "records": opts.records,
        "client_threads": opts.threads,
        "idle_rss_mb": round1(idle_rss),
        "rss_mb_after": round1(rss_after),
        "rss_mb_after_page_lists": round1(rss_after_page_lists),
        "rss_mb_after_lists": round1(rss_after_lists),
        "peak_rss_mb": round1(peak_rss),
        "list_10000_ms_median": round1(median_ms(list_all)),
        "list_page_ms_median": round1(median_ms(list_page)),
        "post_ms_median": round1(median_ms(posts)),
        "posts_per_s": round1(opts.records as f64 / post_secs),
        "data_dir_bytes": data_len,
        "data_dir_allocated_bytes": data_allocated,
    }))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn main() -> std::process::ExitCode {
    let result = parse_args().and_then(|opts| run(&opts));
    match result {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rss_bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
