//! What a phone is given: its server URL (the token inside it) and ODK
//! Collect's settings QR code, which is zlib-compressed, base64-encoded JSON
//! (`{"general": {...}, "admin": {}, "project": {...}}`, as ODK Central makes
//! it), here with the form update mode and auto-send on Wi-Fi set.

use base64::Engine;
use flate2::write::ZlibEncoder;
use std::io::Write;

/// The URL Collect is given: it appends `/formList` and `/submission`.
pub fn server_url(origin: &str, token: &str, station: &str) -> String {
    format!(
        "{}/v1/key/{token}/projects/{}",
        origin.trim_end_matches('/'),
        crate::links::urlencode(station)
    )
}

/// What a phone issued for a person of `station` is given: its server URL
/// and the text of its settings QR code.
pub struct Setup {
    pub url: String,
    pub qr_text: String,
}

/// The setup of a phone with `token`, reaching this instance at `origin`.
pub fn setup(origin: &str, token: &str, station: &str) -> Setup {
    let url = server_url(origin, token, station);
    let qr_text = qr_text(&settings_json(&url, &format!("Tideline {station}")));
    Setup { url, qr_text }
}

/// The settings JSON a phone scans.
pub fn settings_json(url: &str, project: &str) -> serde_json::Value {
    serde_json::json!({
        "general": {
            "server_url": url,
            // Forms on the phone follow the server's list exactly: a new
            // version replaces the old one, and withdrawn forms go away.
            "form_update_mode": "match_exactly",
            "periodic_form_updates_check": "every_fifteen_minutes",
            // At sea there is no network; back on the boat's or station's
            // Wi-Fi, finished forms go by themselves.
            "autosend": "wifi_only"
        },
        "admin": {},
        "project": { "name": project, "icon": "T" }
    })
}

/// The QR code's text: the settings, zlib-compressed, base64.
pub fn qr_text(settings: &serde_json::Value) -> String {
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing into a Vec cannot fail.
    let _ = z.write_all(settings.to_string().as_bytes());
    let bytes = z.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The QR code as an SVG image.
pub fn qr_svg(text: &str) -> String {
    qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(260, 260)
                .build()
        })
        .unwrap_or_default()
}

/// The QR code as text for a terminal (two rows of modules per line).
pub fn qr_terminal(text: &str) -> String {
    qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    #[test]
    fn the_qr_text_is_zlib_base64_of_the_settings() {
        let url = server_url("https://hq.example/", "tlp.ab.cd", "BB 01");
        assert_eq!(url, "https://hq.example/v1/key/tlp.ab.cd/projects/BB%2001");
        let settings = settings_json(&url, "Tideline BB-01");
        let text = qr_text(&settings);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .unwrap();
        let mut json = String::new();
        ZlibDecoder::new(&bytes[..])
            .read_to_string(&mut json)
            .unwrap();
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["general"]["server_url"], url.as_str());
        assert_eq!(back["general"]["autosend"], "wifi_only");
        assert!(qr_svg(&text).starts_with("<?xml"));
    }
}
