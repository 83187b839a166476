//! The posted entry form and record fields, both ways, with no I/O: a
//! record's fields flattened into input names (`f.crew[1].name`) for the
//! page, the posted form read back into fields (with a problem for each
//! value of the wrong shape), times with the browser's UTC offset, and
//! which top-level fields an edit changed.

use crate::web::entry::storable::Problems;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use tideline_schemas::{Field, FieldType};

/// The form as posted: input name → every value given for it.
pub(super) type Posted = BTreeMap<String, Vec<String>>;

pub(super) fn one<'a>(posted: &'a Posted, name: &str) -> &'a str {
    posted
        .get(name)
        .and_then(|v| v.first())
        .map(String::as_str)
        .unwrap_or("")
}

/// Every value posted for `name` (checkboxes, kept photos).
pub(super) fn all<'a>(posted: &'a Posted, name: &str) -> Vec<&'a str> {
    posted
        .get(name)
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
}

/// Indices of the items of repeat `path` present in the posted form.
pub(super) fn items(posted: &Posted, path: &str) -> Vec<usize> {
    let prefix = format!("f.{path}[");
    let found: BTreeSet<usize> = posted
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| k[prefix.len()..].split(']').next()?.parse().ok())
        .collect();
    found.into_iter().collect()
}

/// A record's fields as the form would post them, for editing.
pub(super) fn flatten(fields: &[Field], values: &Json, prefix: &str, out: &mut Posted) {
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        let name = format!("f.{path}");
        let v = &values[&f.name];
        fn put(out: &mut Posted, k: String, s: String) {
            out.entry(k).or_default().push(s);
        }
        match (f.field_type, v) {
            (_, Json::Null) => {}
            (FieldType::Repeat, Json::Array(list)) => {
                for (i, item) in list.iter().enumerate() {
                    out.insert(format!("f.{path}[{i}]._row"), vec!["1".into()]);
                    flatten(&f.fields, item, &format!("{path}[{i}]."), out);
                }
            }
            (FieldType::Group, Json::Object(_)) => flatten(&f.fields, v, &format!("{path}."), out),
            (FieldType::Geopoint, Json::Object(p)) => {
                for k in ["lat", "lon"] {
                    if let Some(n) = p.get(k) {
                        put(out, format!("{name}.{k}"), n.to_string());
                    }
                }
            }
            (FieldType::DateTime, Json::String(s)) => {
                // The clock time in the box, and the offset it was recorded
                // with beside it, so the same instant goes back.
                if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                    put(out, format!("{name}._offset"), t.format("%:z").to_string());
                }
                put(out, name, local_input(s))
            }
            (FieldType::Text, Json::Array(list)) => put(
                out,
                name,
                list.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            (_, Json::Array(list)) => {
                for item in list {
                    put(
                        out,
                        name.clone(),
                        item.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| item.to_string()),
                    );
                }
            }
            (_, Json::String(s)) => put(out, name, s.clone()),
            (_, other) => put(out, name, other.to_string()),
        }
    }
}

/// An RFC 3339 time as a `datetime-local` input shows it (its own clock time).
pub(super) fn local_input(rfc3339: &str) -> String {
    use chrono::Timelike;
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| match t.second() {
            0 => t.format("%Y-%m-%dT%H:%M").to_string(),
            _ => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// The posted form as record fields, with a problem for each value that
/// does not even have the right shape (a word in a number field).
pub(super) fn fields_of(
    fields: &[Field],
    posted: &Posted,
    prefix: &str,
    tz_minutes: i32,
    problems: &mut Problems,
) -> Map<String, Json> {
    let mut out = Map::new();
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        let name = format!("f.{path}");
        let text = one(posted, &name).trim().to_string();
        let mut problem = |m: &str| {
            problems
                .entry(path.clone())
                .or_default()
                .push(m.to_string())
        };
        let value = match f.field_type {
            FieldType::Note => None,
            FieldType::Repeat => Some(Json::Array(
                items(posted, &path)
                    .into_iter()
                    .map(|i| {
                        Json::Object(fields_of(
                            &f.fields,
                            posted,
                            &format!("{path}[{i}]."),
                            tz_minutes,
                            problems,
                        ))
                    })
                    .collect(),
            )),
            FieldType::Text if f.multiple => {
                let lines: Vec<Json> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Json::String(l.to_string()))
                    .collect();
                (!lines.is_empty()).then_some(Json::Array(lines))
            }
            // Browsers send a textarea's line breaks as CRLF.
            FieldType::Text => (!text.is_empty()).then(|| Json::String(text.replace("\r\n", "\n"))),
            FieldType::SelectOne | FieldType::Date | FieldType::Time => {
                (!text.is_empty()).then(|| Json::String(text.clone()))
            }
            FieldType::Acknowledge => (text == "OK").then(|| Json::String(text.clone())),
            FieldType::Group => {
                let inner = fields_of(&f.fields, posted, &format!("{path}."), tz_minutes, problems);
                (!inner.is_empty()).then_some(Json::Object(inner))
            }
            FieldType::Integer if text.is_empty() => None,
            FieldType::Integer => match text.parse::<i64>() {
                Ok(n) => Some(Json::from(n)),
                Err(_) => {
                    problem("Enter a whole number, like 4.");
                    None
                }
            },
            FieldType::Decimal if text.is_empty() => None,
            FieldType::Decimal => match text.replace(',', ".").parse::<f64>() {
                Ok(n) if n.is_finite() => serde_json::Number::from_f64(n).map(Json::Number),
                _ => {
                    problem("Enter a number, like 2.5.");
                    None
                }
            },
            FieldType::Boolean => match text.as_str() {
                "true" => Some(Json::Bool(true)),
                "false" => Some(Json::Bool(false)),
                _ => None,
            },
            FieldType::SelectMultiple | FieldType::Image => {
                let list: Vec<Json> = posted
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .filter(|v| !v.is_empty())
                    .map(|v| Json::String(v.clone()))
                    .collect();
                match (f.field_type, f.multiple) {
                    (FieldType::Image, false) => list.into_iter().next(),
                    _ => (!list.is_empty()).then_some(Json::Array(list)),
                }
            }
            FieldType::Geopoint => {
                let lat = one(posted, &format!("{name}.lat")).trim().to_string();
                let lon = one(posted, &format!("{name}.lon")).trim().to_string();
                match (lat.is_empty(), lon.is_empty()) {
                    (true, true) => None,
                    _ => match (lat.parse::<f64>(), lon.parse::<f64>()) {
                        (Ok(a), Ok(o)) if a.is_finite() && o.is_finite() => {
                            Some(serde_json::json!({ "lat": a, "lon": o }))
                        }
                        _ => {
                            problem("Enter both latitude and longitude as decimal degrees, like 13.1 and -59.6.");
                            None
                        }
                    },
                }
            }
            FieldType::DateTime if text.is_empty() => None,
            FieldType::DateTime => match with_offset(
                &text,
                offset_of(one(posted, &format!("{name}._offset"))).unwrap_or(tz_minutes),
            ) {
                Some(t) => Some(Json::String(t)),
                None => {
                    problem("Enter a date and time.");
                    None
                }
            },
        };
        if let Some(v) = value {
            out.insert(f.name.clone(), v);
        }
    }
    out
}

/// `-04:00` as minutes east of UTC.
pub(super) fn offset_of(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    Some(sign * (h.parse::<i32>().ok()? * 60 + m.parse::<i32>().ok()?))
}

/// A `datetime-local` value with the browser's UTC offset (minutes east of
/// UTC, sent by the page's script; UTC without it). An RFC 3339 value passes.
pub(super) fn with_offset(local: &str, tz_minutes: i32) -> Option<String> {
    if chrono::DateTime::parse_from_rfc3339(local).is_ok() {
        return Some(local.to_string());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    let offset = chrono::FixedOffset::east_opt(tz_minutes * 60)?;
    let t = naive.and_local_timezone(offset).single()?;
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The top-level fields to write: those that differ from what the page was
/// drawn with (all of them without that), an emptied one as null. A field
/// nobody touched here is not written, so a change that arrived by sync while
/// the page was open is not overwritten with what the page showed.
pub(super) fn changed_fields(
    names: &[String],
    fields: &Map<String, Json>,
    original: Option<&Map<String, Json>>,
) -> Map<String, Json> {
    let mut patch = Map::new();
    for name in names {
        let new = fields.get(name).cloned().unwrap_or(Json::Null);
        let old = original.map(|o| o.get(name).cloned().unwrap_or(Json::Null));
        if old.as_ref() != Some(&new) {
            patch.insert(name.clone(), new);
        }
    }
    patch
}

/// Every field path the page draws, to tell which problems have a place.
pub(super) fn all_paths(fields: &[Field], posted: &Posted, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        if f.field_type == FieldType::Repeat {
            for i in items(posted, &path) {
                out.extend(all_paths(&f.fields, posted, &format!("{path}[{i}].")));
            }
        } else if f.field_type == FieldType::Group {
            out.extend(all_paths(&f.fields, posted, &format!("{path}.")));
        }
        out.insert(path);
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tideline_schemas::{Form, FormRegistry};

    /// Values a person could type into `field`, as the record would hold them.
    fn value(field: &Field) -> BoxedStrategy<Option<Json>> {
        let text = "[A-Za-z0-9][A-Za-z0-9 ,.'/-]{0,20}[A-Za-z0-9]";
        let some = match field.field_type {
            FieldType::Note => return Just(None).boxed(),
            FieldType::Text if field.multiple => prop::collection::vec(text, 1..4)
                .prop_map(|l| Json::Array(l.into_iter().map(Json::String).collect()))
                .boxed(),
            FieldType::Text if field.appearance.as_deref() == Some("multiline") => {
                prop::collection::vec(text, 1..4)
                    .prop_map(|l| Json::String(l.join("\n")))
                    .boxed()
            }
            FieldType::Text => text.prop_map(Json::String).boxed(),
            FieldType::Integer => (-1000i64..100_000).prop_map(Json::from).boxed(),
            FieldType::Decimal => (-1.0e6f64..1.0e6).prop_map(Json::from).boxed(),
            FieldType::Boolean => any::<bool>().prop_map(Json::Bool).boxed(),
            FieldType::SelectOne => prop::sample::select(
                field
                    .choices
                    .iter()
                    .map(|c| c.value.clone())
                    .collect::<Vec<_>>(),
            )
            .prop_map(Json::String)
            .boxed(),
            FieldType::SelectMultiple => prop::sample::subsequence(
                field
                    .choices
                    .iter()
                    .map(|c| c.value.clone())
                    .collect::<Vec<_>>(),
                1..=field.choices.len(),
            )
            .prop_map(|v| Json::Array(v.into_iter().map(Json::String).collect()))
            .boxed(),
            FieldType::Geopoint => (-90.0f64..90.0, -180.0f64..180.0)
                .prop_map(|(lat, lon)| serde_json::json!({ "lat": lat, "lon": lon }))
                .boxed(),
            FieldType::Date => (2000i32..2100, 1u32..13, 1u32..29)
                .prop_map(|(y, m, d)| Json::String(format!("{y:04}-{m:02}-{d:02}")))
                .boxed(),
            FieldType::DateTime => (
                2000i32..2100,
                1u32..13,
                1u32..29,
                0u32..24,
                0u32..60,
                0u32..60,
                prop::sample::select(vec!["-04:00", "Z", "+05:30", "-00:30"]),
            )
                .prop_map(|(y, mo, d, h, mi, sec, z)| {
                    Json::String(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{z}"))
                })
                .boxed(),
            FieldType::Image if field.multiple => prop::collection::vec("[0-9a-f]{64}", 1..3)
                .prop_map(|l| Json::Array(l.into_iter().map(Json::String).collect()))
                .boxed(),
            FieldType::Image => "[0-9a-f]{64}".prop_map(Json::String).boxed(),
            FieldType::Time => (0u32..24, 0u32..60)
                .prop_map(|(h, m)| Json::String(format!("{h:02}:{m:02}")))
                .boxed(),
            FieldType::Acknowledge => Just(Json::String("OK".into())).boxed(),
            // A group is posted as its children; one with no answers is absent.
            FieldType::Group => {
                return fields(&field.fields)
                    .prop_map(|m| (!m.is_empty()).then_some(Json::Object(m)))
                    .boxed()
            }
            // A record always holds its repeats, empty or not.
            FieldType::Repeat => {
                return prop::collection::vec(fields(&field.fields), 0..3)
                    .prop_map(|items| {
                        Some(Json::Array(items.into_iter().map(Json::Object).collect()))
                    })
                    .boxed()
            }
        };
        prop::option::of(some).boxed()
    }

    fn fields(list: &[Field]) -> BoxedStrategy<Map<String, Json>> {
        let names: Vec<String> = list.iter().map(|f| f.name.clone()).collect();
        list.iter()
            .map(value)
            .collect::<Vec<_>>()
            .prop_map(move |values| {
                names
                    .iter()
                    .zip(values)
                    .filter_map(|(n, v)| v.map(|v| (n.clone(), v)))
                    .collect()
            })
            .boxed()
    }

    /// Groups (also inside a repeat), times and acknowledgements.
    fn grouped() -> Form {
        Form::parse(
            &serde_json::json!({"id": "grouped", "version": 1, "title": "Grouped", "fields": [
                {"name": "vessel", "label": "Vessel", "type": "group", "fields": [
                    {"name": "name", "label": "Name", "type": "text"},
                    {"name": "length", "label": "Length", "type": "decimal"}
                ]},
                {"name": "at", "label": "Time", "type": "time"},
                {"name": "rights", "label": "Rights read", "type": "acknowledge"},
                {"name": "crew", "label": "Crew", "type": "repeat", "fields": [
                    {"name": "person", "label": "Person", "type": "group", "fields": [
                        {"name": "name", "label": "Name", "type": "text"}
                    ]}
                ]}
            ]})
            .to_string(),
        )
        .unwrap()
    }

    fn roundtrip(form: &Form, record: &Map<String, Json>) -> (Map<String, Json>, Problems) {
        let mut posted = Posted::new();
        flatten(&form.fields, &Json::Object(record.clone()), "", &mut posted);
        let mut problems = Problems::new();
        let back = fields_of(&form.fields, &posted, "", -240, &mut problems);
        (back, problems)
    }

    proptest! {
        /// The entry page is a codec: a record drawn into the form and posted
        /// back unchanged is the same record, for every field type.
        #[test]
        fn a_record_posted_back_unchanged_is_the_same_record(
            (form, record) in prop::sample::select(vec!["boarding-report", "vessel-sighting", "grouped"])
                .prop_flat_map(|id| {
                    let form = match id {
                        "grouped" => grouped(),
                        _ => FormRegistry::builtin().latest(id).unwrap().clone(),
                    };
                    (Just(form.clone()), fields(&form.fields))
                })
        ) {
            let (back, problems) = roundtrip(&form, &record);
            prop_assert!(problems.is_empty(), "{problems:?}");
            prop_assert_eq!(back, record);
        }
    }

    #[test]
    fn words_in_number_fields_are_problems_at_their_path() {
        let form = FormRegistry::builtin()
            .latest("boarding-report")
            .unwrap()
            .clone();
        let mut posted = Posted::new();
        posted.insert("f.persons_on_board".into(), vec!["four".into()]);
        posted.insert("f.seizures[3]._row".into(), vec!["1".into()]);
        posted.insert("f.seizures[3].quantity".into(), vec!["lots".into()]);
        posted.insert("f.position.lat".into(), vec!["13.1".into()]);
        let mut problems = Problems::new();
        let fields = fields_of(&form.fields, &posted, "", 0, &mut problems);
        assert!(problems.contains_key("persons_on_board"), "{problems:?}");
        assert!(
            problems.contains_key("seizures[3].quantity"),
            "{problems:?}"
        );
        assert!(
            problems.contains_key("position"),
            "a latitude without longitude: {problems:?}"
        );
        assert!(!fields.contains_key("persons_on_board"));
        assert_eq!(
            fields["seizures"].as_array().unwrap().len(),
            1,
            "items are renumbered"
        );
    }

    #[test]
    fn saving_writes_only_what_was_changed_on_the_page() {
        let names: Vec<String> = ["vessel_name", "master_name", "arrests", "findings"]
            .map(String::from)
            .to_vec();
        let shown =
            serde_json::json!({"vessel_name": "Sea Breeze", "master_name": "J. B.", "arrests": 0});
        let posted =
            serde_json::json!({"vessel_name": "Sea Breeze", "arrests": 2, "findings": "Nets"});
        let patch = changed_fields(&names, posted.as_object().unwrap(), shown.as_object());
        // The vessel name was not touched here: a newer value from sync stays.
        assert_eq!(
            Json::Object(patch),
            serde_json::json!({"master_name": null, "arrests": 2, "findings": "Nets"})
        );
        // Without what the page showed, everything is written.
        assert_eq!(
            changed_fields(&names, posted.as_object().unwrap(), None).len(),
            4
        );
    }

    #[test]
    fn a_local_time_takes_the_browsers_offset() {
        assert_eq!(
            with_offset("2026-11-20T14:05", -240).as_deref(),
            Some("2026-11-20T14:05:00-04:00")
        );
        assert_eq!(
            with_offset("2026-11-20T14:05", 0).as_deref(),
            Some("2026-11-20T14:05:00Z")
        );
        assert_eq!(
            with_offset("2026-11-20T14:05:00+01:00", -240).as_deref(),
            Some("2026-11-20T14:05:00+01:00")
        );
        assert_eq!(with_offset("yesterday", 0), None);
    }
}
