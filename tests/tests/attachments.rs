//! Attachments across instances: a record that arrives before its files says
//! which files are still on their way.

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

    boat.sync_ok().await;
    let at_station = station.get(id).await;
    assert_eq!(at_station["attachments"][0]["mime"], "image/png");
    assert_eq!(at_station["attachments"][0]["pending"], true);
    let hash = at_station["attachments"][0]["sha256"].as_str().unwrap();
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
