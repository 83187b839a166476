//! Enrolling this instance with its upstream: a one-time code from the
//! upstream's admin turns into the device credential every later sync uses.

use crate::auth::devices;
use crate::auth::devices::UpstreamCredential;
use crate::auth::InstanceKey;
use crate::data_dir::SharedRecords;

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the upstream {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("the upstream refused the enrollment ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error(
        "the code enrols a device of station {code}, but this data directory belongs to \
         station {local}. The code was not used up: enrol a new data directory with it \
         (`tideline --data NEW_DIR enroll --upstream URL --code CODE`, which takes station {code})"
    )]
    WrongStation { code: String, local: String },
    #[error("the upstream's answer could not be read: {0}")]
    Protocol(String),
    #[error(transparent)]
    Identity(#[from] crate::auth::identity::IdentityError),
    #[error(transparent)]
    Store(#[from] tideline_sync::StoreError),
}

/// Enrol this instance with `upstream` using a one-time `code`, and keep the
/// credential it hands back for every later sync.
///
/// With `adopt`, the data directory has no station of its own yet (it was
/// never given one): the upstream enrols it for the code's station, which
/// the caller then makes the directory's ([`crate::data_dir::adopt_station`]).
pub fn enroll(
    records: &SharedRecords,
    data_dir: &std::path::Path,
    upstream: &str,
    code: &str,
    http: &reqwest::blocking::Client,
    adopt: bool,
    name: Option<&str>,
) -> Result<UpstreamCredential, EnrollError> {
    let key = InstanceKey::load(data_dir)?;
    let url = format!("{}/api/v1/enroll", upstream.trim_end_matches('/'));
    let response = http
        .post(&url)
        .json(&serde_json::json!({
            "code": code,
            "instance": key.instance,
            "public_key": key.public_key_base64(),
            "station": (!adopt).then(|| records.station()),
            "name": name,
        }))
        .send()
        .map_err(|e| EnrollError::Unreachable {
            url: upstream.to_string(),
            message: e.to_string(),
        })?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .map_err(|e| EnrollError::Protocol(e.to_string()))?;
    if !status.is_success() {
        return Err(EnrollError::Refused {
            status: status.as_u16(),
            message: body["message"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string(),
        });
    }
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| EnrollError::Protocol(format!("no {name} in the answer")))
    };
    let station = field("station")?;
    if !adopt && station != records.station() {
        return Err(EnrollError::WrongStation {
            code: station,
            local: records.station().to_string(),
        });
    }
    let credential = UpstreamCredential {
        upstream: upstream.to_string(),
        station,
        secret: field("credential")?,
        upstream_instance: field("upstream_instance")?
            .parse()
            .map_err(|_| EnrollError::Protocol("bad upstream_instance".into()))?,
    };
    devices::save_credential(records.store().as_ref(), &credential)?;
    Ok(credential)
}
