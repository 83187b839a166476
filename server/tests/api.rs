//! The HTTP API as a client sees it: real server on port 0, real sled store.

mod common;

use automerge::ReadDoc;
use common::{report, spawn_app};
use serde_json::{json, Value};

#[tokio::test]
async fn health_and_forms() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);

    let forms: Value = app.get("/api/v1/forms").await.json().await.unwrap();
    let ids: Vec<&str> = forms["forms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["boarding-report", "vessel-sighting"]);

    let form: Value = app
        .get("/api/v1/forms/boarding-report")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(form["version"], 2);
    assert!(form["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "seizures"));

    let missing = app.get("/api/v1/forms/no-such-form").await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "unknown_form");
}

#[tokio::test]
async fn create_then_read_back_exactly() {
    let app = spawn_app().await;
    let resp = app
        .post_json(
            "/api/v1/records",
            &json!({"form": "boarding-report", "fields": report()}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["fields"], report());
    assert_eq!(created["status"], "draft");
    assert_eq!(created["station"], "BB-01");
    assert_eq!(created["form_version"], 2);
    assert_eq!(created["validation"], json!([]));
    assert_eq!(created["conflicts"], json!({}));
    let id = created["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/records/{id}"));

    let fetched: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn a_draft_may_be_incomplete_and_says_what_is_missing() {
    let app = spawn_app().await;
    let view = app.create(&json!({"vessel_name": "Unknown skiff"})).await;
    let missing: Vec<&str> = view["validation"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "missing")
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    for path in [
        "boarding_time",
        "position",
        "persons_on_board",
        "reason",
        "contraband_found",
        "outcome",
    ] {
        assert!(
            missing.contains(&path),
            "{path} should be reported missing: {missing:?}"
        );
    }
}

#[tokio::test]
async fn submitting_requires_a_complete_valid_record() {
    let app = spawn_app().await;
    let draft = app
        .create(&json!({"vessel_name": "Unknown skiff", "persons_on_board": 2}))
        .await;
    let path = format!("/api/v1/records/{}", draft["id"].as_str().unwrap());

    let before = app.snapshot().await;
    let resp = app.patch_json(&path, &json!({"status": "submitted"})).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "incomplete");
    let paths: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"boarding_time") && paths.contains(&"outcome"),
        "{paths:?}"
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused submit changes nothing"
    );

    let mut complete = report();
    complete["persons_on_board"] = json!(2);
    let resp = app
        .patch_json(&path, &json!({"fields": complete, "status": "submitted"}))
        .await;
    assert_eq!(resp.status(), 200);
    let view: Value = resp.json().await.unwrap();
    assert_eq!(view["status"], "submitted");
    assert_eq!(view["validation"], json!([]));

    // A submitted record stays valid: clearing a required field is refused.
    let resp = app
        .patch_json(&path, &json!({"fields": {"outcome": null}}))
        .await;
    assert_eq!(resp.status(), 422);

    // Skipping review is not a transition the workflow allows.
    let resp = app.patch_json(&path, &json!({"status": "closed"})).await;
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_transition");
}

#[tokio::test]
async fn patch_changes_only_the_named_fields() {
    let app = spawn_app().await;
    let view = app.create(&report()).await;
    let path = format!("/api/v1/records/{}", view["id"].as_str().unwrap());
    let resp = app
        .patch_json(&path, &json!({"fields": {"arrests": 1, "findings": "Catch inspected; undersized lobster seized. Master cautioned."}}))
        .await;
    assert_eq!(resp.status(), 200);
    let patched: Value = resp.json().await.unwrap();
    let mut expected = report();
    expected["arrests"] = json!(1);
    expected["findings"] = json!("Catch inspected; undersized lobster seized. Master cautioned.");
    assert_eq!(patched["fields"], expected);

    let seq = {
        use tideline_sync::DocStore;
        app.records.store().last_seq().unwrap()
    };
    let same = app
        .patch_json(&path, &json!({"fields": {"arrests": 1}}))
        .await;
    assert_eq!(same.status(), 200);
    let seq_after = {
        use tideline_sync::DocStore;
        app.records.store().last_seq().unwrap()
    };
    assert_eq!(
        seq, seq_after,
        "a patch that changes nothing writes nothing"
    );
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..55 {
        let mut r = report();
        r["vessel_name"] = json!(format!("Vessel {i}"));
        ids.push(app.create(&r).await["id"].as_str().unwrap().to_string());
    }
    let sighting = app
        .post_json(
            "/api/v1/records",
            &json!({"form": "vessel-sighting", "fields": {"sighted_at": "2026-11-21T09:00:00Z", "position": {"lat": 12.0, "lon": -61.0}}}),
        )
        .await;
    assert_eq!(sighting.status(), 201);

    let page: Value = app.get("/api/v1/records").await.json().await.unwrap();
    assert_eq!(page["total"], 56);
    assert_eq!(
        page["records"].as_array().unwrap().len(),
        50,
        "default limit is 50"
    );
    assert_eq!(
        page["records"][0]["form"], "vessel-sighting",
        "newest first"
    );

    let reports: Value = app
        .get("/api/v1/records?form=boarding-report&limit=10&offset=50")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reports["total"], 55);
    let got: Vec<&str> = reports["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let oldest_five: Vec<&str> = ids[..5].iter().rev().map(String::as_str).collect();
    assert_eq!(got, oldest_five);

    let none: Value = app
        .get("/api/v1/records?station=LC-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["total"], 0);
    let drafts: Value = app
        .get("/api/v1/records?status=draft&station=BB-01")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(drafts["total"], 56);
    let submitted: Value = app
        .get("/api/v1/records?status=submitted")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(submitted["total"], 0);
}

#[tokio::test]
async fn automerge_bytes_load_anywhere_and_match_the_view() {
    let app = spawn_app().await;
    let view = app.create(&report()).await;
    let id = view["id"].as_str().unwrap();
    app.patch_json(
        &format!("/api/v1/records/{id}"),
        &json!({"fields": {"arrests": 2}}),
    )
    .await;
    let view: Value = app
        .get(&format!("/api/v1/records/{id}"))
        .await
        .json()
        .await
        .unwrap();

    let resp = app.get(&format!("/api/v1/records/{id}/automerge")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    let bytes = resp.bytes().await.unwrap();
    let doc = automerge::AutoCommit::load(&bytes).expect("a plain Automerge file");
    let hydrated = doc.hydrate(automerge::ROOT, None).unwrap();
    let as_json: Value = serde_json::to_value(automerge::AutoSerde::from(&doc)).unwrap();
    assert!(matches!(hydrated, automerge::hydrate::Value::Map(_)));
    assert_eq!(as_json["fields"], view["fields"]);
    assert_eq!(as_json["status"], view["status"]);
    assert_eq!(as_json["meta"]["id"], view["id"]);
    assert_eq!(as_json["meta"]["station"], "BB-01");
    let (_, fields) = doc.get(automerge::ROOT, "fields").unwrap().unwrap();
    let (findings, _) = doc.get(&fields, "findings").unwrap().unwrap();
    assert_eq!(findings, automerge::Value::Object(automerge::ObjType::Text));
}

#[tokio::test]
async fn exports_in_every_format() {
    let app = spawn_app().await;
    let a = app.create(&report()).await;
    let mut second = report();
    second["vessel_name"] = json!("Night Runner");
    second["position"] = json!({"lat": 14.01, "lon": -60.99});
    second["crew"] =
        json!([{"name": "C. Pierre"}, {"name": "D. Auguste, \"Duke\""}, {"name": "E. Noel"}]);
    let b = app.create(&second).await;

    let jsonl = app.get("/api/v1/export?format=jsonl").await;
    assert_eq!(jsonl.status(), 200);
    let text = jsonl.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, vec![b.clone(), a.clone()]);

    let geo: Value = app
        .get("/api/v1/export?format=geojson")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(geo["type"], "FeatureCollection");
    let features = geo["features"].as_array().unwrap();
    assert_eq!(features.len(), 2);
    assert_eq!(
        features[0]["geometry"],
        json!({"type": "Point", "coordinates": [-60.99, 14.01]})
    );
    assert_eq!(features[0]["properties"]["vessel_name"], "Night Runner");

    let csv_text = app
        .get("/api/v1/export?format=csv&form=boarding-report")
        .await
        .text()
        .await
        .unwrap();
    let mut rows = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = rows.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    assert_eq!(&rows[0][col("vessel_name")], "Night Runner");
    assert_eq!(&rows[0][col("position.lat")], "14.01");
    assert_eq!(&rows[0][col("crew_count")], "3");

    let crew_text = app
        .get("/api/v1/export?format=csv&table=crew")
        .await
        .text()
        .await
        .unwrap();
    let mut crew = csv::Reader::from_reader(crew_text.as_bytes());
    assert_eq!(
        crew.headers().unwrap().iter().take(3).collect::<Vec<_>>(),
        vec!["record_id", "index", "name"]
    );
    let crew_rows: Vec<csv::StringRecord> = crew.records().map(Result::unwrap).collect();
    assert_eq!(crew_rows.len(), 5);
    assert_eq!(
        &crew_rows[1][2], "D. Auguste, \"Duke\"",
        "CSV quoting survives a round trip"
    );

    let bad = app.get("/api/v1/export?format=xml").await;
    assert_eq!(bad.status(), 400);
}

/// An export larger than one streamed chunk arrives whole: every record
/// once, each line complete.
#[tokio::test]
async fn a_large_export_streams_every_record_once() {
    let app = spawn_app().await;
    let mut created = std::collections::HashSet::new();
    for n in 0..150 {
        let mut fields = report();
        fields["findings"] = json!(format!(
            "Search {n}: {}",
            "hold and deck checked. ".repeat(20)
        ));
        let view = app.create(&fields).await;
        created.insert(view["id"].as_str().unwrap().to_string());
    }
    let resp = app.get("/api/v1/export?format=jsonl").await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.len() > 3 * 64 * 1024,
        "only {} bytes: not several chunks",
        text.len()
    );
    let exported: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a whole JSON line")["id"].to_string())
        .map(|id| id.trim_matches('"').to_string())
        .collect();
    assert_eq!(exported.len(), 150);
    assert_eq!(
        exported
            .into_iter()
            .collect::<std::collections::HashSet<_>>(),
        created
    );
}

#[tokio::test]
async fn the_favicon_is_served_without_a_session() {
    let app = spawn_app().await;
    let resp = app
        .anonymous
        .get(app.url("/favicon.ico"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    assert!(resp.text().await.unwrap().starts_with("<svg"));
}

/// Without the page's script, Add and Remove post the form; the page then
/// comes back scrolled to the entry (the button's target carries its anchor).
#[tokio::test]
async fn repeat_buttons_bring_the_page_back_at_the_entry_without_script() {
    let app = spawn_app().await;
    let page = app
        .get("/records/new?form=boarding-report")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"formaction="/records/new?form=boarding-report#f-crew-0-" data-add"#),
        "{page}"
    );
    assert!(page.contains("Add crew member"), "{page}");
    let added = app
        .client
        .post(app.url("/records/new?form=boarding-report"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(
            "--XyZ\r\nContent-Disposition: form-data; name=\"_action\"\r\n\r\nadd:crew\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"f.vessel_name\"\r\n\r\nSea Breeze\r\n\
             --XyZ--\r\n",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(added.contains(r#"id="f-crew-0-""#), "{added}");
    assert!(
        added.contains("Crew member <span class=\"n\">1</span>"),
        "{added}"
    );
    assert!(added.contains("Remove crew member"), "{added}");
    assert!(
        added.contains(r#"formaction="/records/new?form=boarding-report#f-crew-1-" data-add"#),
        "{added}"
    );
    // Nothing is stored by adding an entry.
    assert!(app
        .records
        .list(&Default::default(), 10, 0)
        .unwrap()
        .records
        .is_empty());
}

#[tokio::test]
async fn a_record_names_the_person_who_created_it_beside_the_device() {
    let app = spawn_app().await;
    let resp = app
        .post_json(
            "/api/v1/records",
            &json!({"form": "boarding-report", "fields": report()}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let view: Value = resp.json().await.unwrap();
    assert_eq!(view["created_by_person"], "user:tester");
    assert_eq!(
        view["created_by"],
        app.records.identity().device_id.to_string()
    );
}

/// A photo over the limit costs the photo, never the report: the report is
/// saved as a draft and the page names the file, its size and the limit.
#[tokio::test]
async fn a_photo_over_the_limit_leaves_the_report_saved_and_says_why() {
    let app = spawn_app().await;
    let mut body = Vec::new();
    let text = |name: &str, value: &str| {
        format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    body.extend(text("_action", "submit").as_bytes());
    body.extend(text("f.vessel_name", "Heavy Photo").as_bytes());
    body.extend(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file.photos\"; filename=\"deck.jpg\"\r\n\
          Content-Type: image/jpeg\r\n\r\n",
    );
    body.extend(std::iter::repeat_n(0xFFu8, 30 * 1024 * 1024));
    body.extend(b"\r\n");
    body.extend(text("f.findings", "Typed after the photo.").as_bytes());
    body.extend(b"--XyZ--\r\n");
    let resp = app
        .client
        .post(app.url("/records/new?form=boarding-report"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("deck.jpg is 30 MB; a file may be at most 25 MB"),
        "{page}"
    );
    let listed = app.records.list(&Default::default(), 10, 0).unwrap();
    assert_eq!(listed.total, 1, "the report was not saved");
    let view: Value = serde_json::from_str(listed.records[0].get()).unwrap();
    assert_eq!(view["fields"]["vessel_name"], "Heavy Photo");
    assert_eq!(view["fields"]["findings"], "Typed after the photo.");
    assert_eq!(view["status"], "draft");
    assert_eq!(view["attachments"], json!([]));
}
