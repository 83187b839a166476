//! Backup and restore on the real binary: a backup taken over the API while
//! the instance keeps serving and writing holds every record acknowledged
//! before it started; a damaged backup is refused and restores nothing.

mod common;

use common::{report, spawn_serve};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tideline_server::test_support::PASSWORD;

fn tideline(data: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("TIDELINE_STATION")
        .env_remove("TIDELINE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_backup_during_writes_restores_every_record_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = tideline(
        &data,
        &[
            "--station",
            "BB-01",
            "admin",
            "create-user",
            "--username",
            "boss",
            "--role",
            "admin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(admin.status.success());
    let server = spawn_serve(
        &["--data", data.to_str().unwrap()],
        &["--listen", "127.0.0.1:0", "--no-auto-sync"],
    );

    // Officers keep writing throughout.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, http, url) = (
            acked.clone(),
            stop.clone(),
            server.client(),
            format!("{}/api/v1/records", server.base),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let resp = http
                    .post(&url)
                    .json(&json!({"form": "boarding-report", "fields": report()}))
                    .send()
                    .unwrap();
                assert_eq!(resp.status(), 201);
                let v: Value = resp.json().unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push(v["id"].as_str().unwrap().to_string());
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 30 {
        assert!(Instant::now() < deadline, "the writer made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }

    let boss = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/login", server.base))
        .json(&json!({"username": "boss", "password": PASSWORD}))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let before: Vec<String> = acked.lock().unwrap().clone();
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/backup", server.base))
        .bearer_auth(&boss)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().unwrap();
    let after = acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // Officers may not take backups.
    let refused = server
        .client()
        .get(format!("{}/api/v1/backup", server.base))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403);
    let file = dir.path().join("instance.backup");
    std::fs::write(&file, &bytes).unwrap();

    let restored = dir.path().join("restored");
    let out = tideline(&restored, &["restore", "--in", file.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tideline(&restored, &["check"], "");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tideline(&restored, &["export", "--format", "jsonl"], "");
    assert!(out.status.success());
    let ids: std::collections::HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for id in &before {
        assert!(
            ids.contains(id),
            "record {id}, acknowledged before the backup, is missing"
        );
    }
    assert!(
        ids.len() <= after + 1,
        "{} restored, {after} ever acknowledged",
        ids.len()
    );
    eprintln!(
        "{} acknowledged before the backup, {} restored, {after} acknowledged by its end",
        before.len(),
        ids.len()
    );

    // A damaged copy is refused, and nothing is written.
    let mut damaged = bytes.to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let bad = dir.path().join("damaged.backup");
    std::fs::write(&bad, &damaged).unwrap();
    let target = dir.path().join("from-damaged");
    let out = tideline(&target, &["restore", "--in", bad.to_str().unwrap()], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged") && err.contains("checksum"), "{err}");
    assert!(!target.exists(), "a refused restore leaves nothing behind");
    // Not a backup at all.
    let out = tideline(&target, &["restore", "--in", "Cargo.toml"], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Tideline backup"));
    // A directory in use is never overwritten.
    let out = tideline(&restored, &["restore", "--in", file.to_str().unwrap()], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
}
