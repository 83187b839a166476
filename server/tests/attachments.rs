//! Attaching photos and documents to records, and reading them back.

mod common;

use common::{report, spawn_app};
use serde_json::Value;
use tideline_server::test_support::{add_user, client_with, login};

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

/// An entry page's post, without files, as a browser with the script sends it.
fn entry_post(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend(b"--XyZ--\r\n");
    body
}

async fn patch_chunk(
    client: &reqwest::Client,
    app: &common::TestApp,
    id: &str,
    offset: usize,
    chunk: &[u8],
) -> reqwest::Response {
    client
        .patch(app.url(&format!("/api/v1/uploads/{id}?offset={offset}")))
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_photo_uploads_in_pieces_resumes_where_it_stopped_and_joins_its_report_when_saved() {
    let app = spawn_app().await;
    let photo = jpeg(2_500_000);
    let hash = sha256_hex(&photo);
    let begun = app
        .post_json(
            "/api/v1/uploads",
            &serde_json::json!({"name": "bow.jpg", "size": photo.len(), "field": "photos",
                                "form": "boarding-report"}),
        )
        .await;
    assert_eq!(begun.status(), 201);
    let begun: Value = begun.json().await.unwrap();
    let id = begun["id"].as_str().unwrap().to_string();
    let chunk = begun["chunk_bytes"].as_u64().unwrap() as usize;
    assert_eq!(chunk, 1024 * 1024);

    let first = patch_chunk(&app.client, &app, &id, 0, &photo[..chunk]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.json::<Value>().await.unwrap()["held"], chunk);
    // The answer was lost on the way; the same chunk comes again and is
    // told where to carry on, and nothing is written twice.
    let again = patch_chunk(&app.client, &app, &id, 0, &photo[..chunk]).await;
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["details"]["held"],
        chunk
    );
    let asked: Value = app
        .get(&format!("/api/v1/uploads/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(asked["held"], chunk);
    assert_eq!(asked["complete"], false);

    // Nobody else can see or add to it.
    add_user(&app.records, "pc.noel", "officer", "BB-01");
    let other = client_with(&login(&app.base, "pc.noel").await);
    let url = app.url(&format!("/api/v1/uploads/{id}"));
    assert_eq!(other.get(&url).send().await.unwrap().status(), 404);
    assert_eq!(
        patch_chunk(&other, &app, &id, chunk, &photo[chunk..2 * chunk])
            .await
            .status(),
        404
    );

    let second = patch_chunk(&app.client, &app, &id, chunk, &photo[chunk..2 * chunk]).await;
    assert_eq!(second.status(), 200);
    let last = patch_chunk(&app.client, &app, &id, 2 * chunk, &photo[2 * chunk..]).await;
    assert_eq!(last.status(), 200);
    let done: Value = last.json().await.unwrap();
    assert_eq!(done["sha256"], hash.as_str());
    assert_eq!(
        done["attached"], false,
        "no record yet: it waits for the save"
    );
    // Not readable through the API until a record holds it.
    assert_eq!(
        app.get(&format!("/api/v1/blobs/{hash}")).await.status(),
        404
    );

    // Drawn again from the browser's copy (after a session ended, say),
    // the page still holds the photo, named, and stores nothing.
    let restored = app
        .client
        .post(app.url("/records/new?form=boarding-report"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(entry_post(&[
            ("_action", "restore"),
            ("f.vessel_name", "Photo First"),
            ("f.photos", &hash),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), 200);
    let page = restored.text().await.unwrap();
    assert!(
        page.contains(&format!(
            r#"<input type="hidden" name="f.photos" value="{hash}">"#
        )) && page.contains("bow.jpg")
            && page.contains("uploaded; attached when the report is saved"),
        "{page}"
    );
    assert_eq!(
        app.records.list(&Default::default(), 10, 0).unwrap().total,
        0
    );

    // The report's post names the photo by its hash and carries no file.
    let resp = app
        .client
        .post(app.url("/records/new?form=boarding-report"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(entry_post(&[
            ("_action", "draft"),
            ("f.vessel_name", "Photo First"),
            ("f.photos", &hash),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "followed to the record page");
    let listed = app.records.list(&Default::default(), 10, 0).unwrap();
    assert_eq!(listed.total, 1);
    let view: Value = serde_json::from_str(listed.records[0].get()).unwrap();
    assert_eq!(view["fields"]["vessel_name"], "Photo First");
    assert_eq!(view["fields"]["photos"], serde_json::json!([hash]));
    assert_eq!(view["attachments"][0]["name"], "bow.jpg");
    assert_eq!(view["attachments"][0]["mime"], "image/jpeg");
    assert_eq!(view["attachments"][0]["size"], photo.len());
    let served = app.get(&format!("/api/v1/blobs/{hash}")).await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), photo.as_slice());
    // Attached, the upload is gone.
    assert_eq!(
        app.get(&format!("/api/v1/uploads/{id}")).await.status(),
        404
    );

    // On a saved record, a finished upload is attached at once.
    let record = view["id"].as_str().unwrap();
    let stern = jpeg(40_000);
    let begun: Value = app
        .post_json(
            "/api/v1/uploads",
            &serde_json::json!({"name": "stern.jpg", "size": stern.len(), "field": "photos",
                                "record": record}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = begun["id"].as_str().unwrap();
    let done: Value = patch_chunk(&app.client, &app, id, 0, &stern)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["attached"], true);
    let view: Value = app
        .get(&format!("/api/v1/records/{record}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["fields"]["photos"][1], sha256_hex(&stern).as_str());
    assert_eq!(view["attachments"][1]["name"], "stern.jpg");
}

#[tokio::test]
async fn an_upload_too_big_of_a_refused_type_or_long_gone_is_named_and_changes_nothing() {
    let app = spawn_app().await;
    let (before, seq) = app.snapshot().await;
    let begin = |name: &str, size: usize, field: &str| {
        let body = serde_json::json!({"name": name, "size": size, "field": field,
                                      "form": "boarding-report"});
        let client = app.client.clone();
        let url = app.url("/api/v1/uploads");
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let big = begin("big.jpg", 30 * 1024 * 1024, "photos").await;
    assert_eq!(big.status(), 413);
    let big: Value = big.json().await.unwrap();
    assert_eq!(big["error"], "file_too_large");
    assert_eq!(
        big["message"],
        "big.jpg is 30 MB; a file may be at most 25 MB."
    );
    assert_eq!(begin("x.jpg", 10, "vessel_name").await.status(), 422);
    assert_eq!(begin("../x.jpg", 10, "photos").await.status(), 400);

    // A text file is refused on its first piece, and forgotten.
    let notes = b"not a photo at all, only words".repeat(100);
    let begun: Value = begin("notes.jpg", notes.len(), "photos")
        .await
        .json()
        .await
        .unwrap();
    let id = begun["id"].as_str().unwrap();
    let refused = patch_chunk(&app.client, &app, id, 0, &notes[..1000]).await;
    assert_eq!(refused.status(), 415);
    let refused: Value = refused.json().await.unwrap();
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("notes.jpg: this file's content is not one of the accepted types"),
        "{refused}"
    );
    assert_eq!(
        app.get(&format!("/api/v1/uploads/{id}")).await.status(),
        404
    );
    assert_eq!(app.snapshot().await, (before, seq));

    // A report naming a photo that is not on the server is saved without
    // it, and the page says so.
    let resp = app
        .client
        .post(app.url("/records/new?form=boarding-report"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(entry_post(&[
            ("_action", "draft"),
            ("f.vessel_name", "Lost Photo"),
            ("f.photos", &sha256_hex(b"never uploaded")),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("A photo chosen earlier is no longer on the server; choose it again."),
        "{page}"
    );
    let listed = app.records.list(&Default::default(), 10, 0).unwrap();
    let view: Value = serde_json::from_str(listed.records[0].get()).unwrap();
    assert_eq!(view["fields"]["vessel_name"], "Lost Photo");
    assert!(view["fields"].get("photos").is_none(), "{view}");
}
