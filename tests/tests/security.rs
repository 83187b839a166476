//! Devices and authorship across real instances: a boat cannot push changes
//! written as another device, a revoked boat is refused with a clear message
//! while its own records stay usable, and an instance that never enrolled is
//! told how to.

use automerge::ActorId;
use serde_json::{json, Value};
use tideline_schemas::{FormRegistry, RecordId};
use tideline_server::auth::attest::InstanceAttestor;
use tideline_server::auth::InstanceKey;
use tideline_sync::engine::sign_request;
use tideline_sync::protocol::{DocChanges, SyncRequest};
use tideline_sync::record::{RecordDoc, RecordMeta};
use tideline_tests::{add_user, certificates, client_with, login, report, Instance};

async fn audit_actions(station: &Instance) -> Vec<Value> {
    add_user(&station.records, "adam", "admin", "BB-01");
    let admin = client_with(&login(&station.base, "adam").await);
    let body: Value = admin
        .get(station.url("/api/v1/audit?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_boat_cannot_push_changes_written_as_another_device() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat1 =
        Instance::start_under("boat1", dirs[1].path(), "BB-01", &station, &station.base).await;
    let boat2 =
        Instance::start_under("boat2", dirs[2].path(), "BB-01", &station, &station.base).await;

    // boat2 writes a record but signs its change with boat1's actor.
    let forms = FormRegistry::builtin();
    let form = forms.latest("boarding-report").unwrap();
    let boat1_actor = ActorId::from(*boat1.records.identity().device_id.as_bytes());
    let meta = RecordMeta::new(RecordId::new(), form, "BB-01", "boat1");
    let mut doc = RecordDoc::create(
        boat1_actor,
        &meta,
        form,
        report("Forged").as_object().unwrap(),
        0,
    )
    .unwrap();
    let boat2_id = boat2.records.identity().device_id;
    let mut request = SyncRequest {
        instance: *boat2_id.as_bytes(),
        station: "BB-01".into(),
        push: vec![DocChanges {
            id: meta.id.to_string(),
            changes: doc
                .changes_since(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect(),
            document: Vec::new(),
        }],
        ..Default::default()
    };
    // Signed with boat2's own key, as a boat turned hostile would: the
    // signature is boat2's, the change claims to be boat1's.
    let key = InstanceKey::load(&boat2.settings.data_dir).unwrap();
    sign_request(
        &mut request,
        &InstanceAttestor::new(&key, boat2.records.store().as_ref()),
    );
    let resp = boat2.post_sync(&station, &request).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing was applied"),
        "{body}"
    );
    assert!(
        station.all().await.is_empty(),
        "the forged record was stored"
    );

    // Naming boat1 as the sender with boat2's credential fails too.
    let mut as_boat1 = request.clone();
    as_boat1.instance = *boat1.records.identity().device_id.as_bytes();
    let resp = boat2.post_sync(&station, &as_boat1).await;
    assert_eq!(resp.status(), 403);

    let refused: Vec<Value> = audit_actions(&station)
        .await
        .into_iter()
        .filter(|e| e["action"] == "sync.refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["actor"], format!("device:{boat2_id}"));
    assert_eq!(refused[0]["target"], meta.id.to_string());

    // Honest syncs still work, including a record one boat edits after the other made it.
    let made = boat1.create("boarding-report", report("Sea Breeze")).await;
    let id = made["id"].as_str().unwrap();
    boat1.sync_ok().await;
    boat2.sync_ok().await;
    boat2.patch(id, json!({"arrests": 1})).await;
    boat2.sync_ok().await;
    assert_eq!(station.get(id).await["fields"]["arrests"], 1);
}

#[tokio::test]
async fn a_revoked_boat_is_refused_and_keeps_its_records() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let boat =
        Instance::start_under("boat", dirs[1].path(), "BB-01", &station, &station.base).await;
    boat.create("boarding-report", report("Before")).await;
    boat.sync_ok().await;

    add_user(&station.records, "adam", "admin", "BB-01");
    let admin = client_with(&login(&station.base, "adam").await);
    let device = boat.records.identity().device_id;
    let resp = admin
        .post(station.url(&format!("/api/v1/devices/{device}/revoke")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    boat.create("boarding-report", report("After")).await;
    let (status, body) = boat.sync_now().await;
    assert_eq!(status, 502, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("revoked") && message.contains("403"),
        "{message}"
    );
    // Offline work goes on.
    assert_eq!(boat.all().await.len(), 2);
    assert_eq!(station.all().await.len(), 1);
    let actions: Vec<Value> = audit_actions(&station).await;
    assert!(actions
        .iter()
        .any(|e| e["action"] == "device.revoke" && e["target"] == device.to_string()));
}

#[tokio::test]
async fn an_instance_that_never_enrolled_is_told_how_to() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let station = Instance::start("station", dirs[0].path(), "BB-01").await;
    let settings =
        tideline_tests::settings(dirs[1].path(), "127.0.0.1:0", "BB-01", Some(&station.base));
    let records = tideline_server::open_records(&settings).unwrap();
    let outcome = tokio::task::spawn_blocking(move || {
        let blobs = tideline_sync::blobs::BlobStore::open(&settings.data_dir).unwrap();
        let key = tideline_server::auth::InstanceKey::load(&settings.data_dir).unwrap();
        tideline_server::upstream::sync_once(
            &records,
            &key,
            &blobs,
            settings.upstream.as_deref().unwrap(),
            &tideline_server::upstream::http_client(None),
            1 << 20,
            &Default::default(),
            |_| {},
        )
    })
    .await
    .unwrap();
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("tideline enroll"), "{err}");

    // A made-up credential is refused by the upstream, not mistaken for a session.
    let resp = reqwest::Client::new()
        .post(station.url("/sync/v1"))
        .bearer_auth(format!("tld.{}.nothing", uuid_like()))
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_enrolled");
}

fn uuid_like() -> String {
    RecordId::new().to_string()
}

#[tokio::test]
async fn a_boat_syncs_with_its_station_over_tls() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (ca, cert, key) = certificates(dirs[2].path());
    let station = Instance::start_tls("station", dirs[0].path(), "BB-01", &cert, &key, &ca).await;
    assert!(station.base.starts_with("https://"));
    let boat = Instance::start_under_ca(
        "boat",
        dirs[1].path(),
        "BB-01",
        &station,
        &station.base,
        &ca,
    )
    .await;
    let made = boat.create("boarding-report", report("Over TLS")).await;
    let outcome = boat.sync_ok().await;
    assert_eq!(outcome["pushed"], 1);
    let id = made["id"].as_str().unwrap();
    assert_eq!(station.get(id).await["fields"]["vessel_name"], "Over TLS");

    // Plain HTTP to the TLS port gets nowhere, and a client that does not
    // trust the CA refuses the station's certificate.
    let plain = station.base.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err());
    let err = reqwest::get(format!("{}/healthz", station.base))
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err}");

    // Session cookies are Secure over TLS.
    let resp = station
        .client
        .post(station.url("/api/v1/login"))
        .json(&json!({"username": "tester", "password": tideline_tests::PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
}
