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

use anyhow::{ensure, Context};
use clap::Parser;
use serde_json::{json, Map, Value as Json};
use std::path::Path;
use std::time::{Duration, Instant};
use tideline_tests::process::{memory_mb, ServerProcess, TidelineArg};

/// Runs the memory and list-latency benchmark and prints its report as one
/// JSON object.
#[derive(Parser)]
#[command(name = "rss_bench")]
struct Options {
    #[command(flatten)]
    tideline: TidelineArg,
    /// Typical boarding reports to POST before measuring
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    records: usize,
    /// Client threads POSTing at once
    #[arg(long, value_name = "T", default_value_t = 4)]
    threads: usize,
}

fn parse_args() -> anyhow::Result<Options> {
    let opts = Options::parse();
    ensure!(opts.records > 0, "--records must be at least 1");
    ensure!(opts.threads > 0, "--threads must be at least 1");
    Ok(opts)
}

type Server = ServerProcess;

fn start_server(bin: &Path, data: &Path, log: &Path) -> anyhow::Result<Server> {
    let args = ["--station".to_string(), "BB-01".to_string()];
    ServerProcess::start(bin, "server", data, &args, log.to_path_buf())
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

/// A varied boarding report (6 crew, 2 seizures, 600 characters of
/// findings) that compresses no better than real ones.
fn typical_report(n: usize) -> Map<String, Json> {
    tideline_schemas::samples::varied_report(n)
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
                        let resp = http
                            .post(url)
                            .bearer_auth(&server.token)
                            .json(&body)
                            .send()
                            .context("POST a record")?;
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
            .bearer_auth(&server.token)
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
    let server = start_server(&opts.tideline.path, data.path(), &log)?;
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
