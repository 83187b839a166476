//! PouchDB beside Tideline (`--pouchdb`): the records the boat was loaded
//! with, written as JSON lines, replicated by `tests/pouchdb/replicate.js`
//! (PouchDB 9 to an express-pouchdb server on loopback, one-shot), and its
//! figures set against the first sync's.

use crate::report::round3;
use crate::reports::{Reports, FORM};
use anyhow::{bail, ensure, Context};
use serde_json::{json, Value as Json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

/// The replication script and the `node` that runs it, checked before any
/// server starts so that a missing install fails the run at once.
pub struct PouchDb {
    script: PathBuf,
    node_version: String,
}

/// `tests/pouchdb` in the workspace, found as the release binary is.
fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pouchdb")
}

impl PouchDb {
    /// Find the script, its installed packages and `node`.
    pub fn prepare() -> anyhow::Result<PouchDb> {
        let dir = package_dir();
        let script = dir.join("replicate.js");
        ensure!(script.is_file(), "{} is missing", script.display());
        ensure!(
            dir.join("node_modules").is_dir(),
            "{} has no node_modules: run `npm ci --prefix tests/pouchdb` \
             (or `npm install --prefix tests/pouchdb`) from the workspace root first",
            dir.display()
        );
        let out = std::process::Command::new("node")
            .arg("--version")
            .output()
            .context("run `node --version`: --pouchdb needs Node.js on the PATH")?;
        ensure!(out.status.success(), "`node --version` failed");
        let node_version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(PouchDb {
            script,
            node_version,
        })
    }

    /// For the report's `config`.
    pub fn describe(&self) -> Json {
        json!({
            "script": self.script.display().to_string(),
            "node": self.node_version,
        })
    }

    /// `node replicate.js RECORDS`; its one JSON object. Its stderr (the
    /// progress lines) goes to ours; it is killed if the run's deadline passes.
    pub async fn replicate(&self, records: &Path, deadline: Instant) -> anyhow::Result<Json> {
        let child = tokio::process::Command::new("node")
            .arg(&self.script)
            .arg(records)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("run node {}", self.script.display()))?;
        let until = tokio::time::Instant::from_std(deadline);
        let Ok(out) = tokio::time::timeout_at(until, child.wait_with_output()).await else {
            bail!("PouchDB's replication had not ended by the deadline");
        };
        let out = out.context("wait for node")?;
        ensure!(
            out.status.success(),
            "node {} failed ({})",
            self.script.display(),
            out.status
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .with_context(|| format!("replicate.js printed {text:?}, not one JSON object"))
    }
}

/// The records loaded on the boats, one `{"id","form","fields"}` a line, in
/// a temporary file that is deleted when dropped. Boat `b`'s `i`-th record,
/// `ids[b][i]`, holds `reports.fields(b * n + i)`.
pub fn write_records(
    ids: &[Vec<String>],
    reports: &Reports,
    n: usize,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix("sync-bench-records-")
        .suffix(".jsonl")
        .tempfile()
        .context("create the records file for PouchDB")?;
    {
        let mut w = std::io::BufWriter::new(file.as_file_mut());
        for (b, boat) in ids.iter().enumerate() {
            for (i, id) in boat.iter().enumerate() {
                let line = json!({"id": id, "form": FORM, "fields": reports.fields(b * n + i)});
                serde_json::to_writer(&mut w, &line)?;
                w.write_all(b"\n")?;
            }
        }
        w.flush().context("write the records file for PouchDB")?;
    }
    Ok(file)
}

/// PouchDB's figures beside the first sync's.
pub struct Beside {
    pub json: Json,
    /// Tideline's first-sync seconds over PouchDB's.
    pub time_ratio: f64,
    /// Tideline's first-sync wire bytes over PouchDB's.
    pub wire_ratio: f64,
    /// One line for the progress output.
    pub summary: String,
}

/// `figures` (what replicate.js printed) with their wire total and its ratio
/// to the zstd JSON lines, against Tideline's first sync of the same records.
pub fn beside(
    figures: Json,
    tideline_secs: f64,
    tideline_wire: u64,
    zstd_bytes: u64,
) -> anyhow::Result<Beside> {
    let num = |k: &str| {
        figures[k]
            .as_f64()
            .with_context(|| format!("replicate.js printed no {k}: {figures}"))
    };
    let (secs, up, down, requests) = (
        num("seconds")?,
        num("bytes_up")?,
        num("bytes_down")?,
        num("requests")?,
    );
    ensure!(secs > 0.0, "replicate.js timed {secs} s");
    let wire = up + down;
    let mut json = figures.clone();
    json["wire_bytes"] = json!(wire as u64);
    json["wire_over_zstd_jsonl"] = json!(round3(wire / zstd_bytes as f64));
    let time_ratio = round3(tideline_secs / secs);
    let wire_ratio = round3(tideline_wire as f64 / wire);
    Ok(Beside {
        summary: format!(
            "{secs:.2} s, {requests} requests, {} bytes up, {} down \
             (Tideline ÷ PouchDB: time {time_ratio}, wire bytes {wire_ratio})",
            up as u64, down as u64
        ),
        json,
        time_ratio,
        wire_ratio,
    })
}
