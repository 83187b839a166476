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
        let (_, got) = inst.blob(&hash).await;
        assert_eq!(got.as_slice(), photo.as_slice(), "{who}");
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
        let key = tideline_server::auth::InstanceKey::load(&data).unwrap();
        let mut last = String::new();
        for attempt in 1..=3000 {
            match sync_once(
                &records,
                &key,
                &blobs,
                &url,
                &http,
                1 << 20,
                &Default::default(),
                |_| {},
            ) {
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
    let (_, got) = station.blob(&hash).await;
    assert_eq!(got.as_slice(), photo.as_slice());
    eprintln!(
        "cut upload: {} byte file, {attempts} attempts, {requests} requests, {cuts} cuts, {sent} bytes sent",
        photo.len()
    );
}

/// A JPEG-looking file of `len` bytes, different for each `seed`.
fn photo(seed: u32, len: u32) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..len).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8));
    bytes
}

/// Attach `bytes` to record `id` on `inst`; returns the file's SHA-256.
async fn attach(inst: &Instance, id: &str, name: &str, bytes: &[u8]) -> String {
    let resp = inst
        .client
        .post(inst.url(&format!("/api/v1/records/{id}/attachments?name={name}")))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}: attach failed", inst.name);
    tideline_sync::blobs::BlobHash::of(bytes).to_hex()
}

/// Headquarters adds evidence photos to a boat's reports. They reach the boat
/// only when someone there opens one: the boat asks its station, which asks
/// headquarters, and the file comes down in the same request. A photo nobody
/// opened stays at headquarters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boat_fetches_an_upstream_file_when_someone_opens_it() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let station = Instance::start_under("station", dirs[1].path(), "BB-01", &hq, &hq.base).await;
    let boat =
        Instance::start_under("boat", dirs[2].path(), "BB-01", &station, &station.base).await;
    let first = boat.create("boarding-report", report("Sea Breeze")).await;
    let second = boat.create("boarding-report", report("Morning Star")).await;
    let (first, second) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    boat.sync_ok().await;
    station.sync_ok().await;

    let opened = photo(1, 600_000);
    let unopened = photo(2, 600_000);
    let opened_hash = attach(&hq, first, "stern.jpg", &opened).await;
    let unopened_hash = attach(&hq, second, "cargo.jpg", &unopened).await;
    station.sync_ok().await;
    boat.sync_ok().await;
    assert_eq!(boat.get(first).await["attachments"][0]["pending"], true);
    assert_eq!(station.get(first).await["attachments"][0]["pending"], true);

    let (status, bytes) = boat.blob(&opened_hash).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, opened);
    assert_eq!(boat.get(first).await["attachments"][0]["pending"], false);
    assert_eq!(station.get(first).await["attachments"][0]["pending"], false);

    // Lazy: the other photo was not fetched, by either sync.
    let again = boat.sync_ok().await;
    assert_eq!(again["files_received"], 0);
    assert_eq!(again["files_sent"], 0, "a fetched file is not sent back up");
    assert_eq!(boat.get(second).await["attachments"][0]["pending"], true);
    assert_eq!(station.get(second).await["attachments"][0]["pending"], true);
    assert!(!dirs[2]
        .path()
        .join("attachments")
        .join(&unopened_hash[..2])
        .join(&unopened_hash)
        .exists());
}

/// With `attachment_eager_forms`, a downstream fetches the files of those
/// forms' records at every sync, and only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_eager_forms_come_down_with_the_sync() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat = Instance::start_under_with(
        "boat",
        dirs[1].path(),
        "BB-01",
        &station,
        &station.base,
        |s| s.attachments.eager_forms = vec!["boarding-report".into()],
    )
    .await;
    let report_id = station
        .create("boarding-report", report("Sea Breeze"))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sighting_id = station
        .create(
            "vessel-sighting",
            serde_json::json!({
                "sighted_at": "2026-11-20T09:00:00-04:00",
                "position": {"lat": 13.1, "lon": -59.6},
                "description": "Pirogue heading north at speed"
            }),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let wanted = photo(3, 400_000);
    let not_wanted = photo(4, 400_000);
    attach(&station, &report_id, "deck.jpg", &wanted).await;
    attach(&station, &sighting_id, "far.jpg", &not_wanted).await;

    let outcome = boat.sync_ok().await;
    assert_eq!(outcome["files_received"], 1, "{outcome}");
    assert_eq!(outcome["file_bytes_received"], wanted.len());
    assert_eq!(
        boat.get(&report_id).await["attachments"][0]["pending"],
        false
    );
    assert_eq!(
        boat.get(&sighting_id).await["attachments"][0]["pending"],
        true
    );
    let again = boat.sync_ok().await;
    assert_eq!(again["files_received"], 0);
    assert_eq!(again["files_sent"], 0);
}

/// A download cut again and again keeps every byte that arrived and asks
/// only for the rest: the file arrives whole, and what crossed the link is
/// the file once plus each request's own overhead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_from_what_the_downstream_holds() {
    use tideline_server::upstream::{sync_once, FileFetch};
    use tideline_tests::proxy::{FaultPlan, FaultProxy, ProxyConfig};

    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let proxy = FaultProxy::start(
        station.settings.listen,
        ProxyConfig {
            seed: 11,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let boat = Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &proxy.url()).await;
    let id = station
        .create("boarding-report", report("Sea Breeze"))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = photo(5, 4 * 1024 * 1024);
    let hash = attach(&station, &id, "hold.jpg", &file).await;
    boat.sync_ok().await;
    assert_eq!(boat.get(&id).await["attachments"][0]["pending"], true);

    // Every answer longer than its cut offset is cut: the download only
    // ever gets through in pieces.
    proxy.set_faults(FaultPlan {
        cut_probability: 1.0,
        to_server_share: 0.0,
        offsets: 1..=file.len() as u64 / 4,
    });
    let before = proxy.stats();
    let (records, data, url) = (
        boat.records.clone(),
        dirs[1].path().to_path_buf(),
        proxy.url(),
    );
    let fetch = FileFetch {
        requested: vec![hash.parse().unwrap()],
        max_bytes: 25 << 20,
        ..Default::default()
    };
    let attempts = tokio::task::spawn_blocking(move || {
        let http = reqwest::blocking::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let blobs = tideline_sync::blobs::BlobStore::open(&data).unwrap();
        let key = tideline_server::auth::InstanceKey::load(&data).unwrap();
        let mut last = String::new();
        for attempt in 1..=500 {
            match sync_once(&records, &key, &blobs, &url, &http, 1 << 20, &fetch, |_| {}) {
                Ok(o) if o.files_received == 1 => return attempt,
                Ok(o) => last = format!("{o:?}"),
                Err(e) => last = e.to_string(),
            }
        }
        panic!("the download never completed; last: {last}");
    })
    .await
    .unwrap();
    let after = proxy.stats();
    let cuts = after.cuts_to_client - before.cuts_to_client;
    let requests = after.connections - before.connections;
    let received = after.bytes_to_client - before.bytes_to_client;
    assert!(cuts >= 5, "only {cuts} cuts in {attempts} attempts");
    assert!(
        received <= file.len() as u64 + requests * 2048,
        "{received} bytes received for a {} byte file in {requests} requests",
        file.len()
    );
    assert_eq!(boat.get(&id).await["attachments"][0]["pending"], false);
    let (status, bytes) = boat.blob(&hash).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, file);
    eprintln!(
        "cut download: {} byte file, {attempts} attempts, {requests} requests, {cuts} cuts, {received} bytes received",
        file.len()
    );
}

/// A station lost and restored from a backup taken before a photo reached
/// it: the boat notices the older store at its next sync and sends again
/// everything the station lost, the photo as well as its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_restored_from_an_older_backup_receives_again_the_files_it_lost() {
    use tideline_server::upstream::sync_once;

    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat =
        Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &station.base).await;
    boat.create("boarding-report", report("Sea Breeze")).await;
    boat.sync_ok().await;
    let backup = dirs[2].path().join("station.backup");
    tideline_server::backup::write(
        station.records.store().as_ref(),
        dirs[0].path(),
        std::fs::File::create(&backup).unwrap(),
    )
    .unwrap();

    // After the backup: a report with a photo reaches the station...
    let made = boat.create("boarding-report", report("Morning Star")).await;
    let id = made["id"].as_str().unwrap().to_string();
    let photo = photo(9, 300_000);
    let hash = attach(&boat, &id, "stern.jpg", &photo).await;
    let sent = boat.sync_ok().await;
    assert_eq!(sent["files_sent"], 1);

    // ...which is then lost, and the station comes back from the backup.
    station.stop().await;
    let restored_dir = dirs[2].path().join("restored");
    tideline_server::backup::restore(&backup, &restored_dir).unwrap();
    let restored = Instance::start("restored", &restored_dir, "BB-01").await;
    assert_eq!(restored.blob(&hash).await.0, 404);

    let (records, data, url) = (
        boat.records.clone(),
        dirs[1].path().to_path_buf(),
        restored.base.clone(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        let blobs = tideline_sync::blobs::BlobStore::open(&data).unwrap();
        let key = tideline_server::auth::InstanceKey::load(&data).unwrap();
        let http = reqwest::blocking::Client::new();
        sync_once(
            &records,
            &key,
            &blobs,
            &url,
            &http,
            1 << 20,
            &Default::default(),
            |_| {},
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(outcome.files_sent, 1, "{outcome:?}");
    assert_eq!(restored.get(&id).await["attachments"][0]["pending"], false);
    let (status, bytes) = restored.blob(&hash).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, photo);
}
