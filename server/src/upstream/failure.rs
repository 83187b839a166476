//! What one sync came to ([`Outcome`]), and why it failed
//! ([`SyncFailure`]) in words a person at the sync bar can act on: the
//! upstream unreachable, refused (revoked, not enrolled, wrong station,
//! incompatible), an error of its own, or something that is not Tideline.

use serde::{Deserialize, Serialize};
use tideline_sync::engine::SyncError;

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub pushed: usize,
    pub pulled: usize,
    pub rejected: usize,
    pub round_trips: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    pub duration_ms: u64,
    /// Attachment files the upstream accepted in this sync.
    #[serde(default)]
    pub files_sent: usize,
    /// Bytes of attachment files sent (chunk bodies).
    #[serde(default)]
    pub file_bytes_sent: u64,
    /// Attachment files fetched from the upstream in this sync.
    #[serde(default)]
    pub files_received: usize,
    #[serde(default)]
    pub file_bytes_received: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SyncFailure {
    #[error("the upstream {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("the upstream refused the sync ({status}): {message}")]
    Refused {
        status: u16,
        /// The upstream's error code (`device_revoked`, `wrong_station`...).
        code: String,
        message: String,
    },
    /// Something answers at the address, but not as Tideline (a captive
    /// portal, a web server, a wrong port).
    #[error("{url} answers, but not as a Tideline instance (HTTP {status}{what}); check the upstream address")]
    NotTideline {
        url: String,
        status: u16,
        what: String,
    },
    #[error("the upstream's answer could not be read: {0}")]
    Protocol(String),
    #[error("local storage failed during sync: {0}")]
    Local(String),
    #[error(
        "this instance is not enrolled with an upstream: run `tideline enroll --upstream URL \
         --code CODE` with a code from the upstream's admin"
    )]
    NotEnrolled,
}

impl SyncFailure {
    /// A short name for metrics, logs and the sync bar: what went wrong,
    /// which decides what a person can do about it ([`Self::advice`]).
    pub fn kind(&self) -> &'static str {
        match self {
            SyncFailure::Unreachable { .. } => "unreachable",
            SyncFailure::Refused { code, .. } if code == "device_revoked" => "revoked",
            SyncFailure::Refused { code, .. }
                if code == "not_enrolled" || code == "unauthenticated" =>
            {
                "not_enrolled"
            }
            SyncFailure::Refused { code, .. } if code == "wrong_station" => "wrong_station",
            SyncFailure::Refused { code, .. } if code == "unsupported_protocol" => "incompatible",
            SyncFailure::Refused { status, .. } if *status >= 500 => "upstream_error",
            SyncFailure::Refused { .. } => "refused",
            SyncFailure::NotTideline { .. } => "not_tideline",
            SyncFailure::Protocol(_) => "protocol",
            SyncFailure::Local(_) => "local",
            SyncFailure::NotEnrolled => "not_enrolled",
        }
    }

    /// A failure of this kind in a few words, for the sync bar; None where
    /// only the message itself says enough.
    pub fn headline(kind: &str) -> Option<&'static str> {
        Some(match kind {
            "unreachable" => "Offline: the upstream cannot be reached.",
            "revoked" => "Sync refused: the upstream's admin revoked this device.",
            "not_enrolled" => "Sync refused: the upstream does not know this device.",
            "wrong_station" => "Sync refused: this device is enrolled for another station.",
            "incompatible" => {
                "Sync refused: this instance and its upstream speak different sync versions."
            }
            "upstream_error" => "Sync failed: the upstream had an error.",
            "not_tideline" => {
                "Sync failed: something other than Tideline answers at the upstream address."
            }
            _ => return None,
        })
    }

    /// What to do about a failure of this kind, for the person looking at it.
    pub fn advice(kind: &str) -> &'static str {
        match kind {
            "unreachable" => "Work goes on here; it syncs by itself when the link is back.",
            "revoked" => "Its records stay here and usable. Ask the upstream's admin to enrol it again (docs/OPERATIONS.md).",
            "not_enrolled" => "The upstream does not know this device. Ask its admin for an enrolment code and run `tideline enroll` with it.",
            "wrong_station" => "This device is enrolled for another station than this instance's. Ask the upstream's admin for a code for this station.",
            "incompatible" => "This instance and its upstream run incompatible versions of Tideline; upgrade the older one.",
            "upstream_error" => "The upstream had a problem of its own; it is retried by itself. If it goes on, tell the upstream's admin.",
            "not_tideline" => "Check the upstream address this instance was started with.",
            "local" => "This instance could not use its own storage; see its log.",
            _ => "See the message; it is retried by itself.",
        }
    }
}

/// What answered at `upstream` instead of Tideline: its status and the kind
/// of content it sent (`text/html`), never the content itself.
pub(super) fn not_tideline(
    upstream: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
) -> SyncFailure {
    let what = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|t| format!(", {}", t.split(';').next().unwrap_or(t).trim()))
        .unwrap_or_default();
    SyncFailure::NotTideline {
        url: upstream.to_string(),
        status,
        what,
    }
}

/// A refusal from `upstream`: Tideline's JSON error, or else what answered
/// instead of Tideline (an HTML page is not worth showing a person).
pub(super) fn refusal(
    upstream: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> SyncFailure {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    match parsed
        .as_ref()
        .and_then(|v| Some((v["error"].as_str()?, v["message"].as_str()?)))
    {
        Some((code, message)) => SyncFailure::Refused {
            status,
            code: code.to_string(),
            message: message.to_string(),
        },
        None => not_tideline(upstream, status, headers),
    }
}

impl From<SyncError> for SyncFailure {
    fn from(e: SyncError) -> Self {
        SyncFailure::Local(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_went_wrong_and_what_is_not_tideline() {
        let headers = |t: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::CONTENT_TYPE, t.parse().unwrap());
            h
        };
        let json = br#"{"error": "device_revoked", "message": "Device x was revoked."}"#;
        let e = refusal("http://hq", 403, &headers("application/json"), json);
        assert_eq!(e.kind(), "revoked");
        assert!(SyncFailure::headline(e.kind()).unwrap().contains("revoked"));
        let html = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>";
        let e = refusal("http://hq", 404, &headers("text/html; charset=utf-8"), html);
        assert_eq!(e.kind(), "not_tideline");
        let said = e.to_string();
        assert_eq!(
            said,
            "http://hq answers, but not as a Tideline instance (HTTP 404, text/html); check the upstream address"
        );
        assert!(!said.contains("nginx"));
        for (code, status, kind) in [
            ("wrong_station", 403, "wrong_station"),
            ("not_enrolled", 401, "not_enrolled"),
            ("unsupported_protocol", 400, "incompatible"),
            ("internal", 500, "upstream_error"),
            ("forbidden", 403, "refused"),
        ] {
            let body = format!(r#"{{"error": "{code}", "message": "m"}}"#);
            let none = reqwest::header::HeaderMap::new();
            assert_eq!(
                refusal("u", status, &none, body.as_bytes()).kind(),
                kind,
                "{code}"
            );
        }
    }
}
