//! Attachment benchmark over a slow link that keeps going down
//! (docs/PERFORMANCE.md, "Attachments"): a station and a boat as real
//! `tideline serve` processes, the boat reaching the station through an
//! in-process [`FaultProxy`] shaped as a satellite hop. Prints one JSON object
//! on stdout; progress goes to stderr.
//!
//! ```text
//! cargo build --release -p tideline-server
//! cargo run --release -p tideline-tests --bin file_bench -- \
//!     [--tideline PATH] [--mib N] [--kbit K] [--latency-ms L] \
//!     [--drop-percent P] [--seed S]
//! ```
//!
//! Defaults: a 10 MiB photo, 256 kbit/s and 300 ms each way, and
//! `--drop-percent 2`: in each second the link goes down with probability
//! 2 %, closing every connection open at that moment mid-message (on
//! average one drop every 50 s, six or seven during a 10 MiB transfer).
//!
//! Two transfers, each timed from the first `POST /api/v1/sync/now` until
//! the file is whole at its destination; a sync the link broke is asked for
//! again at once, as an officer pressing "Sync now" would:
//! 1. `upload`: an officer on the boat attaches the photo to a report; the
//!    boat's syncs carry the report and then the file up to the station.
//! 2. `download`: the station attaches another photo to a report of the
//!    boat's station; the report comes down, an officer on the boat opens
//!    the photo, and the boat's syncs fetch it.
//!
//! Each file is compared byte for byte with the original at the end.
//! Reported: time, syncs asked for, link drops, and wire bytes each way
//! (bodies and HTTP headers, counted by the proxy) against the file size.
//! Linux only; loopback only.

#![forbid(unsafe_code)]

use anyhow::{bail, ensure, Context};
use clap::Parser;
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};
use tideline_tests::process::{ServerProcess, TidelineArg};
use tideline_tests::proxy::{FaultProxy, Link, ProxyConfig, ProxyStats, SplitMix64};

/// Runs the attachment benchmark and prints its report as one JSON object.
#[derive(Parser)]
#[command(name = "file_bench")]
struct Options {
    #[command(flatten)]
    tideline: TidelineArg,
    /// Size of each photo in MiB, 1 to 24 (the default attachment limit is 25 MiB)
    #[arg(long, value_name = "N", default_value_t = 10)]
    mib: u32,
    /// The link's throughput each way, in kbit/s
    #[arg(long, value_name = "K", default_value_t = 256)]
    kbit: u64,
    /// The link's latency each way, in milliseconds
    #[arg(long, value_name = "L", default_value_t = 300)]
    latency_ms: u64,
    /// Per cent chance, in each second, that the link goes down, closing every
    /// connection open at that moment
    #[arg(long, value_name = "P", default_value_t = 2.0)]
    drop_percent: f64,
    /// Seed of the photos' bytes and of the drops
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
}

fn parse_args() -> anyhow::Result<Options> {
    let opts = Options::parse();
    ensure!(
        (1..=24).contains(&opts.mib),
        "--mib must be 1 to 24 (the default attachment limit is 25 MiB)"
    );
    ensure!(opts.kbit > 0, "--kbit must be at least 1");
    ensure!(
        (0.0..100.0).contains(&opts.drop_percent),
        "--drop-percent must be at least 0 and below 100"
    );
    Ok(opts)
}

macro_rules! progress {
    ($start:expr, $($arg:tt)*) => {
        eprintln!("[{:7.1} s] {}", $start.elapsed().as_secs_f64(), format!($($arg)*))
    };
}

/// A photo-sized file that does not compress, as a JPEG does not.
fn photo(seed: u64, bytes: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut data = vec![0xFF, 0xD8, 0xFF, 0xE0];
    while data.len() < bytes {
        data.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    data.truncate(bytes);
    data
}

fn client() -> anyhow::Result<reqwest::Client> {
    // No overall timeout: one sync of a 10 MiB file takes minutes on purpose.
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

/// Create a typical report on `server` and attach `file` to it; returns the
/// record's id and the file's hash.
async fn report_with_photo(
    http: &reqwest::Client,
    server: &ServerProcess,
    vessel: &str,
    file: &[u8],
) -> anyhow::Result<(String, String)> {
    let mut fields = tideline_schemas::samples::varied_report(1);
    fields.insert("vessel_name".into(), json!(vessel));
    let made: Json = http
        .post(server.url("/api/v1/records"))
        .bearer_auth(&server.token)
        .json(&json!({"form": "boarding-report", "fields": fields}))
        .send()
        .await?
        .error_for_status()
        .context("create a report")?
        .json()
        .await?;
    let id = made["id"].as_str().context("no record id")?;
    let attached: Json = http
        .post(server.url(&format!(
            "/api/v1/records/{id}/attachments?name=evidence.jpg&field=photos"
        )))
        .bearer_auth(&server.token)
        .body(file.to_vec())
        .send()
        .await?
        .error_for_status()
        .context("attach the photo")?
        .json()
        .await?;
    let hash = attached["attachments"][0]["sha256"]
        .as_str()
        .context("no attachment hash")?;
    Ok((id.to_string(), hash.to_string()))
}

/// `GET /api/v1/blobs/{hash}` on `server`: the bytes if the file is there.
async fn blob(
    http: &reqwest::Client,
    server: &ServerProcess,
    hash: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    let resp = http
        .get(server.url(&format!("/api/v1/blobs/{hash}")))
        .bearer_auth(&server.token)
        .send()
        .await?;
    match resp.status().as_u16() {
        200 => Ok(Some(resp.bytes().await?.to_vec())),
        404 => Ok(None),
        s => bail!("{}: GET blob answered {s}", server.name),
    }
}

/// Ask the boat to sync until `done` says the transfer is over; returns the
/// number of syncs asked for.
async fn sync_until<F, Fut>(
    http: &reqwest::Client,
    boat: &ServerProcess,
    deadline: Instant,
    mut done: F,
) -> anyhow::Result<u32>
where
    F: FnMut(Json) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let mut syncs = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "the transfer did not finish in time"
        );
        syncs += 1;
        let resp = http
            .post(boat.url("/api/v1/sync/now"))
            .bearer_auth(&boat.token)
            .send()
            .await?;
        let ok = resp.status().is_success();
        let body: Json = resp.json().await.unwrap_or(Json::Null);
        if ok && done(body).await? {
            return Ok(syncs);
        }
    }
}

/// Take the link down at random moments until stopped: each second, with
/// probability `percent` %.
fn start_drops(
    proxy: &std::sync::Arc<FaultProxy>,
    percent: f64,
    seed: u64,
) -> tokio::task::JoinHandle<()> {
    let proxy = proxy.clone();
    tokio::spawn(async move {
        let mut rng = SplitMix64::new(seed);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            if rng.chance(percent / 100.0) {
                proxy.drop_connections();
            }
        }
    })
}

fn traffic(before: &ProxyStats, after: &ProxyStats, file: usize, secs: f64, syncs: u32) -> Json {
    let up = after.bytes_to_server - before.bytes_to_server;
    let down = after.bytes_to_client - before.bytes_to_client;
    json!({
        "seconds": (secs * 10.0).round() / 10.0,
        "syncs": syncs,
        "drops": after.drops - before.drops,
        "connections": after.connections - before.connections,
        "file_bytes": file,
        "wire_bytes_up": up,
        "wire_bytes_down": down,
    })
}

async fn run(opts: &Options, t0: Instant) -> anyhow::Result<Json> {
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let logs = tempfile::tempdir()?;
    let bin = opts.tideline.path.clone();
    let (station_dir, station_log) = (
        dirs[0].path().to_path_buf(),
        logs.path().join("station.log"),
    );
    let station = tokio::task::spawn_blocking(move || {
        let args: Vec<String> = ["--station", "BB-01", "--no-auto-sync"]
            .map(String::from)
            .to_vec();
        ServerProcess::start(&bin, "station", &station_dir, &args, station_log)
    })
    .await??;
    let link = Link::CLEAN
        .with_latency(Duration::from_millis(opts.latency_ms))
        .with_throttle(opts.kbit * 1000 / 8);
    let proxy = std::sync::Arc::new(
        FaultProxy::start(
            station.addr,
            ProxyConfig {
                seed: opts.seed,
                to_server: link,
                to_client: link,
                ..Default::default()
            },
        )
        .await?,
    );
    let code = tokio::task::block_in_place(|| station.enroll_code("BB-01", "boat"))?;
    let (bin, url) = (opts.tideline.path.clone(), proxy.url());
    let (boat_dir, boat_log) = (dirs[1].path().to_path_buf(), logs.path().join("boat.log"));
    let boat = tokio::task::spawn_blocking(move || {
        let args: Vec<String> = vec![
            "--station".into(),
            "BB-01".into(),
            "--no-auto-sync".into(),
            "--upstream".into(),
            url.clone(),
        ];
        tideline_tests::process::enroll(&bin, &boat_dir, &args, &url, &code)?;
        ServerProcess::start(&bin, "boat", &boat_dir, &args, boat_log)
    })
    .await??;
    progress!(
        t0,
        "station and boat running; link {} kbit/s, {} ms each way, {} % drops per second",
        opts.kbit,
        opts.latency_ms,
        opts.drop_percent
    );

    let http = client()?;
    let size = opts.mib as usize * 1024 * 1024;
    let deadline = Instant::now() + Duration::from_secs(3 * 3600);

    // Upload: boat → station.
    let up_file = photo(opts.seed, size);
    let (_, up_hash) = report_with_photo(&http, &boat, "Sea Breeze", &up_file).await?;
    let drops = start_drops(&proxy, opts.drop_percent, opts.seed ^ 0xD12);
    let before = proxy.stats();
    let started = Instant::now();
    let syncs = sync_until(&http, &boat, deadline, |body| {
        let sent = body["files_sent"].as_u64().unwrap_or(0);
        async move { Ok(sent >= 1) }
    })
    .await?;
    let up = traffic(
        &before,
        &proxy.stats(),
        size,
        started.elapsed().as_secs_f64(),
        syncs,
    );
    progress!(t0, "upload done: {up}");
    let got = blob(&http, &station, &up_hash)
        .await?
        .context("the station lacks the upload")?;
    ensure!(
        got == up_file,
        "the station's copy differs from the boat's photo"
    );

    // Download: station → boat, when an officer opens it.
    let down_file = photo(opts.seed + 1, size);
    let (down_id, down_hash) =
        report_with_photo(&http, &station, "Morning Star", &down_file).await?;
    drops.abort();
    // The report itself comes down first, on an unbroken link, so that the
    // timing below is the file's.
    sync_until(&http, &boat, deadline, |_| async { Ok(true) }).await?;
    let drops = start_drops(&proxy, opts.drop_percent, opts.seed ^ 0xD0A);
    let before = proxy.stats();
    let started = Instant::now();
    // Opening it asks the station for it and waits a few seconds; a large
    // file over a slow link then needs more syncs.
    // The sync the opening started goes on in the background; a sync asked
    // for meanwhile waits for it, so "done" is the file being on the boat.
    let syncs = if blob(&http, &boat, &down_hash).await?.is_some() {
        0
    } else {
        let (http2, boat_url, token) = (
            http.clone(),
            boat.url(&format!("/api/v1/records/{down_id}")),
            boat.token.clone(),
        );
        sync_until(&http, &boat, deadline, move |_| {
            let (http, url, token) = (http2.clone(), boat_url.clone(), token.clone());
            async move {
                let view: Json = http
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .json()
                    .await?;
                Ok(view["attachments"][0]["pending"] == Json::Bool(false))
            }
        })
        .await?
    };
    let down = traffic(
        &before,
        &proxy.stats(),
        size,
        started.elapsed().as_secs_f64(),
        syncs,
    );
    drops.abort();
    progress!(t0, "download done: {down}");
    let got = blob(&http, &boat, &down_hash)
        .await?
        .context("the boat lacks the download")?;
    ensure!(
        got == down_file,
        "the boat's copy differs from the station's photo"
    );

    Ok(json!({
        "link": {
            "kbit_per_sec": opts.kbit,
            "latency_ms_each_way": opts.latency_ms,
            "drop_percent_per_sec": opts.drop_percent,
            "seed": opts.seed,
        },
        "upload": up,
        "download": down,
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let t0 = Instant::now();
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("file_bench: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&opts, t0).await {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("file_bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
