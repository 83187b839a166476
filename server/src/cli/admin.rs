//! `tideline admin …`, `tideline audit verify` and `tideline identity`:
//! people, stations, devices and the audit log, worked on the data
//! directory offline.

use super::common::{open_existing, open_offline, parse_duration};
use crate::auth::users::{self, Role, Username};
use crate::auth::{audit, AuditLog, Event, InstanceKey};
use crate::auth::{devices, phones, stations};
use crate::config::Settings;
use crate::data_dir::SharedRecords;
use anyhow::bail;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a user; the password is read from standard input.
    CreateUser {
        #[arg(long)]
        username: String,
        /// officer, supervisor, analyst or admin.
        #[arg(long)]
        role: String,
        /// The user's station, or HQ for all [default: this instance's station].
        #[arg(long = "user-station")]
        user_station: Option<String>,
    },
    /// Print a one-time code that enrols one downstream instance. The device's
    /// station is given with the global `--station CODE` (here it names the
    /// device's station, not this instance's).
    EnrollCode {
        /// boat or station.
        #[arg(long)]
        kind: String,
        /// How long the code stays valid: 90m, 24h, 7d [default: 24h].
        #[arg(long, default_value = "24h")]
        expires: String,
    },
    /// Revoke a device: its next sync is refused; its own data stays with it.
    Revoke { device: String },
    /// List enrolled devices.
    Devices,
    /// Phones running ODK Collect (docs/ODK.md).
    #[command(subcommand)]
    Phone(PhoneCommand),
    /// Create a station (at HQ): its code, name and island.
    CreateStation {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        island: String,
    },
}

#[derive(Subcommand)]
pub enum PhoneCommand {
    /// Issue a phone for a person and print its server URL and the settings
    /// QR code Collect scans (shown only now).
    Add {
        /// The officer or supervisor it submits for.
        #[arg(long)]
        user: String,
        /// What people call the phone ("Kestrel handset 2").
        #[arg(long)]
        name: Option<String>,
        /// This instance's address as phones reach it (https://192.168.8.1:8443).
        #[arg(long)]
        url: String,
        /// Also write the QR code as an SVG image here.
        #[arg(long)]
        qr: Option<std::path::PathBuf>,
    },
    /// List phones.
    List,
    /// Revoke a phone: its next request is refused with a message.
    Revoke { phone: String },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit non-zero and name every altered or missing entry.
    Verify,
}

/// `admin …`; `device_station` is the global `--station`, which for
/// `enroll-code` names the device's station rather than this instance's.
pub(super) fn admin(
    cmd: AdminCommand,
    settings: &Settings,
    device_station: Option<String>,
) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::CreateUser {
            username,
            role,
            user_station,
        } => {
            let records = open_offline(settings)?;
            create_user(&records, &username, &role, user_station.as_deref())
        }
        AdminCommand::EnrollCode { kind, expires } => {
            let Some(for_station) = device_station else {
                bail!("name the device's station: tideline admin enroll-code --station CODE --kind boat|station");
            };
            let records = open_offline(settings)?;
            enroll_code(&records, &for_station, &kind, &expires)
        }
        AdminCommand::Revoke { device } => revoke(&open_offline(settings)?, &device),
        AdminCommand::CreateStation { code, name, island } => {
            let records = open_offline(settings)?;
            let store = records.store().as_ref();
            let station = stations::create(store, &code, &name, &island)?;
            AuditLog::new().append(
                store,
                Event::new("cli", "station.create").target(station.code.clone()),
                true,
            )?;
            println!(
                "created station {} ({}, {})",
                station.code, station.name, station.island
            );
            Ok(())
        }
        AdminCommand::Phone(cmd) => phone(&open_offline(settings)?, cmd),
        AdminCommand::Devices => {
            let records = open_existing(settings)?;
            for d in devices::list(records.store().as_ref())? {
                println!(
                    "{}  {:<16} {:<7} {:<10} enrolled {}{}",
                    d.id,
                    d.name.as_deref().unwrap_or("(no name)"),
                    format!("{:?}", d.kind).to_lowercase(),
                    d.station,
                    d.enrolled_at,
                    if d.revoked { "  REVOKED" } else { "" }
                );
            }
            Ok(())
        }
    }
}

fn phone(records: &SharedRecords, cmd: PhoneCommand) -> anyhow::Result<()> {
    use crate::openrosa::settings as phone_settings;
    let store = records.store().as_ref();
    match cmd {
        PhoneCommand::Add {
            user,
            name,
            url,
            qr,
        } => {
            let Some(person) = users::find(store, &users::typed_name(&user))? else {
                bail!("there is no user {user:?} on this instance");
            };
            let (phone, token) = phones::issue(store, &person, name.as_deref())?;
            AuditLog::new().append(
                store,
                Event::new("cli", "phone.issue").target(phone.id.to_string()),
                true,
            )?;
            let setup = phone_settings::setup(&url, &token, &person.station);
            println!("{} for {} ({})", phone.label(), person.username, phone.id);
            println!("server URL: {}", setup.url);
            println!("In ODK Collect: add a project, Configure with QR code, and scan:");
            println!("{}", phone_settings::qr_terminal(&setup.qr_text));
            if let Some(path) = qr {
                std::fs::write(&path, phone_settings::qr_svg(&setup.qr_text))?;
                println!("QR code written to {}", path.display());
            }
            Ok(())
        }
        PhoneCommand::List => {
            for p in phones::list(store)? {
                println!(
                    "{}  {:<24} {:<16} issued {}{}",
                    p.id,
                    p.label(),
                    p.username,
                    p.issued_at,
                    if p.revoked { "  REVOKED" } else { "" }
                );
            }
            Ok(())
        }
        PhoneCommand::Revoke { phone } => {
            let id: uuid::Uuid = phone.parse().map_err(|_| {
                anyhow::anyhow!("{phone:?} is not a phone id (tideline admin phone list)")
            })?;
            let p = phones::revoke(store, &id)?;
            AuditLog::new().append(
                store,
                Event::new("cli", "phone.revoke").target(id.to_string()),
                true,
            )?;
            println!("revoked {} of {}", p.label(), p.username);
            Ok(())
        }
    }
}

pub(super) fn audit(cmd: AuditCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify => audit_verify(&open_existing(settings)?),
    }
}

pub(super) fn identity(settings: &Settings) -> anyhow::Result<()> {
    // Read from the key file alone, so this works while `serve` holds the store.
    let key = InstanceKey::load(&settings.data_dir)?;
    println!("instance id: {}", key.instance);
    println!("public key:  {} (ed25519, base64)", key.public_key_base64());
    Ok(())
}

fn create_user(
    records: &SharedRecords,
    username: &str,
    role: &str,
    station: Option<&str>,
) -> anyhow::Result<()> {
    let name = Username::try_from(username.to_string())?;
    let role: Role = role.parse()?;
    let station = station.unwrap_or(records.station());
    let store = records.store().as_ref();
    stations::check_known(store, records.station(), station)?;
    let password = read_password()?;
    let user = users::create(store, name, role, station, &password)?;
    AuditLog::new().append(
        store,
        Event::new("cli", "user.create")
            .target(user.username.to_string())
            .details(serde_json::json!({"role": user.role, "station": user.station})),
        true,
    )?;
    println!(
        "created {} user {} for station {}",
        user.role, user.username, user.station
    );
    Ok(())
}

/// The new password: from the terminal without echo (asked twice), or the
/// first line of standard input when it is a pipe or file.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        if first != again {
            bail!("the passwords differ; nothing was created");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input; nothing was created");
    }
    Ok(password)
}

fn enroll_code(
    records: &SharedRecords,
    station: &str,
    kind: &str,
    expires: &str,
) -> anyhow::Result<()> {
    let station = users::station_code(station)?;
    let kind: devices::DeviceKind = kind.parse()?;
    let valid = parse_duration(expires)?;
    if valid.as_secs() > 30 * 86_400 {
        bail!("a code may be valid for 30 days at most");
    }
    let store = records.store().as_ref();
    stations::check_known(store, records.station(), &station)?;
    let (code, expires_at) = devices::issue_code(store, &station, kind, valid)?;
    AuditLog::new().append(
        store,
        Event::new("cli", "device.code").details(serde_json::json!({
            "station": station, "kind": kind, "expires_at": expires_at
        })),
        true,
    )?;
    let until = chrono::DateTime::from_timestamp(expires_at, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    println!("{code}");
    eprintln!(
        "one-time code for a {} of station {station}, valid until {until}: on the device, run \
         `tideline --station {station} enroll --upstream URL --code {code}`",
        format!("{kind:?}").to_lowercase()
    );
    Ok(())
}

fn revoke(records: &SharedRecords, device: &str) -> anyhow::Result<()> {
    let id: uuid::Uuid = device.parse().map_err(|_| {
        anyhow::anyhow!("{device:?} is not a device id (see `tideline admin devices`)")
    })?;
    let store = records.store().as_ref();
    let d = devices::revoke(store, &id)?;
    AuditLog::new().append(
        store,
        Event::new("cli", "device.revoke").target(id.to_string()),
        true,
    )?;
    println!(
        "revoked {} (station {}); its next sync will be refused",
        d.id, d.station
    );
    Ok(())
}

fn audit_verify(records: &SharedRecords) -> anyhow::Result<()> {
    let (count, problems) = audit::verify(records.store().as_ref())?;
    if problems.is_empty() {
        let noun = if count == 1 { "entry" } else { "entries" };
        println!("audit log intact: {count} {noun}, every link verified");
        return Ok(());
    }
    for p in &problems {
        println!("entry {}: {}", p.seq, p.message);
    }
    bail!(
        "the audit log has {} problem(s) in {count} entries; it has been altered or damaged",
        problems.len()
    )
}
