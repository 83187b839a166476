//! Graceful shutdown of the real binary: on SIGTERM it stops accepting,
//! finishes the request in flight, and exits 0 with the write stored.

mod common;

use common::{report, spawn_serve};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let mut server = spawn_serve(
        &["--data", data_arg, "--station", "BB-01"],
        &["--listen", "127.0.0.1:0", "--no-auto-sync"],
    );
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // A first answer on this connection shows the server has taken it.
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // A record is on its way when the stop comes: the server has read its
    // headers (it asks for the body: 100 Continue) and half of the body.
    let body = serde_json::json!({"form": "boarding-report", "fields": report()}).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let head = format!(
        "POST /api/v1/records HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        server.token,
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    let n = conn.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    conn.write_all(first).unwrap();
    // As systemd or `docker stop` would.
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());

    // No new connections once stopping...
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...but the request in flight is finished.
    conn.write_all(rest).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");

    // The record it acknowledged is there for the next start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tideline"))
        .args(["--data", data_arg, "record", "list"])
        .env_remove("TIDELINE_STATION")
        .env_remove("TIDELINE_CONFIG")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("1 of 1"),
        "{listed}"
    );
}

/// An officer typing a report on a boat whose laptop restarts keeps their
/// session: the next save needs no new sign-in.
#[test]
fn a_session_outlives_a_restart_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let global = ["--data", data_arg, "--station", "BB-01"];
    let serve = ["--listen", "127.0.0.1:0", "--no-auto-sync"];
    let first = spawn_serve(&global, &serve);
    let token = first.token.clone();
    drop(first);
    let second = spawn_serve(&global, &serve);
    let client = reqwest::blocking::Client::new();
    let me = client
        .get(format!("{}/api/v1/me", second.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(me.status(), 200, "the session did not survive the restart");
    let created = client
        .post(format!("{}/api/v1/records", second.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"form": "boarding-report", "fields": report()}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    // Signing out ends it for good, across a restart too.
    let out = client
        .post(format!("{}/api/v1/logout", second.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(out.status(), 204);
    drop(second);
    let third = spawn_serve(&global, &serve);
    let me = client
        .get(format!("{}/api/v1/me", third.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(me.status(), 401);
}

/// Serving beyond loopback without TLS is said plainly at start, in a log
/// without terminal colour codes (stderr here is a pipe, as under systemd).
#[test]
fn plain_http_beyond_loopback_is_warned_about_in_a_plain_log() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .args([
            "--data",
            dir.path().join("d").to_str().unwrap(),
            "--station",
            "BB-01",
        ])
        .args(["serve", "--listen", "0.0.0.0:0", "--no-auto-sync"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = common::lines_of(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("plain HTTP") => break line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no warning about plain HTTP; the log said: {seen:#?}"),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(warning.contains("--tls-cert"), "{warning}");
    assert!(
        !warning.contains('\u{1b}') && !seen.iter().any(|l| l.contains('\u{1b}')),
        "colour codes in a log that is not a terminal: {warning:?}"
    );
}

/// `tideline tls init` on a boat: `serve` then answers HTTPS that a client
/// trusting only the made CA accepts, and offers that CA to tablets.
#[test]
fn tls_init_makes_serve_answer_https_that_its_ca_vouches_for() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("boat");
    let bin = env!("CARGO_BIN_EXE_tideline");
    let made = Command::new(bin)
        .arg("--data")
        .arg(&data)
        .args(["tls", "init", "--name", "localhost", "--ip", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut child = Command::new(bin)
        .arg("--data")
        .arg(&data)
        .args([
            "--station",
            "BB-01",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-auto-sync",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = common::lines_of(child.stdout.take().unwrap());
    let base = common::listening_address(&lines, Duration::from_secs(60));
    assert!(base.starts_with("https://"), "{base}");
    let ca_pem = std::fs::read(data.join("tls/ca.pem")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    let health = client.get(format!("{base}/healthz")).send();
    let tablet = client.get(format!("{base}/tablet")).send();
    let ca = client.get(format!("{base}/ca.pem")).send();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health.expect("HTTPS the CA vouches for").status(), 200);
    let tablet = tablet.unwrap().text().unwrap();
    assert!(
        tablet.contains("<svg") && tablet.contains("/ca.pem"),
        "{tablet}"
    );
    assert_eq!(ca.unwrap().bytes().unwrap().as_ref(), ca_pem.as_slice());
}
