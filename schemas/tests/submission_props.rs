//! Reading a phone's instance XML is the inverse of writing it, for every
//! field type an XForm carries, and no input (random bytes, or a valid
//! instance cut or altered anywhere) makes the reader panic.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tideline_schemas::{submission, Form};

fn form() -> Form {
    Form::parse(
        &json!({"id": "every-type", "version": 4, "title": "Every type", "fields": [
            {"name": "text", "label": "Text", "type": "text"},
            {"name": "count", "label": "Count", "type": "integer"},
            {"name": "length", "label": "Length", "type": "decimal"},
            {"name": "kind", "label": "Kind", "type": "select_one",
             "choices": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}]},
            {"name": "gear", "label": "Gear", "type": "select_multiple",
             "choices": [{"value": "nets", "label": "Nets"}, {"value": "lines", "label": "Lines"},
                         {"value": "traps", "label": "Traps"}]},
            {"name": "where", "label": "Where", "type": "geopoint"},
            {"name": "day", "label": "Day", "type": "date"},
            {"name": "at", "label": "At", "type": "dateTime"},
            {"name": "clock", "label": "Clock", "type": "time"},
            {"name": "photo", "label": "Photo", "type": "image"},
            {"name": "found", "label": "Found", "type": "boolean"},
            {"name": "seen", "label": "Seen", "type": "acknowledge"},
            {"name": "vessel", "label": "Vessel", "type": "group", "fields": [
                {"name": "vessel_name", "label": "Name", "type": "text"},
                {"name": "crew", "label": "Crew", "type": "repeat", "fields": [
                    {"name": "who", "label": "Who", "type": "text"},
                    {"name": "age", "label": "Age", "type": "integer"}
                ]}
            ]}
        ]})
        .to_string(),
    )
    .expect("valid form")
}

/// Text XML can carry, not blank (a blank answer is no answer).
fn text() -> impl Strategy<Value = String> {
    "[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F]{1,24}".prop_filter("not blank", |s| !s.trim().is_empty())
}

fn finite(range: std::ops::RangeInclusive<f64>) -> impl Strategy<Value = Value> {
    range.prop_map(|x| json!(x))
}

/// Each answer, or none.
fn answers() -> impl Strategy<Value = Map<String, Value>> {
    let crew_item = (
        proptest::option::of(text()),
        proptest::option::of(any::<i64>()),
    )
        .prop_filter("not empty", |(w, a)| w.is_some() || a.is_some())
        .prop_map(|(who, age)| {
            let mut m = Map::new();
            if let Some(w) = who {
                m.insert("who".into(), json!(w));
            }
            if let Some(a) = age {
                m.insert("age".into(), json!(a));
            }
            Value::Object(m)
        });
    let vessel = (
        proptest::option::of(text()),
        proptest::option::of(proptest::collection::vec(crew_item, 1..4)),
    )
        .prop_filter("not empty", |(n, c)| n.is_some() || c.is_some())
        .prop_map(|(name, crew)| {
            let mut m = Map::new();
            if let Some(n) = name {
                m.insert("vessel_name".into(), json!(n));
            }
            if let Some(c) = crew {
                m.insert("crew".into(), Value::Array(c));
            }
            Value::Object(m)
        });
    let gear =
        proptest::sample::subsequence(vec!["nets", "lines", "traps"], 1..=3).prop_map(|g| json!(g));
    let day = (1970i32..2100, 1u32..=12, 1u32..=28)
        .prop_map(|(y, m, d)| json!(format!("{y:04}-{m:02}-{d:02}")));
    let at = (0i64..4_000_000_000, -12i32..=12).prop_map(|(secs, h)| {
        let offset = chrono::FixedOffset::east_opt(h * 3600).unwrap();
        let t = chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .with_timezone(&offset);
        json!(t.to_rfc3339())
    });
    let clock =
        (0u32..24, 0u32..60, 0u32..60).prop_map(|(h, m, s)| json!(format!("{h:02}:{m:02}:{s:02}")));
    (
        (
            proptest::option::of(text().prop_map(|t| json!(t))),
            proptest::option::of(any::<i64>().prop_map(|n| json!(n))),
            proptest::option::of(finite(-1e9..=1e9)),
            proptest::option::of(prop_oneof![Just(json!("a")), Just(json!("b"))]),
            proptest::option::of(gear),
            proptest::option::of(
                (finite(-90.0..=90.0), finite(-180.0..=180.0))
                    .prop_map(|(lat, lon)| json!({"lat": lat, "lon": lon})),
            ),
            proptest::option::of(day),
        ),
        (
            proptest::option::of(at),
            proptest::option::of(clock),
            proptest::option::of("[0-9a-f]{64}".prop_map(|h| json!(h))),
            proptest::option::of(any::<bool>().prop_map(|b| json!(b))),
            proptest::option::of(Just(json!("OK"))),
            proptest::option::of(vessel),
        ),
    )
        .prop_map(|((t, c, l, k, g, w, d), (a, cl, p, f, s, v))| {
            let names = [
                "text", "count", "length", "kind", "gear", "where", "day", "at", "clock", "photo",
                "found", "seen", "vessel",
            ];
            let values = [t, c, l, k, g, w, d, a, cl, p, f, s, v];
            names
                .iter()
                .zip(values)
                .filter_map(|(n, v)| v.map(|v| (n.to_string(), v)))
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reading_inverts_writing(fields in answers(), deprecated in proptest::option::of("uuid:[0-9a-f]{8}")) {
        let form = form();
        let xml = submission::write(&form, &fields, "uuid:1234", deprecated.as_deref(), &|h| format!("{h}.jpg"));
        let read = submission::read(&form, xml.as_bytes(), &|name| {
            name.strip_suffix(".jpg").map(str::to_string)
        })
        .map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(&read.fields, &fields, "{}", xml);
        prop_assert_eq!(read.instance_id, "uuid:1234");
        prop_assert_eq!(read.deprecated_id, deprecated);
        prop_assert_eq!(read.form_id, "every-type");
        prop_assert_eq!(read.version.as_deref(), Some("4"));
        let photo = fields.get("photo").and_then(Value::as_str).map(|h| format!("{h}.jpg"));
        prop_assert_eq!(read.files, photo.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn no_bytes_make_the_reader_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = submission::header(&bytes);
        let _ = submission::read(&form(), &bytes, &|_| None);
    }

    #[test]
    fn no_cut_or_altered_instance_makes_the_reader_panic(
        fields in answers(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let form = form();
        let mut xml = submission::write(&form, &fields, "uuid:1", None, &|h| h.to_string()).into_bytes();
        let i = at.index(xml.len());
        xml[i] = byte;
        let _ = submission::read(&form, &xml, &|_| None);
        let _ = submission::read(&form, &xml[..cut.index(xml.len())], &|_| None);
    }
}
