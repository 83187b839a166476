//! Upgrade safety: a data directory carries its format version; a binary
//! migrates an older directory and refuses a newer one without touching it.
//!
//! `fixtures/data-format-0` was written by the binary of 2026-11-28, before
//! directories carried a version (format 0): station BB-01, an officer, and
//! three boarding reports. Its identity key is a test key and nothing else.
//!
//! `fixtures/data-format-1` was written by the binary of 2026-12-02 (format
//! 1, snapshots DEFLATEd by Automerge's default save): station BB-01, an
//! officer, three boarding reports with 600 characters of findings, one of
//! them edited four times over the API, so its document is a snapshot and
//! four chunks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tideline(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("TIDELINE_STATION")
        .env_remove("TIDELINE_CONFIG")
        .output()
        .expect("run tideline")
}

/// A private copy of the fixture, with the permissions git does not keep.
fn fixture(into: &Path) -> PathBuf {
    fixture_named(into, "data-format-0")
}

fn fixture_named(into: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let data = into.join("data");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(
        data.join("identity.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    data
}

/// sled releases a directory's lock a moment after its last handle closes
/// (its flusher thread ends on its own): retry opening, with a deadline.
fn open_sled(dir: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open {}: {e}", dir.display()),
        }
    }
}

/// Run the binary, retrying while the directory is still locked by this
/// test's own sled handle that just closed.
fn tideline_when_free(data: &Path, args: &[&str]) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = tideline(data, args);
        let busy = String::from_utf8_lossy(&out.stderr).contains("in use");
        if !busy || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tideline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_directory_from_before_format_versions_is_migrated_and_every_record_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    let listed = stdout(&tideline(&data, &["record", "list"]));
    for vessel in ["Sea Breeze", "Morning Star", "Blue Marlin"] {
        assert!(listed.contains(vessel), "{listed}");
    }
    assert!(listed.contains("3 of 3"), "{listed}");
    // Each document loads (show reads the Automerge document's view) and
    // still takes edits.
    let ids: Vec<String> = listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.len() == 36)
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        let shown: serde_json::Value =
            serde_json::from_str(&stdout(&tideline(&data, &["record", "show", id]))).unwrap();
        assert_eq!(shown["station"], "BB-01");
        assert_eq!(shown["fields"]["persons_on_board"], 3);
    }
    let edit = dir.path().join("r.json");
    std::fs::write(
        &edit,
        r#"{"vessel_name": "New Arrival", "persons_on_board": 2}"#,
    )
    .unwrap();
    stdout(&tideline(
        &data,
        &[
            "record",
            "create",
            "--form",
            "boarding-report",
            "--json",
            edit.to_str().unwrap(),
        ],
    ));
    assert!(stdout(&tideline(&data, &["record", "list"])).contains("4 of 4"));
}

#[test]
fn a_format_1_directory_gets_plain_snapshots_and_keeps_every_edit() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_named(dir.path(), "data-format-1");
    let stored_docs = |data: &Path| {
        let db = open_sled(data);
        let records = db.open_tree("records").unwrap();
        let docs: Vec<Vec<u8>> = records
            .scan_prefix(b"d")
            .map(|kv| kv.unwrap().1.to_vec())
            .collect();
        let chunks = records.scan_prefix(b"c").count();
        (docs, chunks)
    };
    let (before, chunks_before) = stored_docs(&data);
    assert_eq!(
        (before.len(), chunks_before),
        (3, 4),
        "the fixture as written"
    );
    assert!(
        before
            .iter()
            .any(|d| tideline_sync::integrity::plain_document(d).is_none()),
        "format 1 snapshots are DEFLATEd"
    );
    let listed = stdout(&tideline_when_free(&data, &["record", "list"]));
    assert!(listed.contains("3 of 3"), "{listed}");
    let (after, chunks_after) = stored_docs(&data);
    assert_eq!((after.len(), chunks_after), (3, 0), "chunks folded in");
    for doc in &after {
        assert!(tideline_sync::integrity::plain_document(doc).is_some());
    }
    // The edited record shows its last edit, from the rewritten document.
    let edited = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|id| id.len() == 36 && id.starts_with("01a2356b"))
        .expect("the edited record is listed")
        .to_string();
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(&tideline(&data, &["record", "show", &edited]))).unwrap();
    assert_eq!(shown["fields"]["vessel_name"], "Fixture Vessel edit 4");
    let checked = tideline(&data, &["check"]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
}

#[test]
fn a_directory_from_a_newer_binary_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    // Open it once (now the current format), then pretend a later binary wrote it.
    stdout(&tideline(&data, &["record", "list"]));
    {
        let db = open_sled(&data);
        db.open_tree("meta")
            .unwrap()
            .insert("format_version", "99")
            .unwrap();
        db.flush().unwrap();
    }
    let before = snapshot(&data);
    let out = tideline_when_free(&data, &["record", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("newer Tideline") && err.contains("format 99"),
        "{err}"
    );
    let served = tideline_when_free(&data, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!served.status.success(), "serve must not start either");
    assert!(snapshot(&data) == before, "nothing stored changed");
}

/// Everything stored: every tree's keys and values (sled rewrites its own
/// snapshot file whenever it opens, so files are the wrong thing to compare),
/// and the key file.
fn snapshot(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut all = Vec::new();
    {
        let db = open_sled(dir);
        for name in db.tree_names() {
            for entry in db.open_tree(&name).unwrap().iter() {
                let (k, v) = entry.unwrap();
                all.push((name.to_vec(), k.to_vec(), v.to_vec()));
            }
        }
    }
    all.push((
        b"identity.key".to_vec(),
        Vec::new(),
        std::fs::read(dir.join("identity.key")).unwrap(),
    ));
    all
}
