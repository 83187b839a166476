//! Settings of an instance, from three layers: a TOML file, then environment
//! variables (`TIDELINE_…`), then command-line flags, each overriding the one
//! before. Values are checked here, at the edge, so the rest of the program
//! only sees a valid [`Settings`].

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_DATA_DIR: &str = "./tideline-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_STATION: &str = "LOCAL";
/// 1 MiB: a large boarding report is ~10 KiB of JSON, so this leaves room for
/// long narratives while keeping a hostile body from eating memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_CACHE_MB: u64 = 32;
/// How often an instance with an upstream syncs when nothing changes locally.
pub const DEFAULT_SYNC_INTERVAL_SECS: u64 = 60;
/// 1 MiB of changes per exchange, the sync engine's default page (see
/// `tideline_sync::engine::DEFAULT_PAGE_BYTES` for the measurements behind it):
/// a page crosses a 256 kbit/s link well within the 120 s request timeout.
pub const DEFAULT_SYNC_PAGE_KIB: u64 = tideline_sync::engine::DEFAULT_PAGE_BYTES / 1024;

/// The TOML file, every key optional (see deploy/tideline.example.toml).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub station: Option<String>,
    pub upstream: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub cache_mb: Option<u64>,
    pub sync_interval_secs: Option<u64>,
    pub auto_sync: Option<bool>,
    pub sync_page_kib: Option<u64>,
    pub session_idle_minutes: Option<u64>,
    pub session_max_hours: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub upstream_ca: Option<PathBuf>,
    pub attachment_max_mb: Option<u64>,
    pub attachment_types: Option<Vec<String>>,
    pub attachment_eager_forms: Option<Vec<String>>,
    pub map_tile_url: Option<String>,
}

/// Values given on the command line or through the environment (clap merges
/// those two, flags first).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub station: Option<String>,
    pub upstream: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub cache_mb: Option<u64>,
    pub sync_interval_secs: Option<u64>,
    pub auto_sync: Option<bool>,
    pub sync_page_kib: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub upstream_ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub station: String,
    /// Whether the station was set (flag, environment or file) rather than
    /// defaulted; a data directory keeps the station it was first used with.
    pub station_given: bool,
    pub upstream: Option<String>,
    pub max_body_bytes: usize,
    pub cache_bytes: u64,
    pub sync_interval_secs: u64,
    /// Sync in the background (after local changes and every interval). Off,
    /// an instance syncs only when asked (`sync/now`, `tideline sync`).
    pub auto_sync: bool,
    /// Change bytes per sync exchange. Smaller pages lose less to a cut link
    /// and fit slow links' timeouts; larger ones take fewer round trips.
    pub sync_page_bytes: u64,
    /// A login session ends after this long unused...
    pub session_idle: std::time::Duration,
    /// ...and this long after login, however busy.
    pub session_max_age: std::time::Duration,
    /// Serve HTTPS with this certificate chain and key (PEM); both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Trust the upstream's certificate through this CA (or the certificate
    /// itself, pinned), in addition to the public roots.
    pub upstream_ca: Option<PathBuf>,
    pub attachments: AttachmentPolicy,
    /// Map tiles for the web interface's map (`https://host/{z}/{x}/{y}.png`);
    /// without them the map is a coordinate grid.
    pub map_tile_url: Option<String>,
}

/// What files may be attached to records.
#[derive(Debug, Clone)]
pub struct AttachmentPolicy {
    pub max_bytes: usize,
    /// MIME types, as recognised from a file's first bytes.
    pub types: Vec<String>,
    /// Forms whose records' files a downstream fetches from its upstream at
    /// every sync. Files of other records come down only when someone opens
    /// them: a boat must not pull headquarters' whole archive over satellite.
    pub eager_forms: Vec<String>,
}

pub const DEFAULT_ATTACHMENT_MB: u64 = 25;
/// Photos (JPEG, PNG, HEIC, WebP) and PDF documents.
pub const DEFAULT_ATTACHMENT_TYPES: [&str; 5] = [
    "image/jpeg",
    "image/png",
    "image/heif",
    "image/webp",
    "application/pdf",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("listen address {0:?} is not an address like 127.0.0.1:8080")]
    Listen(String),
    #[error("station code {0:?} must be 1-32 characters of A-Z, 0-9 and '-'")]
    Station(String),
    #[error("upstream {0:?} must be an http:// or https:// URL")]
    Upstream(String),
    #[error("max_body_bytes must be between 1024 and 268435456")]
    BodyLimit,
    #[error("sync_interval_secs must be between 1 and 86400")]
    SyncInterval,
    #[error("sync_page_kib must be between 1 and 8192")]
    SyncPage,
    #[error(
        "session_idle_minutes must be between 1 and 10080, and session_max_hours between 1 and 720"
    )]
    Session,
    #[error(
        "map_tile_url {0:?} must be an http(s) URL or a path with {{z}}, {{x}} and {{y}}, like \
         https://tiles.example/{{z}}/{{x}}/{{y}}.png"
    )]
    MapTiles(String),
    #[error("tls_cert and tls_key go together: give both or neither")]
    TlsPair,
    #[error("attachment_max_mb must be between 1 and 1024, and attachment_types a non-empty list")]
    Attachments,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

impl Settings {
    /// Resolve flags and environment over the file (if any) over the defaults.
    pub fn resolve(over: &Overrides) -> Result<Settings, ConfigError> {
        let file = match &over.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Settings::merge(over.clone(), file)
    }

    pub fn merge(over: Overrides, file: FileConfig) -> Result<Settings, ConfigError> {
        let listen = over
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen.parse().map_err(|_| ConfigError::Listen(listen))?;
        let station_given = over.station.is_some() || file.station.is_some();
        let station = over
            .station
            .or(file.station)
            .unwrap_or_else(|| DEFAULT_STATION.to_string());
        let station_ok = !station.is_empty()
            && station.len() <= 32
            && station
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-');
        if !station_ok {
            return Err(ConfigError::Station(station));
        }
        let upstream = over.upstream.or(file.upstream);
        if let Some(u) = &upstream {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError::Upstream(u.clone()));
            }
        }
        let max_body_bytes = over
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=256 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::BodyLimit);
        }
        let sync_interval_secs = over
            .sync_interval_secs
            .or(file.sync_interval_secs)
            .unwrap_or(DEFAULT_SYNC_INTERVAL_SECS);
        if !(1..=86_400).contains(&sync_interval_secs) {
            return Err(ConfigError::SyncInterval);
        }
        let sync_page_kib = over
            .sync_page_kib
            .or(file.sync_page_kib)
            .unwrap_or(DEFAULT_SYNC_PAGE_KIB);
        if !(1..=8192).contains(&sync_page_kib) {
            return Err(ConfigError::SyncPage);
        }
        let idle_minutes = file
            .session_idle_minutes
            .unwrap_or(crate::auth::sessions::DEFAULT_IDLE.as_secs() / 60);
        let max_hours = file
            .session_max_hours
            .unwrap_or(crate::auth::sessions::DEFAULT_MAX_AGE.as_secs() / 3600);
        if !(1..=10_080).contains(&idle_minutes) || !(1..=720).contains(&max_hours) {
            return Err(ConfigError::Session);
        }
        let tls = match (
            over.tls_cert.or(file.tls_cert),
            over.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(ConfigError::TlsPair),
        };
        let max_mb = file.attachment_max_mb.unwrap_or(DEFAULT_ATTACHMENT_MB);
        let types = file.attachment_types.unwrap_or_else(|| {
            DEFAULT_ATTACHMENT_TYPES
                .iter()
                .map(|t| t.to_string())
                .collect()
        });
        if !(1..=1024).contains(&max_mb) || types.is_empty() {
            return Err(ConfigError::Attachments);
        }
        let map_tile_url = file.map_tile_url.filter(|u| !u.trim().is_empty());
        if let Some(url) = &map_tile_url {
            if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/'))
                || !["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p))
            {
                return Err(ConfigError::MapTiles(url.clone()));
            }
        }
        Ok(Settings {
            map_tile_url,
            attachments: AttachmentPolicy {
                max_bytes: (max_mb * 1024 * 1024) as usize,
                types,
                eager_forms: file.attachment_eager_forms.unwrap_or_default(),
            },
            tls,
            upstream_ca: over.upstream_ca.or(file.upstream_ca),
            session_idle: std::time::Duration::from_secs(idle_minutes * 60),
            session_max_age: std::time::Duration::from_secs(max_hours * 3600),
            sync_page_bytes: sync_page_kib * 1024,
            auto_sync: over.auto_sync.or(file.auto_sync).unwrap_or(true),
            sync_interval_secs,
            station_given,
            data_dir: over
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen,
            station,
            upstream,
            max_body_bytes,
            cache_bytes: over.cache_mb.or(file.cache_mb).unwrap_or(DEFAULT_CACHE_MB) * 1024 * 1024,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(toml_text: &str) -> FileConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn the_example_configurations_in_deploy_are_valid() {
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        for (name, station, upstream) in [
            ("tideline.example.toml", "BB-01", false),
            ("boat.toml", "BB-01", true),
            ("station.toml", "BB-01", true),
            ("hq.toml", "HQ", false),
        ] {
            let text = std::fs::read_to_string(deploy.join(name)).unwrap();
            let s = Settings::merge(Overrides::default(), file(&text))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.station, station, "{name}");
            assert_eq!(s.upstream.is_some(), upstream, "{name}");
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::merge(Overrides::default(), FileConfig::default()).unwrap();
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.station, DEFAULT_STATION);
        assert_eq!(s.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn flags_override_the_file() {
        let f = file("station = \"BB-01\"\nlisten = \"0.0.0.0:9000\"\ndata_dir = \"/srv/t\"");
        let over = Overrides {
            station: Some("LC-02".into()),
            ..Default::default()
        };
        let s = Settings::merge(over, f).unwrap();
        assert_eq!(s.station, "LC-02");
        assert_eq!(s.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.data_dir, PathBuf::from("/srv/t"));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        assert!(toml::from_str::<FileConfig>("colour = \"blue\"").is_err());
        let bad = |over: Overrides| Settings::merge(over, FileConfig::default()).unwrap_err();
        assert!(matches!(
            bad(Overrides {
                listen: Some("nowhere".into()),
                ..Default::default()
            }),
            ConfigError::Listen(_)
        ));
        assert!(matches!(
            bad(Overrides {
                station: Some("bb 01".into()),
                ..Default::default()
            }),
            ConfigError::Station(_)
        ));
        assert!(matches!(
            bad(Overrides {
                upstream: Some("ftp://x".into()),
                ..Default::default()
            }),
            ConfigError::Upstream(_)
        ));
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../../deploy/tideline.example.toml");
        let f: FileConfig = toml::from_str(text).unwrap();
        Settings::merge(Overrides::default(), f).unwrap();
    }
}
