//! `tideline sync` as an operator runs it against a real upstream process,
//! including an upstream killed in the middle of a sync.

mod common;

use common::{spawn_serve, ServeProcess};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tideline_server::config::{FileConfig, Overrides, Settings};
use tideline_server::open_records;

fn serve(data: &Path, listen: &str) -> ServeProcess {
    let data = data.to_str().expect("utf-8 path");
    spawn_serve(
        &["--station", "BB-01", "--data", data],
        &["--no-auto-sync", "--listen", listen],
    )
}

fn sync(data: &Path, upstream: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("--data")
        .arg(data)
        .args(["sync", "--upstream", upstream])
        .args(extra)
        .output()
        .expect("run tideline sync")
}

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

/// Set up a station's data directory and print an enrolment code for one
/// of its boats, offline, as its admin would before starting it.
fn boat_code(station: &Path) -> String {
    // The directory is the station's (opening it with the station sets that).
    drop(open_records(&settings(station)).unwrap());
    let out = tideline(
        station,
        &[
            "--station",
            "BB-01",
            "admin",
            "enroll-code",
            "--kind",
            "boat",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn enroll(boat: &Path, upstream: &str, code: &str) {
    let out = tideline(boat, &["enroll", "--upstream", upstream, "--code", code]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn settings(data: &Path) -> Settings {
    Settings::merge(
        Overrides {
            data_dir: Some(data.to_path_buf()),
            station: Some("BB-01".into()),
            ..Default::default()
        },
        FileConfig::default(),
    )
    .unwrap()
}

/// Create records directly in a boat's data directory (no server needed).
fn fill(data: &Path, n: usize) {
    let records = open_records(&settings(data)).unwrap();
    for i in 0..n {
        let fields = json!({
            "boarding_time": "2026-11-20T14:05:00Z",
            "position": {"lat": 13.1, "lon": -59.6},
            "vessel_name": format!("Vessel {i}"),
            "persons_on_board": 3,
            "reason": "fisheries",
            "crew": [{"name": "A. Joseph"}, {"name": "B. Charles"}],
            "contraband_found": false,
            "findings": format!("Boarding {i}: {}", "papers and catch inspected; ".repeat(12)),
            "outcome": "released"
        });
        records
            .create(
                tideline_sync::Author::Instance,
                "boarding-report",
                fields.as_object().unwrap(),
            )
            .unwrap();
    }
}

fn local_views(data: &Path) -> Vec<Value> {
    let records = open_records(&settings(data)).unwrap();
    let page = records.list(&Default::default(), 10_000, 0).unwrap();
    page.records
        .iter()
        .map(|r| serde_json::from_str(r.get()).unwrap())
        .collect()
}

fn remote_views(server: &ServeProcess) -> Vec<Value> {
    let page: Value = server
        .client()
        .get(format!("{}/api/v1/records?limit=10000", server.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    page["records"].as_array().unwrap().clone()
}

#[test]
fn sync_reports_what_it_did_and_says_when_the_upstream_is_away() {
    let dir = tempfile::tempdir().unwrap();
    let boat = dir.path().join("boat");
    fill(&boat, 5);
    let station_dir = dir.path().join("station");
    let code = boat_code(&station_dir);
    let station = serve(&station_dir, "127.0.0.1:0");

    // Before enrolling, a sync says what to do.
    let out = sync(&boat, &station.base, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tideline enroll"), "{err}");
    enroll(&boat, &station.base, &code);

    // Nobody listens on a port we just had and released.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = sync(&boat, &format!("http://{free}"), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be reached"), "{err}");

    let status = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("--data")
        .arg(&boat)
        .args(["sync", "status"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let st: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(st["last_error"]
        .as_str()
        .unwrap()
        .contains("cannot be reached"));
    assert_eq!(st["last_success"], Value::Null);
    assert!(st["pending_local_changes"].as_u64().unwrap() >= 5);

    let out = sync(&boat, &station.base, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.starts_with(&format!("synced with {}: pushed 5 record(s)", station.base)),
        "{summary}"
    );
    assert_eq!(remote_views(&station), local_views(&boat));

    let st: Value = serde_json::from_slice(
        &Command::new(env!("CARGO_BIN_EXE_tideline"))
            .arg("--data")
            .arg(&boat)
            .args(["sync", "status"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(st["last_error"], Value::Null);
    assert_eq!(st["last_outcome"]["pushed"], 5);

    // The station's admin revokes the boat, offline on the station's directory.
    let identity = String::from_utf8(tideline(&boat, &["identity"]).stdout).unwrap();
    let boat_id = identity
        .lines()
        .find_map(|l| l.strip_prefix("instance id: "))
        .unwrap()
        .trim()
        .to_string();
    let listen = station.base.trim_start_matches("http://").to_string();
    drop(station);
    let out = tideline(&station_dir, &["admin", "revoke", &boat_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let station = serve(&station_dir, &listen);
    fill(&boat, 1);
    let out = sync(&boat, &station.base, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("revoked"), "{err}");
    // The boat's own records are all still there.
    assert_eq!(local_views(&boat).len(), 6);
    assert_eq!(remote_views(&station).len(), 5);
}

#[test]
fn an_upstream_killed_mid_sync_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let boat = dir.path().join("boat");
    let station_dir = dir.path().join("station");
    fill(&boat, 400);

    let code = boat_code(&station_dir);
    let mut station = serve(&station_dir, "127.0.0.1:0");
    enroll(&boat, &station.base, &code);
    let listen = station.base.trim_start_matches("http://").to_string();
    // Small pages: the sync takes many exchanges, so the kill lands inside it.
    let syncing = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("--data")
        .arg(&boat)
        .args(["sync", "--page-kib", "16", "--upstream", &station.base])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let total = station
            .client()
            .get(format!("{}/api/v1/records?limit=1", station.base))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0);
        if total > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sync never reached the station"
        );
    }
    station.child.kill().unwrap();
    station.child.wait().unwrap();
    let out = syncing.wait_with_output().unwrap();
    assert!(!out.status.success(), "the kill must land mid-sync");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be reached") && err.contains("what was exchanged"),
        "{err}"
    );

    // Same address, same data: the station comes back and the next sync finishes.
    let station = serve(&station_dir, &listen);
    assert!(
        !remote_views(&station).is_empty(),
        "pages acknowledged before the kill survive"
    );
    let out = sync(&boat, &station.base, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote = remote_views(&station);
    assert_eq!(remote.len(), 400);
    assert_eq!(remote, local_views(&boat));
    // A further sync has nothing to do.
    let out = sync(&boat, &station.base, &[]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("pushed 0 record(s) and 0 file(s), pulled 0 record(s)"));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An admin follows the command the enrolment page shows, on a fresh data
/// directory, without knowing the station: the directory takes the code's.
/// A directory stuck as LOCAL with nothing in it is put right the same way;
/// one with records of its own is refused with what to do.
#[test]
fn enrolling_a_fresh_directory_takes_the_codes_station_and_sync_needs_no_upstream_flag() {
    let dir = tempfile::tempdir().unwrap();
    let station_dir = dir.path().join("station");
    let codes: Vec<String> = (0..3).map(|_| boat_code(&station_dir)).collect();
    let station = serve(&station_dir, "127.0.0.1:0");

    let boat = dir.path().join("boat");
    let out = tideline(
        &boat,
        &["enroll", "--upstream", &station.base, "--code", &codes[0]],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("station BB-01"));
    let out = tideline(
        &boat,
        &[
            "record",
            "create",
            "--form",
            "vessel-sighting",
            "--json",
            "-",
        ],
    );
    // No JSON on standard input: refused, but the station is what matters here.
    assert!(!out.status.success());
    let records = open_records(&settings(&boat)).expect("the boat's directory is BB-01's");
    assert_eq!(records.station(), "BB-01");
    drop(records);
    fill(&boat, 2);
    // `tideline sync` finds the upstream it enrolled with.
    let out = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("--data")
        .arg(&boat)
        .arg("sync")
        .env_remove("TIDELINE_UPSTREAM")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(remote_views(&station).len(), 2);

    // Stuck as LOCAL but empty (someone ran a command without --station first).
    let stuck = dir.path().join("stuck");
    drop(open_records(
        &Settings::merge(
            Overrides {
                data_dir: Some(stuck.clone()),
                ..Default::default()
            },
            FileConfig::default(),
        )
        .unwrap(),
    ));
    let out = tideline(
        &stuck,
        &["enroll", "--upstream", &station.base, "--code", &codes[1]],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // LOCAL with records of its own: refused, saying what to do, code not used up.
    let busy = dir.path().join("busy");
    let out = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("--data")
        .arg(&busy)
        .args(["record", "create", "--form", "vessel-sighting", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(
                br#"{"sighted_at": "2026-11-21T09:00:00Z", "position": {"lat": 12.5, "lon": -61.4}, "vessel_name": "Grey Ghost"}"#,
            )?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tideline(
        &busy,
        &["enroll", "--upstream", &station.base, "--code", &codes[2]],
    );
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("BB-01") && said.contains("LOCAL"), "{said}");
}

/// A typo in --data on a command that only reads says so and creates
/// nothing; a start that fails leaves no data directory behind.
#[test]
fn reading_commands_and_failed_starts_create_no_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("boat-dta");
    for args in [
        &["record", "list"][..],
        &["export", "--format", "jsonl"][..],
        &["sync", "status"][..],
        &["check"][..],
    ] {
        let out = tideline(&typo, args);
        assert!(!out.status.success(), "{args:?}");
        let said = stderr(&out);
        assert!(
            said.contains("no Tideline data directory"),
            "{args:?}: {said}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fresh = dir.path().join("fresh");
    let out = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("--data")
        .arg(&fresh)
        .args([
            "serve",
            "--listen",
            &taken.local_addr().unwrap().to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot listen"), "{}", stderr(&out));
    assert!(!fresh.exists(), "a failed start left {}", fresh.display());
}
