//! What operators watch: readiness, and the metrics a boat and its station
//! report about requests and sync.

use serde_json::Value;
use tideline_tests::{report, Instance};

/// The value of the metric line that starts with `series` (name and labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(inst: &Instance) -> String {
    // No login: scrapers have none.
    let resp = reqwest::get(inst.url("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_and_sync_on_both_sides() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat =
        Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &station.base).await;
    for vessel in ["Sea Breeze", "Morning Star"] {
        boat.create("boarding-report", report(vessel)).await;
    }
    boat.sync_ok().await;

    let on_boat = scrape(&boat).await;
    let s = |series: &str| metric(&on_boat, series);
    assert_eq!(
        s(r#"tideline_sync_sessions_total{side="downstream",result="ok"}"#),
        Some(1.0),
        "{on_boat}"
    );
    assert_eq!(
        s(r#"tideline_sync_records_total{side="downstream",direction="out"}"#),
        Some(2.0)
    );
    assert!(
        s(r#"tideline_sync_message_bytes_total{side="downstream",direction="out"}"#).unwrap() > 0.0
    );
    assert_eq!(
        s(r#"tideline_http_requests_total{method="POST",route="/api/v1/records",status="201"}"#),
        Some(2.0)
    );
    assert!(on_boat.contains("tideline_http_request_duration_seconds_bucket{"));
    assert_eq!(s("tideline_records"), Some(2.0));
    assert!(s("tideline_store_size_bytes").unwrap() > 0.0);

    let on_station = scrape(&station).await;
    assert_eq!(
        metric(
            &on_station,
            r#"tideline_sync_records_total{side="upstream",direction="in"}"#
        ),
        Some(2.0),
        "{on_station}"
    );
    assert!(
        metric(
            &on_station,
            r#"tideline_sync_sessions_total{side="upstream",result="ok"}"#
        )
        .unwrap()
            >= 1.0
    );

    // The upstream goes away: the failure is counted by kind.
    station.stop().await;
    let (status, _) = boat.sync_now().await;
    assert_ne!(status, 200);
    let on_boat = scrape(&boat).await;
    assert_eq!(
        metric(
            &on_boat,
            r#"tideline_sync_errors_total{side="downstream",kind="unreachable"}"#
        ),
        Some(1.0),
        "{on_boat}"
    );
}

#[tokio::test]
async fn readiness_says_what_is_failing() {
    let dir = tempfile::tempdir().unwrap();
    let inst = Instance::start("station", dir.path(), "BB-01").await;
    let resp = reqwest::get(inst.url("/readyz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Attachment storage gone (a disk unmounted under the instance).
    std::fs::remove_dir_all(dir.path().join("attachments")).unwrap();
    let resp = reqwest::get(inst.url("/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["attachments"], "failing");
    assert_eq!(body["store"], "ok");
    // Liveness is another question: the process still answers.
    let resp = reqwest::get(inst.url("/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
}
