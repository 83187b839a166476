//! Skip logic and expression constraints in validation: for random answers to a form
//! with relevance, cross-field and regex constraints inside and outside repeats,
//! validation never panics and reports exactly what a plain reading of the form says.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tideline_schemas::{clear_irrelevant, validate_at, Form, ViolationKind};

fn form() -> Form {
    Form::parse(
        &json!({
            "id": "logic", "version": 1, "title": "Logic",
            "fields": [
                {"name": "contraband_found", "label": "Contraband found", "type": "boolean"},
                {"name": "seizures", "label": "Seizures", "type": "repeat",
                 "relevant": "${contraband_found} = true()", "fields": [
                    {"name": "quantity", "label": "Quantity", "type": "decimal",
                     "constraint": {"expression": ". > 0 and . <= 1000",
                                    "message": "Quantity must be above 0 and at most 1000."}},
                    {"name": "unit", "label": "Unit", "type": "select_one",
                     "relevant": "${quantity} > 0",
                     "choices": [{"value": "kg", "label": "kg"}, {"value": "g", "label": "g"}]}
                ]},
                {"name": "arrests", "label": "Arrests", "type": "integer",
                 "constraint": {"expression": ". >= 0"}},
                {"name": "arrest_names", "label": "Names", "type": "text", "required": true,
                 "relevant": "${arrests} > 0", "required_message": "Name the people arrested."},
                {"name": "crew", "label": "Crew", "type": "repeat", "fields": [
                    {"name": "name", "label": "Name", "type": "text", "required": true},
                    {"name": "role", "label": "Role", "type": "select_one",
                     "choices": [{"value": "crew", "label": "Crew"}, {"value": "guest", "label": "Guest"}]},
                    {"name": "id_document", "label": "ID", "type": "text",
                     "constraint": {"expression": "regex(., '^[A-Z]{2}[0-9]{6}$')",
                                    "message": "Two letters and six digits."}},
                    {"name": "age", "label": "Age", "type": "integer",
                     "constraint": {"expression": ". >= 16 or ${role} = 'guest'",
                                    "message": "Crew must be 16 or older."}}
                ]},
                {"name": "crew_count", "label": "Crew count", "type": "integer",
                 "constraint": {"expression": ". >= count(${crew})",
                                "message": "Fewer than the crew listed."}}
            ]
        })
        .to_string(),
    )
    .expect("the test form is valid")
}

#[derive(Debug, Clone)]
struct Crew {
    name: Option<String>,
    role: Option<&'static str>,
    id: Option<String>,
    age: Option<i64>,
}

#[derive(Debug, Clone)]
struct Answers {
    contraband: Option<bool>,
    seizures: Option<Vec<(Option<f64>, Option<&'static str>)>>,
    arrests: Option<i64>,
    names: Option<String>,
    crew: Option<Vec<Crew>>,
    crew_count: Option<i64>,
}

fn answers() -> impl Strategy<Value = Answers> {
    let seizure = (
        prop::option::of(prop_oneof![(-5i32..1500).prop_map(f64::from), Just(0.5)]),
        prop::option::of(prop::sample::select(vec!["kg", "g"])),
    );
    let crew = (
        prop::option::of("[a-z]{0,6}"),
        prop::option::of(prop::sample::select(vec!["crew", "guest"])),
        prop::option::of(prop_oneof!["[A-Z]{2}[0-9]{6}", "[A-Z0-9]{0,9}"]),
        prop::option::of(0i64..40),
    )
        .prop_map(|(name, role, id, age)| Crew {
            name,
            role,
            id,
            age,
        });
    (
        prop::option::of(any::<bool>()),
        prop::option::of(prop::collection::vec(seizure, 0..3)),
        prop::option::of(-2i64..4),
        prop::option::of("[a-z ]{0,8}"),
        prop::option::of(prop::collection::vec(crew, 0..4)),
        prop::option::of(0i64..5),
    )
        .prop_map(
            |(contraband, seizures, arrests, names, crew, crew_count)| Answers {
                contraband,
                seizures,
                arrests,
                names,
                crew,
                crew_count,
            },
        )
}

fn record(a: &Answers) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("contraband_found", a.contraband.map(Value::from));
    put(
        "seizures",
        a.seizures.as_ref().map(|list| {
            list.iter()
                .map(|(q, u)| {
                    let mut item = Map::new();
                    if let Some(q) = q {
                        item.insert("quantity".into(), json!(q));
                    }
                    if let Some(u) = u {
                        item.insert("unit".into(), json!(u));
                    }
                    Value::Object(item)
                })
                .collect()
        }),
    );
    put("arrests", a.arrests.map(Value::from));
    put("arrest_names", a.names.clone().map(Value::from));
    put(
        "crew",
        a.crew.as_ref().map(|list| {
            list.iter()
                .map(|c| {
                    let mut item = Map::new();
                    let fields = [
                        ("name", c.name.clone().map(Value::from)),
                        ("role", c.role.map(Value::from)),
                        ("id_document", c.id.clone().map(Value::from)),
                        ("age", c.age.map(Value::from)),
                    ];
                    for (k, v) in fields {
                        if let Some(v) = v {
                            item.insert(k.into(), v);
                        }
                    }
                    Value::Object(item)
                })
                .collect()
        }),
    );
    put("crew_count", a.crew_count.map(Value::from));
    m
}

/// The form read plainly: (path, kind, message) of every violation it implies.
fn reference(a: &Answers) -> BTreeSet<(String, ViolationKind, String)> {
    use ViolationKind::*;
    let mut out = BTreeSet::new();
    let mut add = |path: String, kind, message: &str| {
        out.insert((path, kind, message.to_string()));
    };
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    if a.contraband == Some(true) {
        for (i, (q, _unit)) in a.seizures.iter().flatten().enumerate() {
            if let Some(q) = q {
                if !(*q > 0.0 && *q <= 1000.0) {
                    add(
                        format!("seizures[{i}].quantity"),
                        Constraint,
                        "Quantity must be above 0 and at most 1000.",
                    );
                }
            }
        }
    }
    if let Some(n) = a.arrests {
        if n < 0 {
            add(
                "arrests".into(),
                Constraint,
                "Arrests is not an accepted answer.",
            );
        }
        if n > 0 && blank(&a.names) {
            add("arrest_names".into(), Missing, "Name the people arrested.");
        }
    }
    let crew = a.crew.as_deref().unwrap_or_default();
    for (i, c) in crew.iter().enumerate() {
        if blank(&c.name) {
            add(format!("crew[{i}].name"), Missing, "Name is required.");
        }
        if !blank(&c.id) {
            let id = c.id.as_deref().unwrap_or_default();
            let good = id.len() == 8
                && id[..2].bytes().all(|b| b.is_ascii_uppercase())
                && id[2..].bytes().all(|b| b.is_ascii_digit());
            if !good {
                add(
                    format!("crew[{i}].id_document"),
                    Constraint,
                    "Two letters and six digits.",
                );
            }
        }
        if let Some(age) = c.age {
            if age < 16 && c.role != Some("guest") {
                add(
                    format!("crew[{i}].age"),
                    Constraint,
                    "Crew must be 16 or older.",
                );
            }
        }
    }
    if let Some(n) = a.crew_count {
        if (n as usize) < crew.len() {
            add(
                "crew_count".into(),
                Constraint,
                "Fewer than the crew listed.",
            );
        }
    }
    out
}

fn now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339("2026-12-02T09:00:00-04:00").expect("fixed instant")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validation_agrees_with_a_plain_reading_of_the_form(a in answers()) {
        let form = form();
        let got: BTreeSet<_> = validate_at(&form, &record(&a), now())
            .into_iter()
            .map(|v| (v.path, v.kind, v.message))
            .collect();
        prop_assert_eq!(got, reference(&a));
    }

    #[test]
    fn clearing_removes_exactly_the_answers_that_do_not_apply(a in answers()) {
        let form = form();
        let fields = record(&a);
        let cleared = clear_irrelevant(&form, &fields, now());
        let kept = cleared.clone().unwrap_or_else(|| fields.clone());
        let seizures_apply = a.contraband == Some(true);
        prop_assert_eq!(kept.contains_key("seizures"), seizures_apply && a.seizures.is_some());
        let names_apply = a.arrests.is_some_and(|n| n > 0);
        prop_assert_eq!(kept.contains_key("arrest_names"), names_apply && a.names.is_some());
        if let Some(items) = kept.get("seizures").and_then(Value::as_array) {
            for item in items {
                let q = item.get("quantity").and_then(Value::as_f64);
                if !q.is_some_and(|q| q > 0.0) {
                    prop_assert!(item.get("unit").is_none(), "{item}");
                }
            }
        }
        // Clearing twice changes nothing more, and what is left validates the same.
        prop_assert_eq!(clear_irrelevant(&form, &kept, now()), None);
        let before: BTreeSet<_> = validate_at(&form, &fields, now()).into_iter().map(|v| v.path).collect();
        let after: BTreeSet<_> = validate_at(&form, &kept, now()).into_iter().map(|v| v.path).collect();
        prop_assert_eq!(before, after);
    }
}
