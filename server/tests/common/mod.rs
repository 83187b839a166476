//! Test support of the server's own tests: the real application on port 0
//! over its own sled store, in this process or as the real `tideline` binary.
//! What the cross-crate tests share with these is `tideline_server::test_support`;
//! what is here needs the binary's path, which cargo gives only this crate's
//! tests, or is a fixture of these tests alone.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::Path;
use tideline_server::test_support::{PASSWORD, TESTER};
use tideline_server::{open_records, SharedRecords};
use tideline_server::{test_support, Settings};

pub struct TestApp {
    pub base: String,
    /// Logged in as [`TESTER`].
    pub client: reqwest::Client,
    /// Not logged in.
    pub anonymous: reqwest::Client,
    pub records: SharedRecords,
    pub handle: actix_web::dev::ServerHandle,
    pub _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(dir).await
}

/// Settings for a BB-01 instance on `data`, on any free port.
pub fn settings(data: &Path) -> Settings {
    test_support::settings(data, "127.0.0.1:0", "BB-01", None)
}

pub async fn spawn_app_in(dir: tempfile::TempDir) -> TestApp {
    let settings = settings(dir.path());
    let records = open_records(&settings).expect("open store");
    let served = test_support::serve(&settings, records.clone()).await;
    TestApp {
        base: served.base,
        client: served.client,
        anonymous: reqwest::Client::new(),
        records,
        handle: served.handle,
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }

    /// Create a record and return its view; panics unless the API answers 201.
    pub async fn create(&self, fields: &Value) -> Value {
        let resp = self
            .post_json(
                "/api/v1/records",
                &json!({"form": "boarding-report", "fields": fields}),
            )
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("json");
        assert_eq!(status, 201, "create failed: {body}");
        body
    }

    /// Everything a user can see of the store, plus its feed position, to check
    /// that a refused request changed nothing.
    pub async fn snapshot(&self) -> (Value, u64) {
        let all: Value = self
            .get("/api/v1/records?limit=10000")
            .await
            .json()
            .await
            .expect("json");
        let seq = {
            use tideline_sync::DocStore;
            self.records.store().last_seq().expect("seq")
        };
        (all, seq)
    }
}

/// A complete, valid boarding report.
pub fn report() -> Value {
    json!({
        "boarding_time": "2026-11-20T14:05:00-04:00",
        "position": {"lat": 13.0969, "lon": -59.6145},
        "vessel_name": "Sea Breeze",
        "vessel_registration": "BB-1234",
        "flag_state": "BB",
        "vessel_type": "fishing",
        "persons_on_board": 3,
        "master_name": "A. Joseph",
        "reason": "fisheries",
        "crew": [
            {"name": "A. Joseph", "nationality": "BB", "role": "master"},
            {"name": "B. Charles", "role": "crew"}
        ],
        "contraband_found": true,
        "seizures": [
            {"item_type": "fish", "description": "Undersized lobster", "quantity": 12.5, "unit": "kg", "evidence_tag": "EV-001"}
        ],
        "arrests": 0,
        "findings": "Catch inspected; undersized lobster seized.",
        "outcome": "warning_issued",
        "officers": ["PC Smith"]
    })
}

/// A `tideline serve` process; killed when dropped, whatever the test's outcome.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub base: String,
    /// A session of [`TESTER`].
    pub token: String,
}

impl ServeProcess {
    /// A blocking client logged in as [`TESTER`].
    pub fn client(&self) -> reqwest::blocking::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.token).parse().expect("header"),
        );
        reqwest::blocking::Client::builder()
            .default_headers(headers)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line a child writes to `out`, as it comes, for polling with a deadline.
pub fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Wait (until `within`) for the `listening on ADDRESS` line and return the address.
pub fn listening_address(
    lines: &std::sync::mpsc::Receiver<String>,
    within: std::time::Duration,
) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return addr.to_string();
                }
            }
            Err(_) => panic!("tideline serve did not report its address within {within:?}"),
        }
    }
}

/// Run `tideline [global args] serve [serve args]` and wait (with a deadline)
/// for it to report the address it listens on.
pub fn spawn_serve(global: &[&str], serve: &[&str]) -> ServeProcess {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // A supervisor to act as (already there when the directory is reused).
    let mut admin = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .args(global)
        .args([
            "admin",
            "create-user",
            "--username",
            TESTER,
            "--role",
            "supervisor",
        ])
        .env_remove("TIDELINE_STATION")
        .env_remove("TIDELINE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tideline admin");
    admin
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("password");
    admin.wait().expect("tideline admin");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .args(global)
        .arg("serve")
        .args(serve)
        .env("RUST_LOG", "warn")
        .env_remove("TIDELINE_STATION")
        .env_remove("TIDELINE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tideline serve");
    let lines = lines_of(child.stdout.take().expect("stdout"));
    let base = listening_address(&lines, std::time::Duration::from_secs(60));
    let resp = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": TESTER, "password": PASSWORD}))
        .send()
        .expect("login");
    assert_eq!(resp.status(), 200, "login failed");
    let token = resp.json::<Value>().expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    ServeProcess { child, base, token }
}
