//! The real `tideline` binary as a child process, for harnesses that measure
//! it from outside: start it, learn its address, read its memory, and kill it
//! on every exit path.

use anyhow::{bail, ensure, Context};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Settings from the caller's environment would change what is measured.
const CLEARED_ENV: [&str; 9] = [
    "TIDELINE_CONFIG",
    "TIDELINE_UPSTREAM",
    "TIDELINE_CACHE_MB",
    "TIDELINE_MAX_BODY_BYTES",
    "TIDELINE_SYNC_INTERVAL_SECS",
    "TIDELINE_SYNC_PAGE_KIB",
    "TIDELINE_LISTEN",
    "TIDELINE_DATA_DIR",
    "TIDELINE_STATION",
];

/// One `tideline serve` child; killed when dropped so that an error or panic
/// anywhere in a harness never leaves a server running.
pub struct ServerProcess {
    pub name: String,
    pub addr: SocketAddr,
    pub log: PathBuf,
    /// A session of [`crate::TESTER`], a supervisor of the server's station.
    pub token: String,
    /// A session of [`ADMIN`], who enrols devices.
    pub admin_token: String,
    child: Child,
}

/// The admin user every harness server gets.
pub const ADMIN: &str = "admin";

/// Run `BIN --data DATA [--station S] ARGS…` to completion, with `input` on
/// standard input; returns its standard output, or its error.
fn run_cli(
    bin: &Path,
    data: &Path,
    station: &[&String],
    args: &[&str],
    input: &str,
) -> anyhow::Result<(bool, String, String)> {
    use std::io::Write;
    let mut cmd = Command::new(bin);
    cmd.arg("--data").arg(data).args(station).args(args);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", bin.display()))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn station_args(args: &[String]) -> Vec<&String> {
    args.windows(2)
        .find(|w| w[0] == "--station")
        .map(|w| w.iter().collect())
        .unwrap_or_default()
}

/// Enrol the instance in `data` (not running) with the upstream at `url`,
/// using `code`; `args` carries its `--station`.
pub fn enroll(
    bin: &Path,
    data: &Path,
    args: &[String],
    url: &str,
    code: &str,
) -> anyhow::Result<()> {
    let (ok, _, err) = run_cli(
        bin,
        data,
        &station_args(args),
        &["enroll", "--upstream", url, "--code", code],
        "",
    )?;
    ensure!(ok, "enrolment failed: {err}");
    Ok(())
}

/// Create [`crate::TESTER`] and [`ADMIN`] offline in `data` (the station flag
/// among `args` is passed on, so the directory is set up for the right
/// station). Existing users are fine: harnesses restart servers on the same
/// directory.
fn add_users(bin: &Path, data: &Path, args: &[String]) -> anyhow::Result<()> {
    for (name, role) in [(crate::TESTER, "supervisor"), (ADMIN, "admin")] {
        let (ok, _, err) = run_cli(
            bin,
            data,
            &station_args(args),
            &["admin", "create-user", "--username", name, "--role", role],
            &format!("{}\n", crate::PASSWORD),
        )?;
        ensure!(
            ok || err.contains("already exists"),
            "could not create the user {name}: {err}"
        );
    }
    Ok(())
}

fn login(url: &str, name: &str) -> anyhow::Result<String> {
    let resp = reqwest::blocking::Client::new()
        .post(url)
        .json(&serde_json::json!({"username": name, "password": crate::PASSWORD}))
        .send()
        .context("log in")?;
    ensure!(
        resp.status().is_success(),
        "the login of {name} was refused"
    );
    let body: serde_json::Value = resp.json()?;
    Ok(body["token"]
        .as_str()
        .context("no token in the login answer")?
        .to_string())
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Run `BIN serve --listen 127.0.0.1:0 --data DATA ARGS…`, logging to `log`,
    /// and wait up to 30 s for its `listening on` line. Blocking.
    pub fn start(
        bin: &Path,
        name: &str,
        data: &Path,
        args: &[String],
        log: PathBuf,
    ) -> anyhow::Result<ServerProcess> {
        add_users(bin, data, args)?;
        let log_file = std::fs::File::create(&log).context("create a server log")?;
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args);
        for var in CLEARED_ENV {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        // Wrap the child at once so that it is killed on every early return.
        let mut server = ServerProcess {
            name: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            token: String::new(),
            admin_token: String::new(),
            child,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                        let _ = tx.send(addr.to_string());
                        sent = true;
                    }
                }
                // Keep draining so the server never blocks on a full pipe.
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            bail!(
                "{name} did not print its address within 30 s; log:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
        };
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("{name} printed an odd address {addr:?}"))?;
        ensure!(
            addr.ip().is_loopback(),
            "refusing {name}'s non-loopback address {addr}"
        );
        server.addr = addr;
        server.token = login(&server.url("/api/v1/login"), crate::TESTER)?;
        server.admin_token = login(&server.url("/api/v1/login"), ADMIN)?;
        Ok(server)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A one-time code enrolling a `kind` (boat or station) of `station` here.
    pub fn enroll_code(&self, station: &str, kind: &str) -> anyhow::Result<String> {
        // At HQ the station must exist first; elsewhere it is the server's own.
        let made = reqwest::blocking::Client::new()
            .post(self.url("/api/v1/stations"))
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({"code": station, "name": station, "island": "Test"}))
            .send()
            .context("create a station")?;
        ensure!(
            [201, 403, 409].contains(&made.status().as_u16()),
            "{}: could not create station {station}",
            self.name
        );
        let resp = reqwest::blocking::Client::new()
            .post(self.url("/api/v1/devices/codes"))
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({"station": station, "kind": kind}))
            .send()
            .context("ask for an enrolment code")?;
        ensure!(
            resp.status().is_success(),
            "{}: no enrolment code",
            self.name
        );
        let body: serde_json::Value = resp.json()?;
        Ok(body["code"].as_str().context("no code")?.to_string())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `--tideline PATH`, which every harness takes: the binary it runs and
/// measures. Flattened into each harness's options.
#[derive(Debug, clap::Args)]
pub struct TidelineArg {
    /// The `tideline` binary to run and measure (default: the workspace's
    /// release build, target/release/tideline)
    #[arg(
        long = "tideline",
        value_name = "PATH",
        env = "TIDELINE_BIN",
        default_value_os_t = release_build(),
        // The absolute path differs on every machine; the text above says it.
        hide_default_value = true,
        value_parser = existing_binary
    )]
    pub path: PathBuf,
}

/// The workspace's release build, which docs/PERFORMANCE.md builds first.
fn release_build() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target/release/tideline")
}

/// Refuse a missing binary before anything starts, saying how to make one.
fn existing_binary(path: &str) -> Result<PathBuf, String> {
    let bin = PathBuf::from(path);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} does not exist; build it with `cargo build --release -p tideline-server` \
             or pass --tideline PATH",
            bin.display()
        ))
    }
}

/// VmRSS and VmHWM of a process, in MiB.
pub fn memory_mb(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing from /proc/{pid}/status"))?;
        let kb: f64 = line
            .split_whitespace()
            .nth(1)
            .with_context(|| format!("odd line {line:?}"))?
            .parse()
            .with_context(|| format!("odd line {line:?}"))?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
