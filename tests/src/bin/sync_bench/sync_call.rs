//! One `POST /api/v1/sync/now` as the harness makes it: retried while the
//! link is what failed, and what the server answered once it succeeded.

use anyhow::{bail, ensure, Context};
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// Attempts per sync before the harness gives up: with a 1 % cut rate a sync
/// that fails this often means something other than bad luck is wrong.
const MAX_SYNC_ATTEMPTS: u32 = 30;
/// One `sync/now` may page through megabytes on a 256 kbit/s link; the server
/// bounds each exchange at 120 s, this bounds the whole call.
const SYNC_CALL_TIMEOUT: Duration = Duration::from_secs(1800);

/// What `POST /api/v1/sync/now` answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub pushed: u64,
    pub pulled: u64,
    pub rejected: u64,
    pub round_trips: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub duration_ms: u64,
}

impl Outcome {
    fn parse(v: &Json) -> anyhow::Result<Outcome> {
        let f = |k: &str| {
            v[k].as_u64()
                .with_context(|| format!("sync outcome without {k}: {v}"))
        };
        Ok(Outcome {
            pushed: f("pushed")?,
            pulled: f("pulled")?,
            rejected: f("rejected")?,
            round_trips: f("round_trips")?,
            bytes_sent: f("bytes_sent")?,
            bytes_received: f("bytes_received")?,
            duration_ms: f("duration_ms")?,
        })
    }
}

/// One sync as the harness saw it: the successful attempt's outcome and how
/// many attempts the link cost.
#[derive(Debug, Clone)]
pub struct SyncDone {
    pub node: usize,
    pub name: &'static str,
    pub outcome: Outcome,
    pub attempts: u32,
    pub wall: Duration,
}

/// What a spawned sync task needs (owned, so the task can be `'static`).
#[derive(Clone)]
pub struct SyncCall {
    pub node: usize,
    pub name: &'static str,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    pub deadline: Instant,
}

/// `POST /api/v1/sync/now` until it succeeds. A 502 is the link failing (a cut
/// connection): retried, since a sync resumes from its checkpoints. Anything
/// else is a real failure and stops the run.
pub async fn sync_until_ok(call: SyncCall) -> anyhow::Result<SyncDone> {
    let name = call.name;
    let started = Instant::now();
    for attempt in 1..=MAX_SYNC_ATTEMPTS {
        let left = call.deadline.saturating_duration_since(Instant::now());
        ensure!(
            !left.is_zero(),
            "{name}: deadline passed before its sync ended"
        );
        let resp = call
            .http
            .post(&call.url)
            .bearer_auth(&call.token)
            .timeout(left.min(SYNC_CALL_TIMEOUT))
            .send()
            .await
            .with_context(|| format!("{name}: POST sync/now"))?;
        let status = resp.status().as_u16();
        let body: Json = resp.json().await.unwrap_or(Json::Null);
        match status {
            200 => {
                return Ok(SyncDone {
                    node: call.node,
                    name,
                    outcome: Outcome::parse(&body)?,
                    attempts: attempt,
                    wall: started.elapsed(),
                })
            }
            502 => {
                eprintln!(
                    "    {name}: sync attempt {attempt} failed ({}); retrying",
                    body["message"].as_str().unwrap_or("?")
                );
                // Short: the proxy's cuts are per connection, not an outage.
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await;
            }
            _ => bail!("{name}: sync/now answered {status}: {body}"),
        }
    }
    bail!("{name}: sync failed {MAX_SYNC_ATTEMPTS} times in a row")
}
