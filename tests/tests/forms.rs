//! Publishing a form version at HQ: it reaches stations and boats by sync;
//! new records use it, records made before keep their version and stay
//! readable and editable; bad publications are refused with a reason.

use serde_json::{json, Value};
use tideline_tests::{add_user, client_with, login, report, Instance};

/// Version 2 of the boarding report: version 1 plus the sea state.
fn boarding_v2() -> Value {
    let mut form: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/forms/boarding-report.json"
    )))
    .unwrap();
    form["version"] = json!(2);
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
    assert_eq!(old["form_version"], 1);
    boat.sync_ok().await;
    station.sync_ok().await;

    add_user(&hq.records, "chief", "admin", "HQ");
    let chief = client_with(&login(&hq.base, "chief").await);
    let (status, body) = publish(&chief, &hq, &boarding_v2()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 2);

    // Refused, each with a reason, and nothing published.
    let mut broken = boarding_v2();
    broken["version"] = json!(3);
    broken["fields"][0]["type"] = json!("banana");
    let (status, body) = publish(&chief, &hq, &broken).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "invalid_form");
    let mut reused = boarding_v2();
    reused["title"] = json!("Boarding report (revised)");
    let (status, body) = publish(&chief, &hq, &reused).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("next version"),
        "{body}"
    );
    let mut older = boarding_v2();
    older["version"] = json!(1);
    let (status, _) = publish(&chief, &hq, &older).await;
    assert_eq!(status, 409);
    // The same version again is no change.
    let (status, _) = publish(&chief, &hq, &boarding_v2()).await;
    assert_eq!(status, 200);
    // Officers do not publish, and neither do stations.
    let (status, _) = publish(&hq.client, &hq, &boarding_v2()).await;
    assert_eq!(status, 403);
    add_user(&station.records, "bbadmin", "admin", "BB-01");
    let bbadmin = client_with(&login(&station.base, "bbadmin").await);
    let (status, body) = publish(&bbadmin, &station, &boarding_v2()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "not_hq");
    // A station's admin with an account on the HQ instance speaks for one
    // station, not the fleet.
    add_user(&hq.records, "bbchief", "admin", "BB-01");
    let bbchief = client_with(&login(&hq.base, "bbchief").await);
    let mut v3 = boarding_v2();
    v3["version"] = json!(3);
    let (status, body) = publish(&bbchief, &hq, &v3).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("HQ's own admins"),
        "{body}"
    );
    let latest: Value = hq
        .client
        .get(hq.url("/api/v1/forms/boarding-report"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["title"], "Boarding report");

    // Down the chain by sync.
    station.sync_ok().await;
    boat.sync_ok().await;
    let on_boat: Value = boat
        .client
        .get(boat.url("/api/v1/forms/boarding-report"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(on_boat["version"], 2);

    // New records use it...
    let mut fields = report("Morning Star");
    fields["sea_state"] = json!("rough");
    let new = boat.create("boarding-report", fields).await;
    assert_eq!(new["form_version"], 2);
    assert_eq!(new["fields"]["sea_state"], "rough");
    // ...the old one keeps version 1, and reads and edits as before.
    let kept = boat.get(&old_id).await;
    assert_eq!(kept["form_version"], 1);
    let edited = boat.patch(&old_id, json!({"arrests": 2})).await;
    assert_eq!(edited["form_version"], 1);
    assert_eq!(edited["fields"]["arrests"], 2);
    // Both reach HQ, each with its version.
    boat.sync_ok().await;
    station.sync_ok().await;
    let new_at_hq = hq.get(new["id"].as_str().unwrap()).await;
    assert_eq!(new_at_hq["form_version"], 2);
    assert_eq!(new_at_hq["validation"], json!([]));
    assert_eq!(hq.get(&old_id).await["fields"]["arrests"], 2);
}
