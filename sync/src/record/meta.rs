//! A record's status and the metadata its document carries (form,
//! version, station, who and which device created it).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tideline_schemas::{Form, RecordId};

/// Where a record is in its review workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Draft,
    Submitted,
    Reviewed,
    Closed,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Draft,
        Status::Submitted,
        Status::Reviewed,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Submitted => "submitted",
            Status::Reviewed => "reviewed",
            Status::Closed => "closed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown status {0:?}: expected draft, submitted, reviewed or closed")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// The immutable facts about a record, written once at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    pub id: RecordId,
    pub form: String,
    pub form_version: u32,
    pub station: String,
    pub created_by: String,
    pub created_at: String,
    /// The person who created it on that device (`user:alice`), if one did;
    /// absent in records made before this was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_person: Option<String>,
    /// The ODK instance (`uuid:...`) a phone submitted it as, when it came
    /// from ODK Collect (docs/ODK.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odk_instance: Option<String>,
}

impl RecordMeta {
    /// Meta for a record created now.
    pub fn new(id: RecordId, form: &Form, station: &str, device: &str) -> Self {
        RecordMeta {
            id,
            form: form.id.clone(),
            form_version: form.version,
            station: station.to_string(),
            created_by: device.to_string(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            created_by_person: None,
            odk_instance: None,
        }
    }

    /// The same, submitted from ODK Collect as `instance`.
    pub fn odk(mut self, instance: Option<&str>) -> Self {
        self.odk_instance = instance.map(str::to_string);
        self
    }

    /// The same, naming the person who creates it.
    pub fn by(mut self, person: Option<&str>) -> Self {
        self.created_by_person = person.map(str::to_string);
        self
    }
}
