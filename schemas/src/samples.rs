//! Sample records for the built-in forms: realistic, valid and varied by a
//! number, so that tests, benchmarks and demonstrations measure the same thing.

use serde_json::{json, Map, Value};

/// A findings narrative of exactly 600 characters. Long free text is Automerge
/// Text (one operation per character), so its length drives a record's size.
pub fn findings(n: usize) -> String {
    let base = format!(
        "Boarding {n}: vessel hailed on channel 16 and stopped without resistance. \
         Master produced registration papers and crew list; six persons identified. \
         Search of the forward hold found two concealed compartments behind the fuel \
         tanks, both opened in the presence of the master. Compartment one held \
         packages wrapped in black plastic, field test positive for cocaine. \
         Compartment two held a pistol and loose ammunition. Items photographed in \
         place, bagged and tagged. Crew cooperative throughout; master detained and \
         vessel escorted to port for a full search by customs. "
    );
    base.chars().cycle().take(600).collect()
}

/// A typical, complete `boarding-report`: 6 crew, 2 seizures with their own
/// evidence tags, contraband found, 600 characters of findings.
///
/// ```
/// use tideline_schemas::{samples, validate, FormRegistry};
/// let forms = FormRegistry::builtin();
/// let form = forms.latest("boarding-report").unwrap();
/// assert!(validate(form, &samples::boarding_report(7)).is_empty());
/// ```
pub fn boarding_report(n: usize) -> Map<String, Value> {
    let roles = ["master", "crew", "crew", "crew", "crew", "passenger"];
    let crew: Vec<Value> = roles
        .iter()
        .enumerate()
        .map(|(i, role)| {
            json!({
                "name": format!("Crew Member {n}-{i}"),
                "nationality": "Trinidad and Tobago",
                "id_document": format!("passport TT{:07}", n * 10 + i),
                "role": role,
            })
        })
        .collect();
    let report = json!({
        "boarding_time": "2025-03-14T09:42:00-04:00",
        "position": {"lat": 12.9843, "lon": -61.2872},
        "vessel_name": format!("Sea Breeze {n}"),
        "vessel_registration": format!("TT-FV-{n:05}"),
        "flag_state": "TT",
        "vessel_type": "go_fast",
        "persons_on_board": 6,
        "master_name": format!("Crew Member {n}-0"),
        "reason": "suspected_trafficking",
        "crew": crew,
        "contraband_found": true,
        "seizures": [
            {
                "item_type": "narcotics",
                "description": "Packages in black plastic, forward hold compartment one",
                "quantity": 24.5,
                "unit": "kg",
                "evidence_tag": format!("EV-{n:06}-1"),
            },
            {
                "item_type": "firearms",
                "description": "Pistol with loose ammunition, compartment two",
                "quantity": 1,
                "unit": "pcs",
                "evidence_tag": format!("EV-{n:06}-2"),
            }
        ],
        "arrests": 1,
        "findings": findings(n),
        "outcome": "escorted_to_port",
        "officers": ["Sgt. A. Baptiste 4411", "PC R. Charles 5120"],
    });
    match report {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A small deterministic generator (SplitMix64), so that `varied_report(n)`
/// is the same report on every machine without a dependency.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    fn digits(&mut self, n: u32) -> String {
        format!("{:0width$}", self.below(10u64.pow(n)), width = n as usize)
    }
}

const FIRST_NAMES: &[&str] = &[
    "Maria", "Trevor", "Andre", "Latoya", "Ricardo", "Curtis", "Daniel", "Renee", "Devon", "Jose",
    "Yolanda", "Keisha", "Shanice", "Jerome", "Natalie", "Marcus", "Simone", "Kemar",
];
const LAST_NAMES: &[&str] = &[
    "Williams",
    "Ramirez",
    "Francis",
    "Alexander",
    "Thomas",
    "Lewis",
    "Baptiste",
    "Phillip",
    "George",
    "Noel",
    "St. Louis",
    "Hector",
    "Joseph",
    "Mendez",
    "Pierre",
    "Charles",
];
const NATIONALITIES: &[&str] = &[
    "AG", "MS", "VC", "DM", "KN", "LC", "AI", "GD", "VG", "BB", "TT", "US",
];
const FLAGS: &[&str] = &[
    "VE", "US", "GD", "DM", "KN", "AI", "BB", "VC", "other", "TT", "MS", "LC",
];
const SENTENCES: &[&str] = &[
    "Life jackets and flares inspected; two flares past their expiry date.",
    "Fish hold inspected; catch consistent with the logbook for the trip.",
    "Vessel was escorted to the coast guard base for a full search by customs officers.",
    "Undeclared packages were found in a void space behind the engine room bulkhead.",
    "Photographs of the seized items were taken and evidence bags sealed in the presence of the master.",
    "Sea state deteriorated during the boarding and the party disembarked earlier than planned.",
    "One passenger could not produce a passport and was referred to immigration for follow-up.",
    "Crew list checked against persons on board and identity documents; all accounted for.",
    "The master was cooperative and produced the certificate of registry and crew list on request.",
    "Boarding party of three embarked from the interceptor on the port side without incident.",
    "AIS transponder was switched off on approach and switched on at the request of the boarding officer.",
];

/// A boarding report as varied as real ones: names, documents, positions,
/// times, outcomes and the order of the narrative's sentences all differ
/// from one `n` to the next, so that reports do not compress into each other
/// (zstd-3 JSON lines of these take about as many bytes a record as the
/// reference workload; the sync crate's tests assert it). Measurements of
/// bytes and compression use these, not [`boarding_report`].
///
/// ```
/// use tideline_schemas::{samples, validate, FormRegistry};
/// let forms = FormRegistry::builtin();
/// let form = forms.latest("boarding-report").unwrap();
/// assert!(validate(form, &samples::varied_report(7)).is_empty());
/// assert_eq!(samples::varied_report(7), samples::varied_report(7));
/// assert_ne!(samples::varied_report(7), samples::varied_report(8));
/// ```
pub fn varied_report(n: usize) -> Map<String, Value> {
    let mut r = Mix(n as u64 ^ 0x7469_6465_6c69_6e65);
    let person = |r: &mut Mix| format!("{} {}", r.pick(FIRST_NAMES), r.pick(LAST_NAMES));
    let master = person(&mut r);
    let crew: Vec<Value> = (0..6)
        .map(|i| {
            let name = if i == 0 {
                master.clone()
            } else {
                person(&mut r)
            };
            let role = if i == 0 {
                "master"
            } else {
                r.pick(&["crew", "passenger"])
            };
            json!({
                "name": name,
                "nationality": r.pick(NATIONALITIES),
                "id_document": format!("P{}", r.digits(7)),
                "role": role,
            })
        })
        .collect();
    let seizures: Vec<Value> = (1..=2)
        .map(|k| {
            let place = r.pick(&[
                "in wheelhouse locker",
                "in crew cabin",
                "behind engine bulkhead",
                "in fish hold",
            ]);
            json!({
                "item_type": r.pick(&["firearms", "other", "fish", "ammunition", "currency", "narcotics"]),
                "description": format!("found {place}, {} bags", 1 + r.below(9)),
                "quantity": (1 + r.below(5000)) as f64 / 10.0,
                "unit": r.pick(&["rounds", "packages", "kg", "pieces", "USD"]),
                "evidence_tag": format!("EV-2026-{n:06}-{k:02}"),
            })
        })
        .collect();
    let mut findings = String::new();
    while findings.chars().count() < 600 {
        if !findings.is_empty() {
            findings.push(' ');
        }
        findings.push_str(r.pick(SENTENCES));
    }
    let findings: String = findings.chars().take(600).collect();
    let officers: Vec<String> = (0..3)
        .map(|_| {
            format!(
                "{} {}. {}",
                r.pick(&["Sgt.", "Cpl.", "PC"]),
                (b'A' + r.below(26) as u8) as char,
                r.pick(LAST_NAMES)
            )
        })
        .collect();
    let report = json!({
        "boarding_time": format!(
            "2026-{:02}-{:02}T{:02}:{:02}:00Z",
            1 + r.below(12),
            1 + r.below(28),
            r.below(24),
            r.below(60)
        ),
        "position": {
            "lat": (1_000_000 + r.below(800_000)) as f64 / 100_000.0,
            "lon": -((5_900_000 + r.below(500_000)) as f64 / 100_000.0),
        },
        "vessel_name": format!(
            "{} {} {}",
            r.pick(&["Morning", "Blue", "Sea", "Island", "Trade", "Coral"]),
            r.pick(&["Queen", "Runner", "Star", "Spirit", "Dawn", "Breeze"]),
            1 + r.below(9)
        ),
        "vessel_registration": format!(
            "{}-{}",
            r.pick(&["SVG", "ANU", "GRN", "SLU", "DOM"]),
            r.digits(4)
        ),
        "flag_state": r.pick(FLAGS),
        "vessel_type": r.pick(&["pleasure", "cargo", "fishing", "go_fast", "tanker", "other", "passenger"]),
        "persons_on_board": 6 + r.below(3),
        "master_name": master,
        "reason": r.pick(&["routine_inspection", "customs", "immigration", "suspected_trafficking", "fisheries", "other", "search_and_rescue"]),
        "crew": crew,
        "contraband_found": true,
        "seizures": seizures,
        "arrests": r.below(3),
        "findings": findings,
        "outcome": r.pick(&["warning_issued", "escorted_to_port", "detained", "released"]),
        "officers": officers,
    });
    match report {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
