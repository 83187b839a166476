//! ODK's own tools against a live instance: ODK Validate (JavaRosa, from the
//! pyxform wheel) accepts every served XForm, and the ODK Web Forms engine
//! (`@getodk/xforms-engine`, in Node, tests/odk/collect.mjs) loads each one,
//! fills a form (position, several choices, two crew, a photo), refuses a
//! constraint violation, and submits as Collect does; the submission becomes
//! the expected record. `.ci/run` installs Node's packages, Java and pyxform
//! and sets TIDELINE_REQUIRE_ODK, so in CI a missing tool fails, not skips.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use tideline_tests::{add_user, client_with, login, Instance};

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("odk")
}

/// ODK Validate's jar inside the installed pyxform, if Java and pyxform are here.
fn validator() -> Option<PathBuf> {
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, pyxform; print(os.path.join(os.path.dirname(pyxform.__file__), 'validators', 'odk_validate', 'bin', 'ODK_Validate.jar'))",
        ])
        .output()
        .ok()?;
    let jar = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (java && out.status.success() && jar.is_file()).then_some(jar)
}

/// Whether the tools are here; without them the test says so and skips,
/// unless TIDELINE_REQUIRE_ODK is set.
fn tools() -> Option<PathBuf> {
    let engine = harness()
        .join("node_modules/@getodk/xforms-engine")
        .is_dir()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    match (engine, validator()) {
        (true, Some(jar)) => Some(jar),
        _ if std::env::var_os("TIDELINE_REQUIRE_ODK").is_some() => panic!(
            "node with tests/odk's packages (cd tests/odk && npm ci), java and pyxform \
             (pip install -r tests/xlsform/requirements.txt) are required here"
        ),
        _ => {
            eprintln!(
                "SKIPPED odk tools: needs node with `npm ci` in tests/odk, java, and pyxform"
            );
            None
        }
    }
}

/// A form with what the engine must fill: a position, several choices, a
/// repeat, a photo, and a constraint.
fn check_form() -> Value {
    json!({
        "id": "odk-check", "version": 1, "title": "Patrol check",
        "fields": [
            {"name": "vessel_name", "label": "Vessel name", "type": "text", "required": true},
            {"name": "position", "label": "Position", "type": "geopoint", "required": true},
            {"name": "gear", "label": "Gear aboard", "type": "select_multiple", "choices": [
                {"value": "nets", "label": "Nets"}, {"value": "lines", "label": "Lines"},
                {"value": "traps", "label": "Traps"}]},
            {"name": "persons", "label": "Persons aboard", "type": "integer",
             "constraint": {"min": 0, "message": "Persons aboard cannot be negative."}},
            {"name": "crew", "label": "Crew", "type": "repeat", "fields": [
                {"name": "name", "label": "Name", "type": "text", "required": true},
                {"name": "age", "label": "Age", "type": "integer"}]},
            {"name": "photo", "label": "Photo", "type": "image"}
        ]
    })
}

fn node(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new("node")
        .arg(harness().join("collect.mjs"))
        .args(args)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), json, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odk_tools_accept_served_forms_and_their_submissions_become_records() {
    let Some(jar) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hq = Instance::start("hq", dir.path(), "HQ").await;
    add_user(&hq.records, "boss", "admin", "HQ");
    add_user(&hq.records, "ann", "officer", "HQ");
    let boss = client_with(&login(&hq.base, "boss").await);
    let published = boss
        .post(hq.url("/api/v1/forms"))
        .body(check_form().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201);
    let issued: Value = boss
        .post(hq.url("/api/v1/phones"))
        .json(&json!({"user": "ann"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = issued["server_url"].as_str().unwrap().to_string();

    // Every served form loads in the engine with its hash right...
    let server = url.clone();
    let (ok, loaded, log) =
        tokio::task::spawn_blocking(move || node(&["load", "--server", &server]))
            .await
            .unwrap();
    assert!(ok, "{loaded}\n{log}");
    let forms = loaded["forms"].as_array().unwrap();
    assert!(forms.len() >= 3, "{loaded}");
    for f in forms {
        assert_eq!(f["hashOk"], true, "{f}");
        assert_eq!(f["loaded"], true, "{f}");
    }
    // ...and passes ODK Validate.
    for f in forms {
        let id = f["formID"].as_str().unwrap();
        let xml = reqwest::get(format!("{url}/forms/{id}.xml"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let path = dir.path().join(format!("{id}.xml"));
        std::fs::write(&path, &xml).unwrap();
        let out = Command::new("java")
            .arg("-jar")
            .arg(&jar)
            .arg(&path)
            .output()
            .expect("run ODK Validate");
        assert!(
            out.status.success(),
            "ODK Validate refuses {id}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Filled by the engine, a violation refused, submitted as Collect does.
    let photo = dir.path().join("deck.jpg");
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0];
    jpeg.extend((0..4000u32).map(|i| (i % 251) as u8));
    std::fs::write(&photo, &jpeg).unwrap();
    let answers = dir.path().join("answers.json");
    std::fs::write(
        &answers,
        json!({
            "/data/vessel_name": "Morning Star",
            "/data/position": "13.9094 -60.9789 12 5",
            "/data/gear": "nets traps",
            "/data/persons": "2",
            "/data/crew[1]/name": "J. Baptiste",
            "/data/crew[1]/age": "44",
            "/data/crew[2]/name": "K. Joseph",
        })
        .to_string(),
    )
    .unwrap();
    let args: Vec<String> = [
        "fill",
        "--server",
        &url,
        "--form",
        "odk-check",
        "--answers",
        answers.to_str().unwrap(),
        "--image",
        &format!("/data/photo={}", photo.display()),
        "--violate",
        "/data/persons=-1",
        "--post",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, filled, log) = tokio::task::spawn_blocking(move || {
        node(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(ok, "{filled}\n{log}");
    assert_eq!(filled["violation"]["reported"], true, "{filled}");
    assert_eq!(
        filled["violation"]["message"], "Persons aboard cannot be negative.",
        "{filled}"
    );
    assert_eq!(filled["posted"]["head"]["status"], 204, "{filled}");
    assert_eq!(filled["posted"]["status"], 201, "{filled}");

    let records = hq.all().await;
    assert_eq!(records.len(), 1);
    let record = hq.get(records[0]["id"].as_str().unwrap()).await;
    let fields = &record["fields"];
    assert_eq!(fields["vessel_name"], "Morning Star");
    assert_eq!(fields["position"], json!({"lat": 13.9094, "lon": -60.9789}));
    assert_eq!(fields["gear"], json!(["nets", "traps"]));
    assert_eq!(fields["persons"], 2);
    assert_eq!(
        fields["crew"],
        json!([{"name": "J. Baptiste", "age": 44}, {"name": "K. Joseph"}])
    );
    let hash = fields["photo"].as_str().expect("the photo's hash");
    assert_eq!(hq.blob(hash).await, (200, jpeg));
    assert_eq!(record["status"], "submitted", "{record}");
    assert_eq!(
        record["odk_instance"].as_str(),
        filled["instanceID"].as_str()
    );
}
