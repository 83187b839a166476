//! The HTTP client every exchange and file transfer uses, and one call
//! through it with the response bounded.

use super::failure::refusal;
use super::failure::SyncFailure;
use std::time::Duration;

/// One JSON request to the upstream; a non-2xx answer is a refusal with its message.
pub(super) fn call(
    request: reqwest::blocking::RequestBuilder,
    upstream: &str,
) -> Result<serde_json::Value, SyncFailure> {
    let response = request.send().map_err(|e| SyncFailure::Unreachable {
        url: upstream.to_string(),
        message: e.to_string(),
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().unwrap_or_default();
    if !status.is_success() {
        return Err(refusal(upstream, status.as_u16(), &headers, &bytes));
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// The blocking HTTP client sync uses: bounded waits, so a dead link fails
/// instead of hanging a sync forever; `ca` is trusted besides the public roots.
pub fn http_client(ca: Option<&reqwest::Certificate>) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120));
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(ca.clone());
    }
    builder
        .build()
        .unwrap_or_else(|_| reqwest::blocking::Client::new())
}

/// Read the CA (or pinned certificate) to trust for the upstream.
pub fn load_ca(path: &std::path::Path) -> anyhow::Result<reqwest::Certificate> {
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("cannot read the upstream CA {}: {e}", path.display()))?;
    reqwest::Certificate::from_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate: {e}", path.display()))
}
