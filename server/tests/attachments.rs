//! Attaching photos and documents to records, and reading them back.

mod common;

use common::{add_user, client_with, login, report, spawn_app};
use serde_json::Value;

/// The first bytes of a JPEG, then filler: what matters for the type check.
fn jpeg(n: usize) -> Vec<u8> {
    let mut b = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    b.extend((0..n).map(|i| (i % 251) as u8));
    b
}

fn sha256_hex(bytes: &[u8]) -> String {
    tideline_sync::blobs::BlobHash::of(bytes).to_hex()
}

#[tokio::test]
async fn a_photo_is_attached_checked_by_content_and_served_with_ranges() {
    let app = spawn_app().await;
    let id = app.create(&report()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let photo = jpeg(100_000);
    let url = app.url(&format!(
        "/api/v1/records/{id}/attachments?name=bow.jpg&field=photos"
    ));
    let resp = app
        .client
        .post(&url)
        // The claimed type is ignored; the bytes decide.
        .header("content-type", "text/plain")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let view: Value = resp.json().await.unwrap();
    let hash = sha256_hex(&photo);
    assert_eq!(view["attachments"][0]["sha256"], hash.as_str());
    assert_eq!(view["attachments"][0]["mime"], "image/jpeg");
    assert_eq!(view["attachments"][0]["size"], photo.len());
    assert_eq!(view["attachments"][0]["name"], "bow.jpg");
    assert_eq!(view["fields"]["photos"][0], hash.as_str());

    // The same file again is stored and listed once.
    let again = app
        .client
        .post(&url)
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    let view: Value = again.json().await.unwrap();
    assert_eq!(view["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(view["fields"]["photos"].as_array().unwrap().len(), 1);
    let stored = std::fs::read_dir(app._dir.path().join("attachments").join(&hash[..2]))
        .unwrap()
        .count();
    assert_eq!(stored, 1);

    // Served whole, with its type and an ETag; and by range.
    let blob_url = app.url(&format!("/api/v1/blobs/{hash}"));
    let resp = app.client.get(&blob_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert!(resp.headers().contains_key("etag"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), photo.as_slice());
    let resp = app
        .client
        .get(&blob_url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &photo[1000..2000]);

    // Read back through the record, nothing is pending.
    let view: Value = app
        .get(&format!("/api/v1/records/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["attachments"][0]["pending"], false);
}

#[tokio::test]
async fn wrong_types_oversized_files_and_bad_names_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let id = app.create(&report()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let post = |query: &str, body: Vec<u8>| {
        app.client
            .post(app.url(&format!("/api/v1/records/{id}/attachments?{query}")))
            .header("content-type", "image/jpeg")
            .body(body)
            .send()
    };
    let (before, seq) = app.snapshot().await;
    let resp = post(
        "name=notes.txt",
        b"just some text, claiming to be a photo".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_file_type");
    assert_eq!(
        post("name=x.jpg", jpeg(26 * 1024 * 1024))
            .await
            .unwrap()
            .status(),
        413
    );
    assert_eq!(
        post("name=../../x.jpg", jpeg(10)).await.unwrap().status(),
        400
    );
    assert_eq!(
        post("name=x.jpg&field=vessel_name", jpeg(10))
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(app.snapshot().await, (before, seq));
    assert!(!app
        ._dir
        .path()
        .join("attachments")
        .join(&sha256_hex(&jpeg(10))[..2])
        .exists());
}

#[tokio::test]
async fn a_blob_is_readable_only_through_a_record_in_scope() {
    let app = spawn_app().await;
    let id = app.create(&report()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let photo = jpeg(5_000);
    app.client
        .post(app.url(&format!("/api/v1/records/{id}/attachments?name=a.jpg")))
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    let hash = sha256_hex(&photo);
    // Someone of another station, and a hash nobody references.
    add_user(&app.records, "lc", "analyst", "LC-01");
    let other = client_with(&login(&app.base, "lc").await);
    let url = app.url(&format!("/api/v1/blobs/{hash}"));
    assert_eq!(other.get(&url).send().await.unwrap().status(), 404);
    let unknown = app.url(&format!("/api/v1/blobs/{}", sha256_hex(b"nothing")));
    assert_eq!(app.client.get(&unknown).send().await.unwrap().status(), 404);
    assert_eq!(
        app.client
            .get(app.url("/api/v1/blobs/not-a-hash"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(app.anonymous.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn exports_name_each_record_s_files() {
    let app = spawn_app().await;
    let id = app.create(&report()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let photo = jpeg(3_000);
    app.client
        .post(app.url(&format!("/api/v1/records/{id}/attachments?name=stern.jpg")))
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    let hash = sha256_hex(&photo);
    let export = |format: &'static str| {
        let url = app.url(&format!("/api/v1/export?format={format}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let csv = export("csv").await;
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",attachments"), "{header}");
    assert!(csv.contains(&format!("stern.jpg ({hash})")), "{csv}");
    let geojson: Value = serde_json::from_str(&export("geojson").await).unwrap();
    assert_eq!(
        geojson["features"][0]["properties"]["attachments"][0]["sha256"],
        hash.as_str()
    );
    let jsonl: Value = serde_json::from_str(export("jsonl").await.lines().next().unwrap()).unwrap();
    assert_eq!(jsonl["attachments"][0]["name"], "stern.jpg");
}
