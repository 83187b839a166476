//! ODK Collect against real instances (OpenRosa, docs/ODK.md): phones get a
//! link, download forms whose hash matches their bytes, submit boardings
//! that become records; resends are idempotent, changed resends refused,
//! split uploads complete, edits merge with what HQ changed meanwhile, and
//! hostile or oversized input is refused with a message the phone shows.

use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use tideline_schemas::{submission, FormRegistry};
use tideline_tests::{add_user, client_with, login, report, Instance};

/// An admin's client on `inst`.
async fn admin(inst: &Instance) -> reqwest::Client {
    add_user(&inst.records, "boss", "admin", inst.records.station());
    client_with(&login(&inst.base, "boss").await)
}

/// Issue a phone for `user` (made an officer of the instance's station).
async fn phone(inst: &Instance, admin: &reqwest::Client, user: &str) -> Value {
    add_user(&inst.records, user, "officer", inst.records.station());
    let resp = admin
        .post(inst.url("/api/v1/phones"))
        .json(&json!({"user": user, "name": "Kestrel 2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

/// A JPEG-looking photo, different for each `seed`.
fn photo(seed: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0];
    bytes.extend((0..len).map(|i| (i as u8).wrapping_mul(seed)));
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A boarding report as Collect would send it, naming `photo` as its photo.
fn boarding_xml(
    fields: &Value,
    instance: &str,
    deprecated: Option<&str>,
    photo: Option<&str>,
) -> String {
    let forms = FormRegistry::builtin();
    let form = forms.latest("boarding-report").unwrap();
    let mut fields: Map<String, Value> = fields.as_object().unwrap().clone();
    if photo.is_some() {
        fields.insert("photos".into(), json!(["photo"]));
    }
    let name = photo.unwrap_or_default().to_string();
    submission::write(form, &fields, instance, deprecated, &|_| name.clone())
}

/// A multipart body as Collect builds it: (part name, file name, type, bytes).
fn multipart(parts: &[(&str, Option<&str>, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----tideline-odk-test-boundary";
    let mut body = Vec::new();
    for (name, file, ctype, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match file {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(
            format!("Content-Disposition: {disposition}\r\nContent-Type: {ctype}\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

struct Reply {
    status: u16,
    openrosa: bool,
    body: String,
}

async fn post(url: &str, parts: &[(&str, Option<&str>, &str, &[u8])]) -> Reply {
    let (ctype, body) = multipart(parts);
    let resp = reqwest::Client::new()
        .post(format!("{url}/submission"))
        .header("content-type", ctype)
        .header("X-OpenRosa-Version", "1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    Reply {
        status: resp.status().as_u16(),
        openrosa: resp
            .headers()
            .get("x-openrosa-version")
            .is_some_and(|v| v == "1.0"),
        body: resp.text().await.unwrap(),
    }
}

async fn submit(url: &str, xml: &str, files: &[(&str, &[u8])]) -> Reply {
    let mut parts: Vec<(&str, Option<&str>, &str, &[u8])> = vec![(
        "xml_submission_file",
        Some("submission.xml"),
        "text/xml",
        xml.as_bytes(),
    )];
    for (name, bytes) in files {
        parts.push((name, Some(name), "image/jpeg", bytes));
    }
    post(url, &parts).await
}

/// The record id in a submission's success message.
fn record_id(reply: &Reply) -> String {
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(reply.openrosa);
    assert!(reply
        .body
        .contains("<OpenRosaResponse xmlns=\"http://openrosa.org/http/response\">"));
    let at = reply.body.find("record ").expect("names the record") + 7;
    reply.body[at..at + 36].to_string()
}

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = reqwest::Client::new()
        .get(url)
        .header("X-OpenRosa-Version", "1.0")
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// The text of the first `<tag>` after `from` in `xml`.
fn element<'a>(xml: &'a str, tag: &str, from: usize) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml[from..].find(&open).expect(tag) + from + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    &xml[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_downloads_forms_submits_and_resends_safely() {
    let dir = tempfile::tempdir().unwrap();
    let station = Instance::start_with("station", dir.path(), "BB-01", |s| {
        s.attachments.max_bytes = 256 * 1024;
    })
    .await;
    let boss = admin(&station).await;
    let issued = phone(&station, &boss, "ann").await;
    let url = issued["server_url"].as_str().unwrap().to_string();
    assert!(url.contains("/v1/key/tlp."), "{url}");
    assert!(issued["qr_svg"].as_str().unwrap().contains("<svg"));

    // The form list: every form, each hash the md5 of the bytes served, stable.
    let (status, headers, list) = get(&format!("{url}/formList")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-openrosa-version"], "1.0");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    let list = String::from_utf8(list).unwrap();
    assert!(list.contains("<xforms xmlns=\"http://openrosa.org/xforms/xformsList\">"));
    let at = list
        .find("<formID>boarding-report</formID>")
        .expect("boarding report listed");
    let hash = element(&list, "hash", at).to_string();
    let download = element(&list, "downloadUrl", at).to_string();
    let (status, _, xform) = get(&download).await;
    assert_eq!(status, 200);
    let md5: String = Md5::digest(&xform)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hash, format!("md5:{md5}"));
    assert_eq!(get(&download).await.2, xform, "the same bytes every time");
    assert!(String::from_utf8_lossy(&xform).contains("<data id=\"boarding-report\" version=\"2\">"));

    // HEAD first, as Collect does: 204 and the size it may send at once.
    let head = reqwest::Client::new()
        .head(format!("{url}/submission"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 204);
    assert_eq!(head.headers()["x-openrosa-version"], "1.0");
    assert_eq!(head.headers()["x-openrosa-accept-content-length"], "262144");

    // A submission becomes a submitted record authored by the person and the phone.
    let deck = photo(3, 2000);
    let fields = report("Sea Breeze");
    let xml = boarding_xml(
        &fields,
        "uuid:11111111-1111-4111-8111-111111111111",
        None,
        Some("deck.jpg"),
    );
    let id = record_id(&submit(&url, &xml, &[("deck.jpg", &deck)]).await);
    let record = station.get(&id).await;
    assert_eq!(record["status"], "submitted", "{record}");
    assert_eq!(record["fields"]["vessel_name"], "Sea Breeze");
    assert_eq!(record["fields"]["crew"], fields["crew"]);
    assert_eq!(record["fields"]["position"], fields["position"]);
    assert_eq!(record["fields"]["photos"], json!([sha256_hex(&deck)]));
    assert_eq!(record["attachments"][0]["name"], "deck.jpg");
    assert_eq!(
        record["odk_instance"],
        "uuid:11111111-1111-4111-8111-111111111111"
    );
    assert_eq!(record["created_by_person"], "user:ann (phone Kestrel 2)");
    assert_eq!(station.blob(&sha256_hex(&deck)).await, (200, deck.clone()));

    // The answer was lost and Collect sends it again: nothing new.
    let again = submit(&url, &xml, &[("deck.jpg", &deck)]).await;
    assert_eq!(record_id(&again), id);
    assert!(again.body.contains("Already received"), "{}", again.body);
    assert_eq!(station.all().await.len(), 1);

    // The same instance with other answers is refused, and readable.
    let changed = boarding_xml(
        &report("Other Boat"),
        "uuid:11111111-1111-4111-8111-111111111111",
        None,
        Some("deck.jpg"),
    );
    let refused = submit(&url, &changed, &[]).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.openrosa);
    assert!(
        refused.body.contains("already sent with other answers"),
        "{}",
        refused.body
    );
    assert_eq!(
        station.get(&id).await["fields"]["vessel_name"],
        "Sea Breeze"
    );

    // A split upload: the XML first, marked incomplete, then the file.
    let hull = photo(7, 3000);
    let split = boarding_xml(
        &report("Kingfisher"),
        "uuid:22222222-2222-4222-8222-222222222222",
        None,
        Some("hull.jpg"),
    );
    let first = post(
        &url,
        &[
            (
                "xml_submission_file",
                Some("submission.xml"),
                "text/xml",
                split.as_bytes(),
            ),
            ("*isIncomplete*", None, "text/plain", b"yes"),
        ],
    )
    .await;
    let split_id = record_id(&first);
    assert!(
        first.body.contains("1 file(s) still to come"),
        "{}",
        first.body
    );
    assert!(station.get(&split_id).await["fields"]
        .get("photos")
        .is_none());
    let last = submit(&url, &split, &[("hull.jpg", &hull)]).await;
    assert_eq!(record_id(&last), split_id);
    let done = station.get(&split_id).await;
    assert_eq!(done["fields"]["photos"], json!([sha256_hex(&hull)]));
    assert_eq!(done["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(station.all().await.len(), 2, "one record per instance");

    // Too large a photo: refused, saying how large one may be.
    let huge = photo(5, 300 * 1024);
    let big = boarding_xml(
        &report("Big"),
        "uuid:33333333-3333-4333-8333-333333333333",
        None,
        Some("big.jpg"),
    );
    let refused = submit(&url, &big, &[("big.jpg", &huge)]).await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(
        refused.body.contains("a file may be at most 256 KB"),
        "{}",
        refused.body
    );

    // Hostile XML: refused, nothing stored.
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><data id="boarding-report" version="2"><vessel_name>&lol2;</vessel_name><meta><instanceID>uuid:4</instanceID></meta></data>"#;
    let refused = submit(&url, laughs, &[]).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("DTD"), "{}", refused.body);
    let deep = format!(
        "<data id=\"boarding-report\" version=\"2\">{}{}</data>",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    );
    let refused = submit(&url, &deep, &[]).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("deep"), "{}", refused.body);
    let flood = format!(
        "<data id=\"boarding-report\" version=\"2\"><findings>{}</findings></data>",
        "x".repeat(50 * 1024 * 1024)
    );
    let refused = submit(&url, &flood, &[]).await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(refused.body.contains("at most"), "{}", refused.body);
    let unknown =
        boarding_xml(&report("X"), "uuid:5", None, None).replace("boarding-report", "no-such-form");
    assert_eq!(submit(&url, &unknown, &[]).await.status, 422);
    assert_eq!(station.all().await.len(), 2);

    // A wrong token, and a revoked phone: 401 with what to do.
    let wrong = url.replace("/v1/key/tlp.", "/v1/key/tlp.0");
    let (status, headers, body) = get(&format!("{wrong}/formList")).await;
    assert_eq!(status, 401);
    assert_eq!(headers["x-openrosa-version"], "1.0");
    assert!(String::from_utf8_lossy(&body).contains("QR code"));
    let revoked = boss
        .post(station.url(&format!(
            "/api/v1/phones/{}/revoke",
            issued["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, _, body) = get(&format!("{url}/formList")).await;
    assert_eq!(status, 401);
    assert!(String::from_utf8_lossy(&body).contains("revoked"));
    assert_eq!(submit(&url, &xml, &[]).await.status, 401);

    // Over plain HTTP the root paths never ask for a password.
    let (status, headers, body) = get(&station.url("/formList")).await;
    assert_eq!(status, 401);
    assert!(headers.get("www-authenticate").is_none());
    assert!(String::from_utf8_lossy(&body).contains("QR code"));

    // Phones are for people who submit records.
    add_user(&station.records, "ana", "analyst", "BB-01");
    let resp = boss
        .post(station.url("/api/v1/phones"))
        .json(&json!({"user": "ana"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_edit_merges_with_what_hq_changed_meanwhile() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let station = Instance::start_under("station", dirs[1].path(), "BB-01", &hq, &hq.base).await;
    let boss = admin(&station).await;
    let url = phone(&station, &boss, "ann").await["server_url"]
        .as_str()
        .unwrap()
        .to_string();
    let original = report("Sea Breeze");
    let first = "uuid:aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
    let id = record_id(&submit(&url, &boarding_xml(&original, first, None, None), &[]).await);
    station.sync_ok().await;

    // HQ corrects two answers; the station hears of it.
    hq.patch(
        &id,
        json!({"vessel_name": "Sea Breeze II", "persons_on_board": 5}),
    )
    .await;
    station.sync_ok().await;

    // The phone edits what it sent: one answer HQ also changed, one it did not.
    let mut edited = original.clone();
    edited["persons_on_board"] = json!(6);
    edited["outcome"] = json!("warning_issued");
    let second = "uuid:bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
    let reply = submit(&url, &boarding_xml(&edited, second, Some(first), None), &[]).await;
    assert_eq!(record_id(&reply), id);
    assert!(reply.body.contains("Edit applied"), "{}", reply.body);
    assert_eq!(station.all().await.len(), 1);

    for inst in [&station, &hq] {
        if std::ptr::eq(inst, &hq) {
            station.sync_ok().await;
        }
        let record = inst.get(&id).await;
        assert_eq!(
            record["fields"]["vessel_name"], "Sea Breeze II",
            "{}: HQ's edit stays",
            inst.name
        );
        assert_eq!(
            record["fields"]["outcome"], "warning_issued",
            "{}",
            inst.name
        );
        let conflict = record["conflicts"]["persons_on_board"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: a conflict on persons_on_board: {record}", inst.name));
        let mut values: Vec<i64> = conflict
            .iter()
            .map(|c| c["value"].as_i64().unwrap())
            .collect();
        values.sort();
        assert_eq!(values, [5, 6], "{}", inst.name);
        // Each side is named by the device that wrote it, as for sync; the
        // history says who was on it.
        let mut authors: Vec<&str> = conflict
            .iter()
            .map(|c| c["author"].as_str().unwrap())
            .collect();
        authors.sort();
        let mut devices = [
            hq.records.identity().device_id.simple().to_string(),
            station.records.identity().device_id.simple().to_string(),
        ];
        devices.sort();
        assert_eq!(authors, devices, "{}", inst.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_with_their_own_account_over_https_at_the_root() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (ca, cert, key) = tideline_tests::certificates(dirs[1].path());
    let station = Instance::start_tls("station", dirs[0].path(), "BB-01", &cert, &key, &ca).await;
    add_user(&station.records, "ann", "officer", "BB-01");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let list = station.url("/formList");

    // Collect answers a Basic challenge over HTTPS.
    let resp = client.get(&list).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    let resp = client
        .get(&list)
        .basic_auth("ann", Some("not the password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));

    let resp = client
        .get(&list)
        .basic_auth("ann", Some(tideline_tests::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let download = element(&body, "downloadUrl", 0).to_string();
    assert_eq!(download, station.url("/forms/boarding-report.xml"));
    let xform = client
        .get(&download)
        .basic_auth("ann", Some(tideline_tests::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(xform.status(), 200);

    let xml = boarding_xml(
        &report("Over HTTPS"),
        "uuid:cccccccc-cccc-4ccc-8ccc-cccccccccccc",
        None,
        None,
    );
    let (ctype, body) = multipart(&[(
        "xml_submission_file",
        Some("submission.xml"),
        "text/xml",
        xml.as_bytes(),
    )]);
    let resp = client
        .post(station.url("/submission"))
        .basic_auth("ann", Some(tideline_tests::PASSWORD))
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let record = &station.all().await[0];
    assert_eq!(record["created_by_person"], "user:ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_upload_is_a_draft_until_its_required_photo_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let hq = Instance::start("hq", dir.path(), "HQ").await;
    let boss = admin(&hq).await;
    let form = json!({"id": "photo-check", "version": 1, "title": "Photo check", "fields": [
        {"name": "vessel_name", "label": "Vessel name", "type": "text", "required": true},
        {"name": "photo", "label": "Photo of the hull", "type": "image", "required": true}
    ]});
    let resp = boss
        .post(hq.url("/api/v1/forms"))
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let url = phone(&hq, &boss, "ann").await["server_url"]
        .as_str()
        .unwrap()
        .to_string();
    let mut registry = FormRegistry::new();
    registry
        .insert(tideline_schemas::Form::parse(&form.to_string()).unwrap())
        .unwrap();
    let fields = json!({"vessel_name": "Kingfisher", "photo": "hash"});
    let xml = submission::write(
        registry.latest("photo-check").unwrap(),
        fields.as_object().unwrap(),
        "uuid:dddddddd-dddd-4ddd-8ddd-dddddddddddd",
        None,
        &|_| "hull.jpg".to_string(),
    );
    let first = post(
        &url,
        &[
            (
                "xml_submission_file",
                Some("submission.xml"),
                "text/xml",
                xml.as_bytes(),
            ),
            ("*isIncomplete*", None, "text/plain", b"yes"),
        ],
    )
    .await;
    let id = record_id(&first);
    let draft = hq.get(&id).await;
    assert_eq!(draft["status"], "draft", "{draft}");
    assert_eq!(draft["validation"][0]["path"], "photo", "{draft}");
    let hull = photo(9, 1000);
    record_id(&submit(&url, &xml, &[("hull.jpg", &hull)]).await);
    let done = hq.get(&id).await;
    assert_eq!(done["status"], "submitted", "{done}");
    assert_eq!(done["fields"]["photo"], sha256_hex(&hull));
}
