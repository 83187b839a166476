//! Property tests of validation against the built-in boarding report: every generated
//! valid record passes, and each single rule-breaking change is reported at the right path
//! with the right kind.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};
use tideline_schemas::{builtin_forms, validate, Form, Violation, ViolationKind};

const FLAGS: &[&str] = &[
    "AG", "AI", "BB", "DM", "GD", "KN", "LC", "MS", "TT", "VC", "VG", "US", "VE", "other",
];
const VESSEL_TYPES: &[&str] = &[
    "fishing",
    "go_fast",
    "cargo",
    "tanker",
    "pleasure",
    "passenger",
    "other",
];
const REASONS: &[&str] = &[
    "routine_inspection",
    "suspected_trafficking",
    "fisheries",
    "customs",
    "immigration",
    "search_and_rescue",
    "other",
];
const OUTCOMES: &[&str] = &["released", "warning_issued", "escorted_to_port", "detained"];
const ROLES: &[&str] = &["master", "crew", "passenger"];
const ITEM_TYPES: &[&str] = &[
    "narcotics",
    "firearms",
    "ammunition",
    "currency",
    "fish",
    "other",
];
const TOP_LEVEL: &[&str] = &[
    "boarding_time",
    "position",
    "vessel_name",
    "vessel_registration",
    "flag_state",
    "vessel_type",
    "persons_on_board",
    "master_name",
    "reason",
    "crew",
    "contraband_found",
    "seizures",
    "arrests",
    "findings",
    "outcome",
    "officers",
    "photos",
];
const REQUIRED: &[&str] = &[
    "boarding_time",
    "position",
    "vessel_name",
    "persons_on_board",
    "reason",
    "contraband_found",
    "outcome",
];

fn boarding_report() -> Form {
    builtin_forms()
        .into_iter()
        .find(|f| f.id == "boarding-report")
        .expect("boarding-report is built in")
}

// ---------------------------------------------------------------------------------------
// Valid values

/// Absent, null, or a value: all three are fine for an optional field.
fn optional<S: Strategy<Value = Value>>(s: S) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        3 => s.prop_map(Some),
    ]
}

fn choice(values: &'static [&'static str]) -> impl Strategy<Value = Value> {
    select(values).prop_map(Value::from)
}

fn person_name() -> impl Strategy<Value = Value> {
    "[A-Z][a-zà-ÿ]{1,10}( [A-Z][a-z']{1,12}){0,2}".prop_map(Value::from)
}

fn free_text() -> impl Strategy<Value = Value> {
    // Optional unconstrained text takes anything, including empty and odd characters.
    any::<String>().prop_map(Value::from)
}

fn date_time() -> impl Strategy<Value = Value> {
    let offset = prop_oneof![
        Just("Z".to_string()),
        (-12i32..=14, select(&[0u32, 30, 45][..])).prop_map(|(h, m)| format!(
            "{}{:02}:{:02}",
            if h < 0 { '-' } else { '+' },
            h.abs(),
            m
        )),
    ];
    let fraction = prop_oneof![Just(String::new()), "\\.[0-9]{1,9}"];
    (
        2000i32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        fraction,
        offset,
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, off)| {
            Value::from(format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}"
            ))
        })
}

fn position() -> impl Strategy<Value = Value> {
    (-90.0f64..=90.0, -180.0f64..=180.0).prop_map(|(lat, lon)| json!({"lat": lat, "lon": lon}))
}

fn sha256_hex() -> impl Strategy<Value = Value> {
    "[0-9a-f]{64}".prop_map(Value::from)
}

fn object(pairs: Vec<(&str, Option<Value>)>) -> Value {
    let map: Map<String, Value> = pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
    Value::Object(map)
}

fn crew_member() -> impl Strategy<Value = Value> {
    (
        person_name(),
        optional("[A-Z][a-z]{3,12}".prop_map(Value::from)),
        optional("(passport|ID card|seaman's book) [A-Z0-9]{5,9}".prop_map(Value::from)),
        optional(choice(ROLES)),
    )
        .prop_map(|(name, nationality, id_document, role)| {
            object(vec![
                ("name", Some(name)),
                ("nationality", nationality),
                ("id_document", id_document),
                ("role", role),
            ])
        })
}

/// A seizure without its evidence tag: tags are given out by position so they are unique.
fn seizure() -> impl Strategy<Value = (Value, String)> {
    let quantity = prop_oneof![
        (0.0f64..1e6).prop_map(Value::from),
        (0u32..1000).prop_map(Value::from),
    ];
    (
        choice(ITEM_TYPES),
        optional(free_text()),
        optional(quantity),
        optional(
            select(&["kg", "g", "packages", "rounds", "USD", "EC$"][..]).prop_map(Value::from),
        ),
        "[A-Z0-9]{0,4}",
    )
        .prop_map(|(item_type, description, quantity, unit, tag_suffix)| {
            (
                object(vec![
                    ("item_type", Some(item_type)),
                    ("description", description),
                    ("quantity", quantity),
                    ("unit", unit),
                ]),
                tag_suffix,
            )
        })
}

fn valid_report() -> impl Strategy<Value = Map<String, Value>> {
    let head = (
        date_time(),
        position(),
        person_name(),
        optional("[A-Z]{1,3}[- ]?[0-9]{2,6}".prop_map(Value::from)),
        optional(choice(FLAGS)),
        optional(choice(VESSEL_TYPES)),
        0i64..30,
        optional(person_name()),
        choice(REASONS),
    );
    let body = (
        vec(crew_member(), 0..8),
        any::<bool>(),
        vec(seizure(), 0..4),
        0u8..3,
        optional((0i64..20).prop_map(Value::from)),
        optional(free_text()),
        choice(OUTCOMES),
        optional(vec(person_name(), 0..5).prop_map(Value::from)),
        optional(vec(sha256_hex(), 0..4).prop_map(Value::from)),
    );
    (head, body).prop_map(
        |(
            (time, position, vessel, registration, flag, vessel_type, extra, master, reason),
            (crew, contraband, seizures, empty_style, arrests, findings, outcome, officers, photos),
        )| {
            let persons = crew.len() as i64 + extra;
            let crew = if crew.is_empty() && empty_style == 0 {
                None
            } else {
                Some(Value::from(crew))
            };
            let seizures: Vec<Value> = if contraband {
                seizures
                    .into_iter()
                    .enumerate()
                    .map(|(i, (mut s, suffix))| {
                        s["evidence_tag"] = Value::from(format!("EV-{i:03}{suffix}"));
                        s
                    })
                    .collect()
            } else {
                Vec::new()
            };
            // No contraband: the seizures list may be absent, null or empty.
            let seizures = match (seizures.is_empty(), empty_style) {
                (false, _) => Some(Value::from(seizures)),
                (true, 0) => None,
                (true, 1) => Some(Value::Null),
                (true, _) => Some(json!([])),
            };
            let object = object(vec![
                ("boarding_time", Some(time)),
                ("position", Some(position)),
                ("vessel_name", Some(vessel)),
                ("vessel_registration", registration),
                ("flag_state", flag),
                ("vessel_type", vessel_type),
                ("persons_on_board", Some(Value::from(persons))),
                ("master_name", master),
                ("reason", Some(reason)),
                ("crew", crew),
                ("contraband_found", Some(Value::from(contraband))),
                ("seizures", seizures),
                ("arrests", arrests),
                ("findings", findings),
                ("outcome", Some(outcome)),
                ("officers", officers),
                ("photos", photos),
            ]);
            match object {
                Value::Object(map) => map,
                _ => Map::new(),
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Mutations: each breaks exactly one rule

#[derive(Debug, Clone)]
enum Mutation {
    LatitudeOutOfRange(f64),
    LongitudeOutOfRange(f64),
    GeopointExtraKey(String),
    NegativePersons(i64),
    FractionalPersons(f64),
    CrewExceedsPersons(usize),
    DuplicateEvidenceTag(usize, usize),
    UnknownSelectValue(usize, String),
    UnknownRole(usize, String),
    UnknownItemType(usize, String),
    WrongType(usize, usize),
    UnknownField(String),
    UnknownFieldInCrew(usize, String),
    UnknownFieldInSeizure(usize, String),
    SeizureWithoutContraband(bool),
    MissingRequired(usize, u8),
    MissingCrewName(usize),
    MissingEvidenceTag(usize),
    NegativeQuantity(usize, f64),
    NegativeArrests(i64),
    BadBoardingTime(String),
    BadPhotoHash(usize, String),
    OfficerNotText(usize),
}

fn not_in(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_ .-]{0,20}".prop_filter("must not be a known name", move |s| {
        !names.contains(&s.as_str())
    })
}

fn bad_choice() -> impl Strategy<Value = String> {
    // Choice values are compared exactly: wrong case and stray spaces are not choices.
    prop_oneof![
        "zz_[a-z]{0,8}",
        Just("".to_string()),
        Just("Released".to_string()),
        Just(" fishing".to_string()),
        Just("tt".to_string()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let out_of_range = |limit: f64| {
        (limit + 1e-6..1e6, any::<bool>()).prop_map(|(x, neg)| if neg { -x } else { x })
    };
    prop_oneof![
        out_of_range(90.0).prop_map(Mutation::LatitudeOutOfRange),
        out_of_range(180.0).prop_map(Mutation::LongitudeOutOfRange),
        "[a-z]{1,8}"
            .prop_filter("not lat/lon", |k| k != "lat" && k != "lon")
            .prop_map(Mutation::GeopointExtraKey),
        (1i64..i64::MAX).prop_map(|n| Mutation::NegativePersons(-n)),
        (0.01f64..0.99, 0i64..100).prop_map(|(f, n)| Mutation::FractionalPersons(n as f64 + f)),
        any::<usize>().prop_map(Mutation::CrewExceedsPersons),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::DuplicateEvidenceTag(i, j)),
        (any::<usize>(), bad_choice()).prop_map(|(i, v)| Mutation::UnknownSelectValue(i, v)),
        (any::<usize>(), bad_choice()).prop_map(|(i, v)| Mutation::UnknownRole(i, v)),
        (any::<usize>(), bad_choice()).prop_map(|(i, v)| Mutation::UnknownItemType(i, v)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::WrongType(i, j)),
        not_in(TOP_LEVEL).prop_map(Mutation::UnknownField),
        (
            any::<usize>(),
            not_in(&["name", "nationality", "id_document", "role"])
        )
            .prop_map(|(i, k)| Mutation::UnknownFieldInCrew(i, k)),
        (
            any::<usize>(),
            not_in(&[
                "item_type",
                "description",
                "quantity",
                "unit",
                "evidence_tag"
            ])
        )
            .prop_map(|(i, k)| Mutation::UnknownFieldInSeizure(i, k)),
        any::<bool>().prop_map(Mutation::SeizureWithoutContraband),
        (any::<usize>(), 0u8..3).prop_map(|(i, how)| Mutation::MissingRequired(i, how)),
        any::<usize>().prop_map(Mutation::MissingCrewName),
        any::<usize>().prop_map(Mutation::MissingEvidenceTag),
        (any::<usize>(), -1e6f64..-1e-9).prop_map(|(i, q)| Mutation::NegativeQuantity(i, q)),
        (1i64..1000).prop_map(|n| Mutation::NegativeArrests(-n)),
        prop_oneof![
            Just("2024-05-01 14:30".to_string()),
            Just("2024-05-01".to_string()),
            Just("2024-05-01T14:30:00".to_string()),
            Just("2024-02-30T10:00:00Z".to_string()),
            Just("".to_string()),
            "[a-z ]{1,20}",
        ]
        .prop_map(Mutation::BadBoardingTime),
        (
            any::<usize>(),
            prop_oneof!["[0-9A-F]{64}", "[0-9a-f]{63}", "[0-9a-f]{65}", "[g-z]{64}"]
        )
            .prop_map(|(i, h)| Mutation::BadPhotoHash(i, h)),
        any::<usize>().prop_map(Mutation::OfficerNotText),
    ]
}

fn list_mut<'a>(record: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = record.entry(key.to_string()).or_insert(Value::Null);
    if !slot.is_array() {
        *slot = json!([]);
    }
    match slot {
        Value::Array(items) => items,
        _ => unreachable!("just made an array"),
    }
}

/// Makes sure the crew has at least `n` members, keeping the record otherwise valid.
fn ensure_crew(record: &mut Map<String, Value>, n: usize) -> usize {
    let crew = list_mut(record, "crew");
    while crew.len() < n {
        let k = crew.len();
        crew.push(json!({"name": format!("Added Person {k}")}));
    }
    let len = crew.len();
    let persons = record
        .get("persons_on_board")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if persons < len as i64 {
        record.insert("persons_on_board".into(), json!(len));
    }
    len
}

/// Makes sure there are at least `n` seizures (so contraband was found), keeping the
/// record otherwise valid.
fn ensure_seizures(record: &mut Map<String, Value>, n: usize) -> usize {
    record.insert("contraband_found".into(), json!(true));
    let seizures = list_mut(record, "seizures");
    while seizures.len() < n {
        let k = seizures.len();
        seizures.push(json!({"item_type": "other", "evidence_tag": format!("ADDED-{k}")}));
    }
    seizures.len()
}

/// A value of the wrong JSON type for each top-level field of the boarding report.
fn wrong_value(field: &str, pick: usize) -> Value {
    let options: Vec<Value> = match field {
        "boarding_time" => vec![
            json!(1714573800),
            json!(true),
            json!({"date": "2024-05-01"}),
        ],
        "position" => vec![
            json!("13.1,-61.2"),
            json!([13.1, -61.2]),
            json!(13.1),
            // Not `{}`: an object is a position's type, and its missing
            // lat/lon are reported at position.lat and position.lon.
            json!(true),
        ],
        "vessel_name" | "vessel_registration" | "master_name" | "findings" => {
            vec![
                json!(42),
                json!(true),
                json!(["Sea Star"]),
                json!({"text": "x"}),
            ]
        }
        "flag_state" | "vessel_type" | "reason" | "outcome" => {
            vec![json!(1), json!(["other"]), json!(false)]
        }
        "persons_on_board" | "arrests" => vec![json!("4"), json!(true), json!(2.5), json!([4])],
        "crew" | "seizures" => vec![json!({"name": "x"}), json!("none"), json!(0)],
        "contraband_found" => vec![json!("yes"), json!(1), json!("true")],
        "officers" => vec![json!("Sgt. Baptiste"), json!(3), json!({"0": "x"})],
        "photos" => vec![json!("a".repeat(64)), json!(7), json!({"a": 1})],
        _ => vec![json!({"unexpected": true})],
    };
    options[pick % options.len()].clone()
}

/// Applies the mutation and returns where and how it must be reported.
fn apply(m: &Mutation, record: &mut Map<String, Value>) -> (String, ViolationKind) {
    use ViolationKind::*;
    match m {
        Mutation::LatitudeOutOfRange(x) => {
            record["position"]["lat"] = json!(x);
            ("position.lat".into(), Constraint)
        }
        Mutation::LongitudeOutOfRange(x) => {
            record["position"]["lon"] = json!(x);
            ("position.lon".into(), Constraint)
        }
        Mutation::GeopointExtraKey(k) => {
            record["position"][k.as_str()] = json!(12.5);
            (format!("position.{k}"), Unknown)
        }
        Mutation::NegativePersons(n) => {
            record.insert("persons_on_board".into(), json!(n));
            ("persons_on_board".into(), Constraint)
        }
        Mutation::FractionalPersons(x) => {
            record.insert("persons_on_board".into(), json!(x));
            ("persons_on_board".into(), Type)
        }
        Mutation::CrewExceedsPersons(seed) => {
            let len = ensure_crew(record, 1);
            record.insert("persons_on_board".into(), json!(seed % len));
            ("persons_on_board".into(), Constraint)
        }
        Mutation::DuplicateEvidenceTag(a, b) => {
            let len = ensure_seizures(record, 2);
            let later = 1 + a % (len - 1);
            let earlier = b % later;
            let seizures = list_mut(record, "seizures");
            let tag = seizures[earlier]["evidence_tag"].clone();
            seizures[later]["evidence_tag"] = tag;
            (format!("seizures[{later}].evidence_tag"), Constraint)
        }
        Mutation::UnknownSelectValue(i, v) => {
            let field = ["flag_state", "vessel_type", "reason", "outcome"][i % 4];
            record.insert(field.into(), json!(v));
            (field.into(), Constraint)
        }
        Mutation::UnknownRole(i, v) => {
            let len = ensure_crew(record, 1);
            let i = i % len;
            list_mut(record, "crew")[i]["role"] = json!(v);
            (format!("crew[{i}].role"), Constraint)
        }
        Mutation::UnknownItemType(i, v) => {
            let len = ensure_seizures(record, 1);
            let i = i % len;
            list_mut(record, "seizures")[i]["item_type"] = json!(v);
            (format!("seizures[{i}].item_type"), Constraint)
        }
        Mutation::WrongType(i, pick) => {
            let field = TOP_LEVEL[i % TOP_LEVEL.len()];
            record.insert(field.into(), wrong_value(field, *pick));
            (field.into(), Type)
        }
        Mutation::UnknownField(name) => {
            record.insert(name.clone(), json!("surprise"));
            (name.clone(), Unknown)
        }
        Mutation::UnknownFieldInCrew(i, name) => {
            let len = ensure_crew(record, 1);
            let i = i % len;
            list_mut(record, "crew")[i][name.as_str()] = json!(1);
            (format!("crew[{i}].{name}"), Unknown)
        }
        Mutation::UnknownFieldInSeizure(i, name) => {
            let len = ensure_seizures(record, 1);
            let i = i % len;
            list_mut(record, "seizures")[i][name.as_str()] = json!(null);
            (format!("seizures[{i}].{name}"), Unknown)
        }
        Mutation::SeizureWithoutContraband(remove_flag) => {
            ensure_seizures(record, 1);
            if *remove_flag {
                // Unanswered is not "yes": still no seizures allowed (and the flag is
                // reported missing as well).
                record.remove("contraband_found");
            } else {
                record.insert("contraband_found".into(), json!(false));
            }
            ("seizures".into(), Constraint)
        }
        Mutation::MissingRequired(i, how) => {
            let field = REQUIRED[i % REQUIRED.len()];
            match how {
                0 => {
                    record.remove(field);
                }
                1 => {
                    record.insert(field.into(), Value::Null);
                }
                _ if field == "vessel_name" => {
                    record.insert(field.into(), json!(""));
                }
                _ => {
                    record.remove(field);
                }
            }
            (field.into(), Missing)
        }
        Mutation::MissingCrewName(i) => {
            let len = ensure_crew(record, 1);
            let i = i % len;
            if let Some(member) = list_mut(record, "crew")[i].as_object_mut() {
                member.remove("name");
            }
            (format!("crew[{i}].name"), Missing)
        }
        Mutation::MissingEvidenceTag(i) => {
            let len = ensure_seizures(record, 1);
            let i = i % len;
            list_mut(record, "seizures")[i]["evidence_tag"] = json!("");
            (format!("seizures[{i}].evidence_tag"), Missing)
        }
        Mutation::NegativeQuantity(i, q) => {
            let len = ensure_seizures(record, 1);
            let i = i % len;
            list_mut(record, "seizures")[i]["quantity"] = json!(q);
            (format!("seizures[{i}].quantity"), Constraint)
        }
        Mutation::NegativeArrests(n) => {
            record.insert("arrests".into(), json!(n));
            ("arrests".into(), Constraint)
        }
        Mutation::BadBoardingTime(s) => {
            record.insert("boarding_time".into(), json!(s));
            ("boarding_time".into(), Type)
        }
        Mutation::BadPhotoHash(i, hash) => {
            let photos = list_mut(record, "photos");
            if photos.is_empty() {
                photos.push(json!("0".repeat(64)));
            }
            let i = i % photos.len();
            photos[i] = json!(hash);
            (format!("photos[{i}]"), Type)
        }
        Mutation::OfficerNotText(i) => {
            let officers = list_mut(record, "officers");
            officers.push(json!("Sgt. Baptiste"));
            let i = i % officers.len();
            officers[i] = json!(1234);
            (format!("officers[{i}]"), Type)
        }
    }
}

fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{} ({}): {}", v.path, v.kind, v.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,10}".prop_map(Value::from),
        "[0-9a-f]{64}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    select(&["lat", "lon", "name", "evidence_tag", "quantity", "x"][..])
                        .prop_map(String::from),
                    ".{0,6}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_reports_have_no_violations(record in valid_report()) {
        let form = boarding_report();
        let violations = validate(&form, &record);
        prop_assert!(violations.is_empty(), "record {}\n violations:\n{}",
            Value::Object(record.clone()), describe(&violations));
    }

    #[test]
    fn each_broken_rule_is_reported(record in valid_report(), m in mutation()) {
        let form = boarding_report();
        let mut record = record;
        let (path, kind) = apply(&m, &mut record);
        let violations = validate(&form, &record);
        prop_assert!(
            violations.iter().any(|v| v.path == path && v.kind == kind),
            "{:?}: expected {} ({}) among:\n{}\nrecord {}",
            m, path, kind, describe(&violations), Value::Object(record.clone())
        );
        if kind != ViolationKind::Missing {
            prop_assert!(violations.iter().any(Violation::blocks_draft));
        }
        for v in &violations {
            prop_assert!(!v.message.is_empty(), "empty message at {}", v.path);
        }
    }

    #[test]
    fn arbitrary_input_never_panics_and_paths_name_real_keys(
        fields in proptest::collection::btree_map(
            prop_oneof![select(TOP_LEVEL).prop_map(String::from), "[a-z_]{1,8}"],
            any_json(),
            0..20,
        )
    ) {
        let form = boarding_report();
        let record: Map<String, Value> = fields.into_iter().collect();
        let violations = validate(&form, &record);
        for v in &violations {
            let head = v.path.split(['.', '[']).next().unwrap_or("");
            prop_assert!(record.contains_key(head) || TOP_LEVEL.contains(&head),
                "path {} does not start at a field", v.path);
        }
        // An absent field can only be reported missing.
        for v in &violations {
            if !record.contains_key(&v.path) && !v.path.contains(['.', '[']) {
                prop_assert_eq!(v.kind, ViolationKind::Missing, "{} is absent", &v.path);
            }
        }
    }
}
