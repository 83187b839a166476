//! A certificate authority of the instance's own, for a boat's or a
//! station's LAN where no public certificate can be had. Tablets give a page
//! the device's position only over HTTPS they trust, so `tideline tls init`
//! makes a small CA and a server certificate signed by it (in
//! `<data>/tls/`), `serve` uses them when no other certificate is given, and
//! `/tablet` offers the CA to install (docs/OPERATIONS.md).
//!
//! The server certificate lasts 825 days, the most iOS accepts; the CA ten
//! years, so a renewed server certificate needs no new install on tablets.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where the files live inside a data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// The CA certificate tablets install, the server's certificate chain, and its key.
pub struct Files {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn files(data_dir: &Path) -> Files {
    let d = dir(data_dir);
    Files {
        ca: d.join("ca.pem"),
        cert: d.join("server.pem"),
        key: d.join("server.key"),
    }
}

/// The certificate and key `serve` should use from the data directory, if
/// `tideline tls init` made them.
pub fn existing(data_dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let f = files(data_dir);
    (f.cert.is_file() && f.key.is_file()).then_some((f.cert, f.key))
}

#[derive(Debug, thiserror::Error)]
pub enum TlsInitError {
    #[error("{0} already holds certificates; pass --force to replace them (tablets that trust the old CA must then install the new one)")]
    Exists(PathBuf),
    #[error("name the instance as tablets reach it: --name HOST and/or --ip ADDRESS")]
    NoNames,
    #[error("could not make the certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = chrono::Utc::now();
    let date = |t: chrono::DateTime<chrono::Utc>| {
        use chrono::Datelike;
        rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8)
    };
    params.not_before = date(now - chrono::Duration::days(1));
    params.not_after = date(now + chrono::Duration::days(days));
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), TlsInitError> {
    let fail = |source| TlsInitError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, text).map_err(fail)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    Ok(())
}

/// Make the CA and a server certificate for `names` and `ips` in
/// `<data>/tls/`; returns where they are.
pub fn init(
    data_dir: &Path,
    names: &[String],
    ips: &[IpAddr],
    force: bool,
) -> Result<Files, TlsInitError> {
    if names.is_empty() && ips.is_empty() {
        return Err(TlsInitError::NoNames);
    }
    let f = files(data_dir);
    if f.ca.exists() && !force {
        return Err(TlsInitError::Exists(dir(data_dir)));
    }
    let label = names
        .first()
        .cloned()
        .or_else(|| ips.first().map(IpAddr::to_string))
        .unwrap_or_default();
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("Tideline CA for {label}"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca_params, 3650);
    let ca = ca_params.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name.push(DnType::CommonName, label);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, 825);
    let cert = params.signed_by(&key, &ca, &ca_key)?;

    let d = dir(data_dir);
    std::fs::create_dir_all(&d).map_err(|source| TlsInitError::Write {
        path: d.clone(),
        source,
    })?;
    write(&f.ca, &ca.pem(), false)?;
    // The chain, so clients that trust only the CA can build the path.
    write(&f.cert, &format!("{}{}", cert.pem(), ca.pem()), false)?;
    write(&f.key, &key.serialize_pem(), true)?;
    // The CA's own key is not kept: nothing else is ever signed with it,
    // and a stolen laptop then cannot mint certificates tablets trust.
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_makes_a_ca_and_a_server_certificate_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "192.168.8.10".parse().unwrap();
        let f = init(dir.path(), &["kestrel.local".into()], &[ip], false).unwrap();
        let chain = std::fs::read_to_string(&f.cert).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(std::fs::read_to_string(&f.key)
            .unwrap()
            .contains("PRIVATE KEY"));
        assert!(existing(dir.path()).is_some());
        assert!(matches!(
            init(dir.path(), &["kestrel.local".into()], &[], false),
            Err(TlsInitError::Exists(_))
        ));
        assert!(init(dir.path(), &[], &[], true).is_err());
        init(dir.path(), &[], &[ip], true).unwrap();
    }
}
