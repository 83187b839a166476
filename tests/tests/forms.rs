//! Publishing a form version at HQ: it reaches stations and boats by sync;
//! new records use it, records made before keep their version and stay
//! readable and editable; bad publications are refused with a reason.

use serde_json::{json, Value};
use tideline_tests::{add_user, client_with, login, patrol_xlsform, report, Instance};

/// Version 3 of the boarding report: version 2 plus the sea state.
fn boarding_v3() -> Value {
    let mut form: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/forms/boarding-report.v2.json"
    )))
    .unwrap();
    form["version"] = json!(3);
    form["fields"].as_array_mut().unwrap().push(json!({
        "name": "sea_state",
        "label": "Sea state",
        "type": "select_one",
        "choices": [
            {"value": "calm", "label": "Calm"},
            {"value": "moderate", "label": "Moderate"},
            {"value": "rough", "label": "Rough"}
        ]
    }));
    form
}

async fn publish(client: &reqwest::Client, inst: &Instance, form: &Value) -> (u16, Value) {
    let resp = client
        .post(inst.url("/api/v1/forms"))
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_published_at_hq_reaches_the_boats_and_old_records_keep_theirs() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let station = Instance::start_under("station", dirs[1].path(), "BB-01", &hq, &hq.base).await;
    let boat =
        Instance::start_under("boat", dirs[2].path(), "BB-01", &station, &station.base).await;
    let old = boat.create("boarding-report", report("Sea Breeze")).await;
    let old_id = old["id"].as_str().unwrap().to_string();
    assert_eq!(old["form_version"], 2);
    boat.sync_ok().await;
    station.sync_ok().await;

    add_user(&hq.records, "chief", "admin", "HQ");
    let chief = client_with(&login(&hq.base, "chief").await);
    let (status, body) = publish(&chief, &hq, &boarding_v3()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 3);

    // Refused, each with a reason, and nothing published.
    let mut broken = boarding_v3();
    broken["version"] = json!(4);
    broken["fields"][0]["type"] = json!("banana");
    let (status, body) = publish(&chief, &hq, &broken).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_form");
    let mut reused = boarding_v3();
    reused["title"] = json!("Boarding report (revised)");
    let (status, body) = publish(&chief, &hq, &reused).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("next version"),
        "{body}"
    );
    let mut older = boarding_v3();
    older["version"] = json!(2);
    let (status, _) = publish(&chief, &hq, &older).await;
    assert_eq!(status, 409);
    // The same version again is no change.
    let (status, _) = publish(&chief, &hq, &boarding_v3()).await;
    assert_eq!(status, 200);
    // Officers do not publish, and neither do stations.
    let (status, _) = publish(&hq.client, &hq, &boarding_v3()).await;
    assert_eq!(status, 403);
    add_user(&station.records, "bbadmin", "admin", "BB-01");
    let bbadmin = client_with(&login(&station.base, "bbadmin").await);
    let (status, body) = publish(&bbadmin, &station, &boarding_v3()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "not_hq");
    // A station's admin with an account on the HQ instance speaks for one
    // station, not the fleet.
    add_user(&hq.records, "bbchief", "admin", "BB-01");
    let bbchief = client_with(&login(&hq.base, "bbchief").await);
    let mut v4 = boarding_v3();
    v4["version"] = json!(4);
    let (status, body) = publish(&bbchief, &hq, &v4).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("HQ's own admins"),
        "{body}"
    );
    let latest: Value = hq.get_json("/api/v1/forms/boarding-report").await;
    assert_eq!(latest["version"], 3);
    assert_eq!(latest["title"], "Boarding report");

    // Down the chain by sync.
    station.sync_ok().await;
    boat.sync_ok().await;
    let on_boat: Value = boat.get_json("/api/v1/forms/boarding-report").await;
    assert_eq!(on_boat["version"], 3);

    // New records use it...
    let mut fields = report("Morning Star");
    fields["sea_state"] = json!("rough");
    let new = boat.create("boarding-report", fields).await;
    assert_eq!(new["form_version"], 3);
    assert_eq!(new["fields"]["sea_state"], "rough");
    // ...the old one keeps version 2, and reads and edits as before.
    let kept = boat.get(&old_id).await;
    assert_eq!(kept["form_version"], 2);
    let edited = boat.patch(&old_id, json!({"arrests": 2})).await;
    assert_eq!(edited["form_version"], 2);
    assert_eq!(edited["fields"]["arrests"], 2);
    // Both reach HQ, each with its version.
    boat.sync_ok().await;
    station.sync_ok().await;
    let new_at_hq = hq.get(new["id"].as_str().unwrap()).await;
    assert_eq!(new_at_hq["form_version"], 3);
    assert_eq!(new_at_hq["validation"], json!([]));
    assert_eq!(hq.get(&old_id).await["fields"]["arrests"], 2);
}

async fn import(
    client: &reqwest::Client,
    inst: &Instance,
    bytes: Vec<u8>,
    multipart: bool,
) -> (u16, Value) {
    let request = client.post(inst.url("/api/v1/forms/import"));
    let request = if multipart {
        // As a browser's file input sends it.
        let boundary = "tideline-test-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"patrol.xlsx\"\r\n\
             Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        request
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
    } else {
        request.body(bytes)
    };
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xlsform_imported_at_hq_reaches_the_boats_with_its_skip_logic() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let boat = Instance::start_under("boat", dirs[1].path(), "BB-01", &hq, &hq.base).await;
    add_user(&hq.records, "chief", "admin", "HQ");
    let chief = client_with(&login(&hq.base, "chief").await);

    // Refused with the cell, and nothing published.
    let broken = patrol_xlsform(
        "2026120201",
        &[vec!["calculate", "total", "", "", "", "", ""]],
    );
    let (status, body) = import(&chief, &hq, broken, false).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_xlsform");
    assert_eq!(
        body["message"],
        "survey sheet, row 6, column A (type): calculate is not supported yet; remove the row or make it a note"
    );
    let missing = hq
        .client
        .get(hq.url("/api/v1/forms/patrol-check"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // Officers do not publish.
    let (status, _) = import(&hq.client, &hq, patrol_xlsform("2026120201", &[]), false).await;
    assert_eq!(status, 403);

    let (status, form) = import(&chief, &hq, patrol_xlsform("2026120201", &[]), true).await;
    assert_eq!(status, 201, "{form}");
    assert_eq!(
        (form["id"].as_str(), form["version"].as_u64()),
        (Some("patrol-check"), Some(1))
    );
    assert_eq!(form["source_version"], "2026120201");
    // The same workbook again changes nothing; a new one is the next version.
    let (status, _) = import(&chief, &hq, patrol_xlsform("2026120201", &[]), false).await;
    assert_eq!(status, 200);
    let (status, form) = import(&chief, &hq, patrol_xlsform("2026120202", &[]), false).await;
    assert_eq!(status, 201, "{form}");
    assert_eq!(form["version"], 2);

    boat.sync_ok().await;
    // On the boat: the detail is required only when contraband was found, an
    // answer to it is cleared when it does not apply, and the cross-field
    // constraint speaks in the form's words.
    let saved = boat
        .create(
            "patrol-check",
            json!({"persons": 3, "contraband": "no", "contraband_detail": "typed, then no"}),
        )
        .await;
    assert_eq!(saved["form_version"], 2);
    assert!(
        saved["fields"]
            .get("contraband_detail")
            .is_none_or(Value::is_null),
        "{saved}"
    );
    assert_eq!(saved["validation"], json!([]), "{saved}");
    let resp = boat
        .client
        .post(boat.url("/api/v1/records"))
        .json(&json!({"form": "patrol-check", "fields": {"persons": 1, "contraband": "yes", "arrests": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["details"],
        json!([{"path": "arrests", "kind": "constraint", "message": "Cannot arrest more people than are on board"}]),
        "{body}"
    );
    let draft = boat
        .create("patrol-check", json!({"persons": 1, "contraband": "yes"}))
        .await;
    let missing: Vec<&str> = draft["validation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["contraband_detail"], "{draft}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_workbook_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Instance::start("hq", dir.path(), "HQ").await;
    add_user(&hq.records, "chief", "admin", "HQ");
    let chief = client_with(&login(&hq.base, "chief").await);
    let good = patrol_xlsform("1", &[]);
    let truncated = good[..good.len() / 2].to_vec();
    let mut flipped = good.clone();
    for i in (100..flipped.len()).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    for (what, bytes) in [
        ("text", b"type,name,label\ntext,a,A\n".to_vec()),
        ("nothing", Vec::new()),
        ("half a workbook", truncated),
        ("a damaged workbook", flipped),
    ] {
        let (status, body) = import(&chief, &hq, bytes.clone(), false).await;
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["error"], "invalid_xlsform", "{what}: {body}");
        let (status, body) = import(&chief, &hq, bytes, true).await;
        assert_eq!(status, 422, "{what} as multipart: {body}");
    }
    let forms: Value = hq.get_json("/api/v1/forms").await;
    assert_eq!(forms["forms"].as_array().unwrap().len(), 2, "{forms}");
    // The server is unharmed: the good workbook still imports.
    let (status, body) = import(&chief, &hq, good, false).await;
    assert_eq!(status, 201, "{body}");
}
