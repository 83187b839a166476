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
    child: Child,
}

/// Create [`crate::TESTER`] offline in `data` (the station flag among `args`
/// is passed on, so the directory is set up for the right station). An
/// existing user is fine: harnesses restart servers on the same directory.
fn add_tester(bin: &Path, data: &Path, args: &[String]) -> anyhow::Result<()> {
    use std::io::Write;
    let station: Vec<&String> = args
        .windows(2)
        .find(|w| w[0] == "--station")
        .map(|w| w.iter().collect())
        .unwrap_or_default();
    let mut cmd = Command::new(bin);
    cmd.arg("--data")
        .arg(data)
        .args(station)
        .args(["admin", "create-user", "--username", crate::TESTER])
        .args(["--role", "supervisor"]);
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {} admin create-user", bin.display()))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{}\n", crate::PASSWORD).as_bytes())?;
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() || err.contains("already exists"),
        "could not create the test user: {err}"
    );
    Ok(())
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
        add_tester(bin, data, args)?;
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
        let resp = reqwest::blocking::Client::new()
            .post(server.url("/api/v1/login"))
            .json(&serde_json::json!({"username": crate::TESTER, "password": crate::PASSWORD}))
            .send()
            .with_context(|| format!("log in to {name}"))?;
        ensure!(resp.status().is_success(), "{name} refused the test login");
        let body: serde_json::Value = resp.json()?;
        server.token = body["token"]
            .as_str()
            .context("no token in the login answer")?
            .to_string();
        Ok(server)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
