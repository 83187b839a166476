//! Memory and CPU of the fleet's processes, phase by phase. Each phase resets
//! the servers' VmHWM so its peak is its own, while the run's overall peaks
//! are kept here across the resets.

use crate::report::{round1, round3};
use anyhow::Context;
use serde_json::{json, Map, Value as Json};
use tideline_tests::process::{memory_mb, ServerProcess};

/// CPU seconds (user + system) a process has used so far; `who` is a pid or
/// `self`. /proc counts in USER_HZ ticks, which Linux fixes at 100 per second
/// for user space whatever the kernel's own tick rate.
fn cpu_secs(who: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{who}/stat"))
        .with_context(|| format!("read /proc/{who}/stat"))?;
    // The command name (field 2) may hold spaces; count fields after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("odd /proc/{who}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    let tick = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .with_context(|| format!("short /proc/{who}/stat"))?
            .parse::<f64>()?)
    };
    Ok((tick(11)? + tick(12)?) / 100.0)
}

/// Where a measured phase started: RSS and CPU per node, and the harness's CPU.
pub struct Meter {
    rss_at_start: Vec<f64>,
    cpu: Vec<f64>,
    harness_cpu: f64,
}

/// Memory peaks per node, in MiB, over the phases measured so far.
pub struct Peaks {
    /// Largest VmHWM seen per node over the whole run (loading and the
    /// harness's export included), across the resets between phases.
    pub overall: Vec<f64>,
    /// Largest VmHWM per node during the sync scenarios only.
    pub sync: Vec<f64>,
    pub hwm_resets_work: bool,
}

impl Peaks {
    /// Peaks of `servers` servers, none seen yet.
    pub fn new(servers: usize) -> Peaks {
        Peaks {
            overall: vec![0.0; servers],
            sync: vec![0.0; servers],
            hwm_resets_work: true,
        }
    }

    /// Start measuring a phase: fold the old peaks into `overall`, reset
    /// every server's VmHWM (writing 5 to /proc/PID/clear_refs) so the phase's
    /// peak is its own, and note RSS and CPU time at the start.
    pub fn begin(&mut self, servers: &[ServerProcess]) -> anyhow::Result<Meter> {
        let rss = self.observe(servers)?;
        for s in servers {
            if std::fs::write(format!("/proc/{}/clear_refs", s.pid()), "5").is_err() {
                self.hwm_resets_work = false;
            }
        }
        let mut cpu = Vec::new();
        for s in servers {
            cpu.push(cpu_secs(&s.pid().to_string())?);
        }
        Ok(Meter {
            rss_at_start: rss.iter().map(|(r, _)| *r).collect(),
            cpu,
            harness_cpu: cpu_secs("self")?,
        })
    }

    /// Per node, for the phase since `m`: VmHWM, RSS at its start and CPU
    /// seconds; plus the harness's own CPU (the proxies run in it). With
    /// `sync`, the peaks also count towards the sync peaks.
    pub fn end(
        &mut self,
        servers: &[ServerProcess],
        m: &Meter,
        sync: bool,
    ) -> anyhow::Result<Json> {
        let rss = self.observe(servers)?;
        let mut peak = Map::new();
        let mut start = Map::new();
        let mut cpu = Map::new();
        let mut cpu_total = 0.0;
        for (i, s) in servers.iter().enumerate() {
            let name = s.name.clone();
            if sync {
                self.sync[i] = self.sync[i].max(rss[i].1);
            }
            peak.insert(name.clone(), json!(round1(rss[i].1)));
            start.insert(name.clone(), json!(round1(m.rss_at_start[i])));
            let used = cpu_secs(&s.pid().to_string())? - m.cpu[i];
            cpu_total += used;
            cpu.insert(name, json!(round3(used)));
        }
        Ok(json!({
            "peak_rss_mb": peak,
            "rss_at_start_mb": start,
            "cpu_s": cpu,
            "cpu_s_servers_total": round3(cpu_total),
            "cpu_s_harness": round3(cpu_secs("self")? - m.harness_cpu),
        }))
    }

    /// Per node: current RSS and VmHWM (since the last reset), in MiB.
    pub fn observe(&mut self, servers: &[ServerProcess]) -> anyhow::Result<Vec<(f64, f64)>> {
        let mut out = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            let (rss, hwm) =
                memory_mb(s.pid()).with_context(|| format!("{} (is it still running?)", s.name))?;
            self.overall[i] = self.overall[i].max(hwm);
            out.push((rss, hwm));
        }
        Ok(out)
    }
}
