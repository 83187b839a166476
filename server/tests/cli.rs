//! The command line as an operator uses it: the real binary on a data directory.

mod common;

use common::spawn_serve;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tideline(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tideline"));
    cmd.arg("--data").arg(data).args(args);
    cmd.env_remove("TIDELINE_STATION")
        .env_remove("TIDELINE_CONFIG");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run tideline")
}

/// Run a command on a data directory this process had open a moment ago:
/// sled's background threads let go of the directory's lock shortly after
/// the handle is dropped, so a command refused as "in use" is run again
/// until a deadline.
fn run_once_released(cmd: &mut Command) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = run(cmd);
        let in_use = String::from_utf8_lossy(&out.stderr).contains("in use");
        if !in_use || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn ok_json(out: Output) -> Value {
    assert!(
        out.status.success(),
        "tideline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn sighting() -> Value {
    json!({"sighted_at": "2026-11-21T09:00:00Z", "position": {"lat": 12.5, "lon": -61.4}, "vessel_name": "Grey Ghost", "speed_knots": 22.5})
}

#[test]
fn create_list_show_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("sighting.json");
    std::fs::write(&file, sighting().to_string()).unwrap();

    let created = ok_json(run(tideline(
        &data,
        &["record", "create", "--form", "vessel-sighting", "--json"],
    )
    .arg(&file)));
    assert_eq!(created["fields"], sighting());
    let id = created["id"].as_str().unwrap().to_string();

    // From standard input.
    let mut child = tideline(
        &data,
        &[
            "record",
            "create",
            "--form",
            "vessel-sighting",
            "--json",
            "-",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            json!({"sighted_at": "2026-11-22T10:00:00Z", "position": {"lat": 13.0, "lon": -61.0}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let second = ok_json(child.wait_with_output().unwrap());

    let listed = run(&mut tideline(&data, &["record", "list"]));
    assert!(listed.status.success());
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.contains(&id) && text.contains("Grey Ghost"), "{text}");
    assert!(text.contains("2 of 2 record(s)"), "{text}");

    let as_json = ok_json(run(&mut tideline(
        &data,
        &["record", "list", "--json", "--limit", "1"],
    )));
    assert_eq!(as_json["total"], 2);
    assert_eq!(as_json["records"][0]["id"], second["id"], "newest first");

    let shown = ok_json(run(&mut tideline(&data, &["record", "show", &id])));
    assert_eq!(shown, created);

    let geo = ok_json(run(&mut tideline(
        &data,
        &["export", "--format", "geojson"],
    )));
    assert_eq!(geo["features"].as_array().unwrap().len(), 2);

    let out = dir.path().join("boardings.csv");
    let status = run(tideline(&data, &["export", "--format", "csv", "--out"]).arg(&out));
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let main = std::fs::read_to_string(&out).unwrap();
    assert_eq!(main.lines().count(), 3, "header and two rows: {main}");
    assert!(main.contains("Grey Ghost"));
    for table in ["crew", "seizures"] {
        let path = dir.path().join(format!("boardings.{table}.csv"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("record_id,index,"), "{table}: {text}");
    }
}

#[test]
fn bad_input_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"sighted_at\": ").unwrap();
    let out = run(tideline(
        &data,
        &["record", "create", "--form", "vessel-sighting", "--json"],
    )
    .arg(&bad_json));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a JSON object"));

    let invalid = dir.path().join("invalid.json");
    std::fs::write(
        &invalid,
        json!({"position": {"lat": 99, "lon": 0}, "heading_deg": 400}).to_string(),
    )
    .unwrap();
    let out = run(tideline(
        &data,
        &["record", "create", "--form", "vessel-sighting", "--json"],
    )
    .arg(&invalid));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("position.lat") && err.contains("heading_deg"),
        "{err}"
    );

    let out = run(&mut tideline(&data, &["record", "show", "not-an-id"]));
    assert!(!out.status.success());
    let out = run(&mut tideline(&data, &["export", "--format", "xml"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jsonl, csv or geojson"));

    let listed = ok_json(run(&mut tideline(&data, &["record", "list", "--json"])));
    assert_eq!(listed["total"], 0);
}

#[test]
fn a_data_dir_in_use_is_refused_and_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("sighting.json");
    std::fs::write(&file, sighting().to_string()).unwrap();
    ok_json(run(tideline(
        &data,
        &["record", "create", "--form", "vessel-sighting", "--json"],
    )
    .arg(&file)));

    let mut server = spawn_serve(
        &["--data", data.to_str().unwrap()],
        &["--listen", "127.0.0.1:0"],
    );
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.base
    );

    for args in [vec!["record", "list"], vec!["export", "--format", "jsonl"]] {
        let out = run(&mut tideline(&data, &args));
        assert!(!out.status.success(), "{args:?} must fail while serve runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("in use by a running `tideline serve`"),
            "{err}"
        );
    }
    let out = run(tideline(
        &data,
        &["record", "create", "--form", "vessel-sighting", "--json"],
    )
    .arg(&file));
    assert!(!out.status.success());

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let listed = ok_json(run(&mut tideline(&data, &["record", "list", "--json"])));
    assert_eq!(
        listed["total"], 1,
        "the record made before is still there, and only it"
    );
}

#[test]
fn flags_override_environment_override_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tideline.toml");
    std::fs::write(&config, "station = \"AA-01\"\n").unwrap();
    let file = dir.path().join("sighting.json");
    std::fs::write(&file, sighting().to_string()).unwrap();
    // Each case on a fresh data directory: a directory keeps its first station.
    let create = |data: &str| {
        let mut cmd = tideline(
            &dir.path().join(data),
            &["record", "create", "--form", "vessel-sighting", "--json"],
        );
        cmd.arg(&file).arg("--config").arg(&config);
        cmd
    };
    assert_eq!(ok_json(run(&mut create("a")))["station"], "AA-01");
    assert_eq!(
        ok_json(run(create("b").env("TIDELINE_STATION", "BB-02")))["station"],
        "BB-02"
    );
    assert_eq!(
        ok_json(run(create("c")
            .env("TIDELINE_STATION", "BB-02")
            .args(["--station", "CC-03"])))["station"],
        "CC-03"
    );
    std::fs::write(&config, "station = \"AA-01\"\ncolour = \"blue\"\n").unwrap();
    let out = run(&mut create("d"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"));
}

#[test]
fn a_data_dir_keeps_the_station_it_was_set_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("sighting.json");
    std::fs::write(&file, sighting().to_string()).unwrap();
    let mut first = tideline(
        &data,
        &[
            "--station",
            "BB-01",
            "record",
            "create",
            "--form",
            "vessel-sighting",
            "--json",
        ],
    );
    assert_eq!(ok_json(run(first.arg(&file)))["station"], "BB-01");
    // Without a station the directory's own is used...
    let mut again = tideline(
        &data,
        &["record", "create", "--form", "vessel-sighting", "--json"],
    );
    assert_eq!(ok_json(run(again.arg(&file)))["station"], "BB-01");
    // ...and a different one is refused, changing nothing.
    let out = run(tideline(
        &data,
        &[
            "--station",
            "LC-01",
            "record",
            "create",
            "--form",
            "vessel-sighting",
            "--json",
        ],
    )
    .arg(&file));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("belongs to station BB-01"));
    let listed = ok_json(run(&mut tideline(&data, &["record", "list", "--json"])));
    assert_eq!(listed["total"], 2);
}

/// Rewrite the first audit entry on disk, as someone with the data
/// directory could: `from` becomes `to` in its text.
fn alter_first_audit_entry(store: &tideline_sync::SledStore, from: &str, to: &str) {
    use tideline_sync::store::{Commit, StateWrite};
    use tideline_sync::DocStore;
    let key = [b"audit/e/".as_slice(), &1u64.to_be_bytes()].concat();
    let entry = store.get_state(&key).unwrap().unwrap();
    let altered = String::from_utf8(entry).unwrap().replace(from, to);
    store
        .commit(Commit {
            records: vec![],
            state: vec![StateWrite {
                key,
                value: Some(altered.into_bytes()),
            }],
        })
        .unwrap();
}

fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tideline");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn identity_users_and_an_audit_log_that_shows_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // The instance key is made at first start, owner-only.
    let out = run(&mut tideline(&data, &["identity"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no identity yet"));
    // First opened as BB-01's (a command that only reads would not create it).
    drop(tideline_server::open_records(&common::settings(&data)).unwrap());
    let out = run(&mut tideline(&data, &["identity"]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("instance id: ") && text.contains("public key: "),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("identity.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");

    // Users: the password comes from standard input.
    let create = |name: &str, role: &str, password: &str| {
        with_stdin(
            &mut tideline(
                &data,
                &["admin", "create-user", "--username", name, "--role", role],
            ),
            &format!("{password}\n"),
        )
    };
    let out = create("alice", "officer", "correct horse battery");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("officer user alice for station BB-01"));
    let refused = [
        create("alice", "admin", "correct horse battery"),
        create("bob", "officer", "short"),
        create("bob", "root", "correct horse battery"),
        create("Bob", "officer", "correct horse battery"),
    ];
    for out in &refused {
        assert!(!out.status.success());
        assert!(!out.stderr.is_empty());
    }
    assert!(create("carol", "admin", "another long password")
        .status
        .success());

    let out = run(&mut tideline(&data, &["audit", "verify"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 entries"));

    // Alter the first entry on disk: verify fails and names it.
    {
        let store = tideline_sync::SledStore::open(&data).unwrap();
        alter_first_audit_entry(&store, "officer", "admin");
    }
    let out = run(&mut tideline(&data, &["audit", "verify"]));
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("entry 1: the entry was altered"), "{text}");
}

#[test]
fn attachment_collection_removes_only_old_unreferenced_files() {
    use tideline_sync::blobs::BlobStore;
    use tideline_sync::records::{Attachment, Author};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (kept, orphan) = {
        let records = tideline_server::open_records(&common::settings(&data)).unwrap();
        let id = records
            .create(
                Author::Instance,
                "vessel-sighting",
                sighting().as_object().unwrap(),
            )
            .unwrap()
            .id;
        let blobs = BlobStore::open(&data).unwrap();
        let kept = blobs.put(b"\xff\xd8\xff photo of the bow").unwrap();
        let attachment = Attachment {
            sha256: kept,
            name: "bow.jpg".into(),
            mime: "image/jpeg".into(),
            size: 21,
        };
        records
            .attach(Author::Instance, &id, &attachment, None)
            .unwrap();
        let orphan = blobs.put(b"an upload whose record never came").unwrap();
        // Both files are older than the grace period.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
        for h in [kept, orphan] {
            std::fs::File::options()
                .write(true)
                .open(blobs.path(&h).unwrap())
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        (kept, orphan)
    };
    let out = run(&mut tideline(&data, &["attachments", "gc", "--dry-run"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!("would remove {orphan}")), "{text}");
    assert!(!text.contains(&kept.to_hex()), "{text}");
    let blobs = BlobStore::open(&data).unwrap();
    assert!(blobs.has(&orphan));
    let out = run(&mut tideline(&data, &["attachments", "gc"]));
    assert!(out.status.success());
    assert!(!blobs.has(&orphan));
    assert!(blobs.has(&kept), "a referenced file was removed");
}

#[test]
fn a_zip_export_holds_the_records_and_their_files_under_their_hashes() {
    use std::io::Read;
    use tideline_sync::blobs::{BlobHash, BlobStore};
    use tideline_sync::records::{Attachment, Author};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let photo = b"\xff\xd8\xff photo of the seized catch".to_vec();
    let lost = b"\xff\xd8\xff a photo this instance never received".to_vec();
    {
        let records = tideline_server::open_records(&common::settings(&data)).unwrap();
        let blobs = BlobStore::open(&data).unwrap();
        for (bytes, keep) in [(&photo, true), (&lost, false)] {
            let id = records
                .create(
                    Author::Instance,
                    "vessel-sighting",
                    sighting().as_object().unwrap(),
                )
                .unwrap()
                .id;
            let hash = blobs.put(bytes).unwrap();
            let a = Attachment {
                sha256: hash,
                name: "catch.jpg".into(),
                mime: "image/jpeg".into(),
                size: bytes.len() as u64,
            };
            records.attach(Author::Instance, &id, &a, None).unwrap();
            if !keep {
                std::fs::remove_file(blobs.path(&hash).unwrap()).unwrap();
            }
        }
    }
    let out_path = dir.path().join("court.zip");
    let out = run(tideline(&data, &["export", "--format", "zip", "--out"]).arg(&out_path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("2 record(s), 1 file(s), 1 referenced file(s) not on this instance"),
        "{said}"
    );

    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out_path).unwrap()).unwrap();
    let mut read = |name: &str| {
        let mut buf = Vec::new();
        zip.by_name(name).unwrap().read_to_end(&mut buf).unwrap();
        buf
    };
    assert_eq!(
        String::from_utf8(read("records.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    let hash = BlobHash::of(&photo).to_hex();
    let file = read(&format!("files/{hash}"));
    assert_eq!(
        BlobHash::of(&file).to_hex(),
        hash,
        "the file is the one recorded"
    );
    let index = String::from_utf8(read("attachments.csv")).unwrap();
    assert!(
        index.contains(&format!("{hash},catch.jpg,image/jpeg,{},yes", photo.len())),
        "{index}"
    );
    assert!(
        index.contains(&format!(
            "{},catch.jpg,image/jpeg,{},no",
            BlobHash::of(&lost),
            lost.len()
        )),
        "{index}"
    );
    assert!(!read("README.txt").is_empty());
    // No half-written archive is left beside it.
    assert!(!dir.path().join("court.zip.partial").exists());
}

#[test]
fn logs_can_be_json_lines_for_log_shippers() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = tideline(
        &data,
        &["--log-format", "json", "serve", "--listen", "127.0.0.1:0"],
    )
    .env("RUST_LOG", "info")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("listening on") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no address printed"
        );
    }
    let base = line.trim().trim_start_matches("listening on ").to_string();
    reqwest::blocking::get(format!("{base}/healthz")).unwrap();
    // SIGTERM: a clean stop, which is logged too.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(messages.contains(&"tideline serving"), "{messages:?}");
    assert!(messages.contains(&"tideline stopped"), "{messages:?}");
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
}

#[test]
fn check_names_damaged_documents_files_and_audit_entries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("sighting.json");
    std::fs::write(&file, sighting().to_string()).unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let made = ok_json(run(tideline(
            &data,
            &["record", "create", "--form", "vessel-sighting", "--json"],
        )
        .arg(&file)));
        ids.push(made["id"].as_str().unwrap().to_string());
    }
    let out = with_stdin(
        &mut tideline(
            &data,
            &[
                "admin",
                "create-user",
                "--username",
                "alice",
                "--role",
                "officer",
            ],
        ),
        "correct horse battery\n",
    );
    assert!(out.status.success());
    let photo = [&[0xFF, 0xD8, 0xFF][..], &[7u8; 500]].concat();
    let hash = tideline_sync::blobs::BlobStore::open(&data)
        .unwrap()
        .put(&photo)
        .unwrap()
        .to_hex();

    let out = run(&mut tideline(&data, &["check"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("records: 2 checked") && text.contains("attachments: 1 file(s)"),
        "{text}"
    );
    assert!(text.contains("no problems found"), "{text}");

    // Damage one of each: a document, a file, an audit entry.
    {
        use tideline_sync::store::{DocWrite, RecordWrite};
        use tideline_sync::{DocStore, SledStore};
        // One handle for both: sled releases its lock a moment after a close.
        let store = SledStore::open(&data).unwrap();
        let id: tideline_schemas::RecordId = ids[0].parse().unwrap();
        store
            .write(RecordWrite {
                id,
                doc: DocWrite::Replace(b"not an automerge document".to_vec()),
                view: store.view(&id).unwrap().unwrap(),
                summary: store.summary(&id).unwrap().unwrap(),
            })
            .unwrap();
        alter_first_audit_entry(&store, "alice", "mallory");
    }
    std::fs::write(
        data.join("attachments").join(&hash[..2]).join(&hash),
        b"swapped",
    )
    .unwrap();

    let out = run_once_released(&mut tideline(&data, &["check"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("record {}: the document does not load", ids[0])),
        "{text}"
    );
    assert!(!text.contains(&format!("record {}:", ids[1])), "{text}");
    assert!(
        text.contains(&format!("attachment {hash}: its content does not match")),
        "{text}"
    );
    assert!(text.contains("audit entry 1:"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("problem(s)"));
}

#[test]
fn phones_are_issued_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(tideline_server::open_records(&common::settings(&data)).unwrap());
    for (name, role) in [("ann", "officer"), ("ana", "analyst")] {
        let out = with_stdin(
            &mut tideline(
                &data,
                &["admin", "create-user", "--username", name, "--role", role],
            ),
            "a long enough password\n",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let qr = dir.path().join("phone.svg");
    let out = run(&mut tideline(
        &data,
        &[
            "admin",
            "phone",
            "add",
            "--user",
            "ann",
            "--name",
            "Kestrel 2",
            "--url",
            "https://192.168.8.1:8443",
            "--qr",
            qr.to_str().unwrap(),
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("server URL: https://192.168.8.1:8443/v1/key/tlp.")
            && text.contains("/projects/BB-01"),
        "{text}"
    );
    assert!(std::fs::read_to_string(&qr).unwrap().contains("<svg"));
    let id = text
        .lines()
        .next()
        .and_then(|l| l.rsplit('(').next())
        .map(|s| s.trim_end_matches(')').to_string())
        .unwrap();

    let out = run(&mut tideline(
        &data,
        &[
            "admin",
            "phone",
            "add",
            "--user",
            "ana",
            "--url",
            "https://x",
        ],
    ));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only officers and supervisors"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list = || {
        let out = run(&mut tideline(&data, &["admin", "phone", "list"]));
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = list();
    assert!(
        listed.contains(&id) && listed.contains("phone Kestrel 2") && !listed.contains("REVOKED"),
        "{listed}"
    );
    let out = run(&mut tideline(&data, &["admin", "phone", "revoke", &id]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(list().contains("REVOKED"));
}
