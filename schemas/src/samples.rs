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
