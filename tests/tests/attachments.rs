//! Attachments across instances: a record that arrives before its files says
//! which files are still on their way; files follow their records up, from
//! boat to station to headquarters.

use serde_json::Value;
use tideline_tests::{report, Instance};

#[tokio::test]
async fn a_synced_record_shows_attachments_that_have_not_arrived_as_pending() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat =
        Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &station.base).await;
    let made = boat.create("boarding-report", report("Sea Breeze")).await;
    let id = made["id"].as_str().unwrap();
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    png.extend([7u8; 2000]);
    let resp = boat
        .client
        .post(boat.url(&format!(
            "/api/v1/records/{id}/attachments?name=deck.png&field=photos"
        )))
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let on_boat = boat.get(id).await;
    assert_eq!(on_boat["attachments"][0]["pending"], false);

    // The records get through but the file does not (here: it is gone from
    // the boat's disk, as after a sync cut between records and files).
    let hash = on_boat["attachments"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(
        dirs[1]
            .path()
            .join("attachments")
            .join(&hash[..2])
            .join(&hash),
    )
    .unwrap();
    boat.sync_ok().await;
    let at_station = station.get(id).await;
    assert_eq!(at_station["attachments"][0]["mime"], "image/png");
    assert_eq!(at_station["attachments"][0]["pending"], true);
    let resp = station
        .client
        .get(station.url(&format!("/api/v1/blobs/{hash}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "pending");
}

#[tokio::test]
async fn files_follow_their_records_from_boat_to_station_to_hq() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let station = Instance::start_under("station", dirs[1].path(), "BB-01", &hq, &hq.base).await;
    let boat =
        Instance::start_under("boat", dirs[2].path(), "BB-01", &station, &station.base).await;
    let made = boat.create("boarding-report", report("Sea Breeze")).await;
    let id = made["id"].as_str().unwrap();
    // A photo several upload chunks long.
    let mut photo = vec![0xFF, 0xD8, 0xFF, 0xE0];
    photo.extend((0..700_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let resp = boat
        .client
        .post(boat.url(&format!(
            "/api/v1/records/{id}/attachments?name=bow.jpg&field=photos"
        )))
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let hash = tideline_sync::blobs::BlobHash::of(&photo).to_hex();

    let outcome = boat.sync_ok().await;
    assert_eq!(outcome["files_sent"], 1);
    assert_eq!(outcome["file_bytes_sent"], photo.len());
    station.sync_ok().await;
    for (who, inst) in [("station", &station), ("hq", &hq)] {
        assert_eq!(
            inst.get(id).await["attachments"][0]["pending"],
            false,
            "{who}"
        );
        let got = inst
            .client
            .get(inst.url(&format!("/api/v1/blobs/{hash}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.as_ref(), photo.as_slice(), "{who}");
    }
    // Nothing is sent twice.
    let again = boat.sync_ok().await;
    assert_eq!(again["files_sent"], 0);
}

/// A 12 MiB photo over a link that cuts most connections somewhere in
/// their first chunk. Every attempt asks the station what it holds and sends
/// only the rest; the file arrives whole, and what crossed the link is the
/// file once plus at most one chunk per cut (and each request's own headers
/// and the records exchange).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_upload_resumes_from_what_the_upstream_holds() {
    use tideline_server::upstream::{sync_once, FILE_CHUNK};
    use tideline_tests::proxy::{FaultPlan, FaultProxy, ProxyConfig};

    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let proxy = FaultProxy::start(
        station.settings.listen,
        ProxyConfig {
            seed: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let boat = Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &proxy.url()).await;
    let made = boat.create("boarding-report", report("Sea Breeze")).await;
    let id = made["id"].as_str().unwrap().to_string();
    let mut photo = vec![0xFF, 0xD8, 0xFF, 0xE0];
    photo.extend((0..12 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let resp = boat
        .client
        .post(boat.url(&format!("/api/v1/records/{id}/attachments?name=hull.jpg")))
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    proxy.set_faults(FaultPlan {
        cut_probability: 0.6,
        to_server_share: 1.0,
        offsets: 1..=FILE_CHUNK as u64,
    });
    let before = proxy.stats();
    let (records, data, url) = (
        boat.records.clone(),
        dirs[1].path().to_path_buf(),
        proxy.url(),
    );
    let attempts = tokio::task::spawn_blocking(move || {
        // One connection per request, so every request meets the fault plan.
        let http = reqwest::blocking::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let blobs = tideline_sync::blobs::BlobStore::open(&data).unwrap();
        let mut last = String::new();
        for attempt in 1..=3000 {
            match sync_once(&records, &blobs, &url, &http, 1 << 20, |_| {}) {
                Ok(_) => return attempt,
                Err(e) => last = e.to_string(),
            }
        }
        panic!("the upload never completed; last error: {last}");
    })
    .await
    .unwrap();
    let after = proxy.stats();
    let cuts = after.cuts() - before.cuts();
    let requests = after.connections - before.connections;
    let sent = after.bytes_to_server - before.bytes_to_server;
    assert!(cuts >= 50, "only {cuts} cuts in {attempts} attempts");
    let allowance = photo.len() as u64 + cuts * FILE_CHUNK as u64 + requests * 2048;
    assert!(
        sent <= allowance,
        "{sent} bytes sent for a {} byte file with {cuts} cuts and {requests} requests",
        photo.len()
    );

    let hash = tideline_sync::blobs::BlobHash::of(&photo).to_hex();
    let got = station
        .client
        .get(station.url(&format!("/api/v1/blobs/{hash}")))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), photo.as_slice());
    eprintln!(
        "cut upload: {} byte file, {attempts} attempts, {requests} requests, {cuts} cuts, {sent} bytes sent",
        photo.len()
    );
}
