//! Web interface benchmark (docs/PERFORMANCE.md, "Web interface"): one real
//! `tideline serve` holding N typical boarding reports, and the time to
//! answer its main pages, measured from a client on loopback (so it is the
//! server's time plus a loopback round trip). Prints one JSON object.
//!
//! ```text
//! cargo build --release -p tideline-server
//! cargo run --release -p tideline-tests --bin web_bench -- [--tideline PATH] [--records N] [--runs R]
//! ```

#![forbid(unsafe_code)]

use anyhow::ensure;
use clap::Parser;
use serde_json::{json, Value as Json};
use std::time::Instant;
use tideline_tests::process::{ServerProcess, TidelineArg};

/// Runs the web interface benchmark and prints its report as one JSON object.
#[derive(Parser)]
#[command(name = "web_bench")]
struct Options {
    #[command(flatten)]
    tideline: TidelineArg,
    /// Typical boarding reports the server holds while its pages are timed
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    records: usize,
    /// Times each page is fetched
    #[arg(long, value_name = "R", default_value_t = 30)]
    runs: usize,
}

fn parse_args() -> anyhow::Result<Options> {
    let opts = Options::parse();
    ensure!(
        opts.records > 0 && opts.runs > 0,
        "--records and --runs must be at least 1"
    );
    Ok(opts)
}

/// Create `n` reports, four requests at a time; returns their ids.
async fn load(
    http: &reqwest::Client,
    server: &ServerProcess,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..n {
        let mut fields = tideline_schemas::samples::varied_report(i);
        fields.insert("vessel_name".into(), json!(format!("Vessel {i:05}")));
        let req = http
            .post(server.url("/api/v1/records"))
            .bearer_auth(&server.token)
            .json(&json!({"form": "boarding-report", "fields": fields}));
        batch.spawn(async move {
            let resp = req.send().await?.error_for_status()?;
            let v: Json = resp.json().await?;
            anyhow::Ok(v["id"].as_str().unwrap_or_default().to_string())
        });
        if batch.len() >= 4 {
            if let Some(done) = batch.join_next().await {
                ids.push(done??);
            }
        }
    }
    while let Some(done) = batch.join_next().await {
        ids.push(done??);
    }
    Ok(ids)
}

/// Milliseconds for `runs` GETs of `path`: min, median, p90, max.
async fn time(
    http: &reqwest::Client,
    server: &ServerProcess,
    path: &str,
    runs: usize,
) -> anyhow::Result<Json> {
    let mut ms = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let resp = http
            .get(server.url(path))
            .bearer_auth(&server.token)
            .send()
            .await?;
        ensure!(resp.status().is_success(), "GET {path}: {}", resp.status());
        bytes = resp.bytes().await?.len();
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    let r = |x: f64| (x * 100.0).round() / 100.0;
    Ok(json!({
        "path": path, "bytes": bytes,
        "min_ms": r(ms[0]), "median_ms": r(at(0.5)), "p90_ms": r(at(0.9)), "max_ms": r(ms[ms.len() - 1]),
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let opts = parse_args()?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("server.log");
    let data = dir.path().join("data");
    let bin = opts.tideline.path.clone();
    let server = tokio::task::spawn_blocking(move || {
        let args: Vec<String> = ["--station", "BB-01", "--no-auto-sync"]
            .map(String::from)
            .to_vec();
        ServerProcess::start(&bin, "web", &data, &args, log)
    })
    .await??;
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let ids = load(&http, &server, opts.records).await?;
    eprintln!(
        "loaded {} records in {:.1} s",
        ids.len(),
        t0.elapsed().as_secs_f64()
    );
    let some = &ids[ids.len() / 2];
    let pages = [
        "/records".to_string(),
        "/records?page=100".to_string(),
        "/records?q=vessel%2000042".to_string(),
        "/records?status=draft&from=2020-01-01&to=2099-12-31".to_string(),
        "/records/new?form=boarding-report".to_string(),
        format!("/records/{some}"),
        "/map".to_string(),
    ];
    let mut results = Vec::new();
    for p in &pages {
        let r = time(&http, &server, p, opts.runs).await?;
        eprintln!("{r}");
        results.push(r);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "records": ids.len(),
            "runs_per_page": opts.runs,
            "pages": results,
        }))?
    );
    Ok(())
}
