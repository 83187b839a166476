//! Bad input of every kind: a clear 4xx JSON error naming the field path where
//! there is one, and a store left exactly as it was.

mod common;

use common::{report, spawn_app, TestApp};
use serde_json::{json, Value};

/// Send a request, check the status and error code, check the store is
/// unchanged, and return the error body for further checks.
async fn refused(
    app: &TestApp,
    request: reqwest::RequestBuilder,
    status: u16,
    code: &str,
) -> Value {
    let before = app.snapshot().await;
    let resp = request.send().await.expect("request");
    assert_eq!(resp.status().as_u16(), status, "status for {code}");
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["error"], code, "error code in {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a human message in {body}"
    );
    assert!(body.get("details").is_some(), "details key in {body}");
    assert_eq!(
        app.snapshot().await,
        before,
        "store changed after a refused {code}"
    );
    body
}

fn paths(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|v| v["path"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn app_with_one_record() -> (TestApp, String) {
    let app = spawn_app().await;
    let view = app.create(&report()).await;
    let path = format!("/api/v1/records/{}", view["id"].as_str().unwrap());
    (app, path)
}

#[tokio::test]
async fn malformed_json() {
    let (app, path) = app_with_one_record().await;
    for body in [
        "{\"form\": \"boarding-report\", \"fields\": {",
        "not json",
        "",
    ] {
        let req = app
            .client
            .post(app.url("/api/v1/records"))
            .header("content-type", "application/json")
            .body(body);
        refused(&app, req, 400, "malformed_json").await;
    }
    let req = app
        .client
        .patch(app.url(&path))
        .header("content-type", "application/json")
        .body("{\"fields\": {\"arrests\": ");
    refused(&app, req, 400, "malformed_json").await;
}

#[tokio::test]
async fn wrong_shape_and_wrong_content_type() {
    let (app, _) = app_with_one_record().await;
    let req = app
        .client
        .post(app.url("/api/v1/records"))
        .json(&json!({"fields": {}}));
    refused(&app, req, 400, "invalid_request").await;
    let req = app
        .client
        .post(app.url("/api/v1/records"))
        .json(&json!({"form": "boarding-report", "fields": {}, "extra": 1}));
    refused(&app, req, 400, "invalid_request").await;
    let req = app
        .client
        .post(app.url("/api/v1/records"))
        .header("content-type", "text/plain")
        .body("{\"form\": \"boarding-report\"}");
    refused(&app, req, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn unknown_form() {
    let (app, _) = app_with_one_record().await;
    let req = app
        .client
        .post(app.url("/api/v1/records"))
        .json(&json!({"form": "fishing-licence", "fields": {}}));
    let body = refused(&app, req, 422, "unknown_form").await;
    assert_eq!(paths(&body), vec!["form"]);
}

#[tokio::test]
async fn wrong_field_types_name_every_path() {
    let (app, path) = app_with_one_record().await;
    let mut bad = report();
    bad["persons_on_board"] = json!("three");
    bad["contraband_found"] = json!("yes");
    bad["crew"][1]["name"] = json!(42);
    bad["seizures"][0]["quantity"] = json!(-1);
    let req = app
        .client
        .post(app.url("/api/v1/records"))
        .json(&json!({"form": "boarding-report", "fields": bad}));
    let body = refused(&app, req, 422, "invalid_fields").await;
    let mut got = paths(&body);
    got.sort();
    assert_eq!(
        got,
        vec![
            "contraband_found",
            "crew[1].name",
            "persons_on_board",
            "seizures[0].quantity"
        ]
    );

    let req = app
        .client
        .patch(app.url(&path))
        .json(&json!({"fields": {"boarding_time": "yesterday afternoon"}}));
    let body = refused(&app, req, 422, "invalid_fields").await;
    assert_eq!(paths(&body), vec!["boarding_time"]);
}

#[tokio::test]
async fn position_out_of_range() {
    let (app, path) = app_with_one_record().await;
    let mut bad = report();
    bad["position"] = json!({"lat": 91.0, "lon": -181.0});
    let req = app
        .client
        .post(app.url("/api/v1/records"))
        .json(&json!({"form": "boarding-report", "fields": bad}));
    let body = refused(&app, req, 422, "invalid_fields").await;
    assert_eq!(paths(&body), vec!["position.lat", "position.lon"]);

    let req = app
        .client
        .patch(app.url(&path))
        .json(&json!({"fields": {"position": {"lat": -90.5, "lon": 0}}}));
    let body = refused(&app, req, 422, "invalid_fields").await;
    assert_eq!(paths(&body), vec!["position.lat"]);
}

#[tokio::test]
async fn unknown_field_names() {
    let (app, path) = app_with_one_record().await;
    let mut bad = report();
    bad["vessel_colour"] = json!("blue");
    bad["crew"][0]["shoe_size"] = json!(44);
    let req = app
        .client
        .post(app.url("/api/v1/records"))
        .json(&json!({"form": "boarding-report", "fields": bad}));
    let body = refused(&app, req, 422, "invalid_fields").await;
    let mut got = paths(&body);
    got.sort();
    assert_eq!(got, vec!["crew[0].shoe_size", "vessel_colour"]);

    let req = app
        .client
        .patch(app.url(&path))
        .json(&json!({"fields": {"colour": "red"}}));
    let body = refused(&app, req, 422, "invalid_fields").await;
    assert_eq!(paths(&body), vec!["colour"]);
}

#[tokio::test]
async fn body_over_the_size_limit() {
    let (app, path) = app_with_one_record().await;
    // The documented default limit is 1 MiB.
    let mut huge = report();
    huge["findings"] = json!("x".repeat(1024 * 1024 + 1));
    let req = app
        .client
        .post(app.url("/api/v1/records"))
        .json(&json!({"form": "boarding-report", "fields": huge}));
    let body = refused(&app, req, 413, "body_too_large").await;
    assert_eq!(body["details"]["limit_bytes"], 1024 * 1024);
    let req = app
        .client
        .patch(app.url(&path))
        .json(&json!({"fields": {"findings": "y".repeat(2 * 1024 * 1024)}}));
    refused(&app, req, 413, "body_too_large").await;
}

#[tokio::test]
async fn unknown_record_id() {
    let (app, _) = app_with_one_record().await;
    let missing = "/api/v1/records/01900000-0000-7000-8000-000000000000";
    refused(&app, app.client.get(app.url(missing)), 404, "not_found").await;
    refused(
        &app,
        app.client.get(app.url(&format!("{missing}/automerge"))),
        404,
        "not_found",
    )
    .await;
    let req = app
        .client
        .patch(app.url(missing))
        .json(&json!({"fields": {"arrests": 1}}));
    refused(&app, req, 404, "not_found").await;
}

#[tokio::test]
async fn invalid_uuid_in_the_path() {
    let (app, _) = app_with_one_record().await;
    for bad in ["not-a-uuid", "1234", "01900000-0000-7000-8000-00000000000g"] {
        let path = format!("/api/v1/records/{bad}");
        refused(&app, app.client.get(app.url(&path)), 400, "invalid_id").await;
        let req = app
            .client
            .patch(app.url(&path))
            .json(&json!({"fields": {"arrests": 1}}));
        refused(&app, req, 400, "invalid_id").await;
    }
}

#[tokio::test]
async fn status_value_not_allowed() {
    let (app, path) = app_with_one_record().await;
    for bad in ["approved", "DRAFT", ""] {
        let req = app
            .client
            .patch(app.url(&path))
            .json(&json!({"status": bad}));
        let body = refused(&app, req, 422, "invalid_status").await;
        assert_eq!(paths(&body), vec!["status"]);
    }
    let req = app.client.patch(app.url(&path)).json(&json!({"status": 3}));
    refused(&app, req, 400, "invalid_request").await;
    let req = app.client.get(app.url("/api/v1/records?status=approved"));
    refused(&app, req, 422, "invalid_status").await;
}

#[tokio::test]
async fn bad_query_strings() {
    let (app, _) = app_with_one_record().await;
    refused(
        &app,
        app.client.get(app.url("/api/v1/records?limit=lots")),
        400,
        "invalid_query",
    )
    .await;
    refused(
        &app,
        app.client.get(app.url("/api/v1/records?limit=0")),
        400,
        "invalid_query",
    )
    .await;
    refused(
        &app,
        app.client.get(app.url("/api/v1/records?limit=10001")),
        400,
        "invalid_query",
    )
    .await;
    refused(
        &app,
        app.client.get(app.url("/api/v1/records?colour=red")),
        400,
        "invalid_query",
    )
    .await;
    refused(
        &app,
        app.client
            .get(app.url("/api/v1/export?format=csv&table=engines")),
        400,
        "unknown_table",
    )
    .await;
    refused(
        &app,
        app.client.get(app.url("/api/v1/nowhere")),
        404,
        "no_route",
    )
    .await;
}
