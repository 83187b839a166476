//! What of a posted entry form can be stored now. Submitting always saves:
//! every value the record can hold becomes part of the draft, and each value
//! it cannot hold yet (one that breaks a rule of the form, alone or with
//! another field) is left out of the store but stays on the page, as typed,
//! beside its message. Every problem — unreadable, missing, invalid,
//! cross-field — is found in one pass, so an officer fixes them in one round.

use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use tideline_schemas::{validate, Form, ViolationKind};

/// Messages by field path (`crew[1].name`), as the page shows them.
pub type Problems = BTreeMap<String, Vec<String>>;

/// Rounds of taking values out: each can uncover a rule only the taken
/// value hid (a list emptied of its one bad item, say); a handful is plenty.
const ROUNDS: usize = 4;

/// The fields that can be stored as a draft, and every problem to show.
/// `unreadable` are the values that did not even parse (a word in a number
/// field); they are absent from `fields` and keep their own message. What
/// is missing is a problem only for a `submit`: a draft may be incomplete.
pub fn split(
    form: &Form,
    fields: &Map<String, Json>,
    unreadable: &Problems,
    submit: bool,
) -> (Map<String, Json>, Problems) {
    let mut problems = unreadable.clone();
    let mut violations = validate(form, fields);
    for v in &violations {
        let path = shown_at(&v.path);
        // "Required" beside a box that holds an unreadable value says nothing new.
        if v.kind == ViolationKind::Missing && (!submit || unreadable.contains_key(path)) {
            continue;
        }
        let list = problems.entry(path.to_string()).or_default();
        if !list.contains(&v.message) {
            list.push(v.message.clone());
        }
    }
    // The first round takes out what the pass above found; later rounds
    // validate again only if something was taken out.
    let mut storable = fields.clone();
    for _ in 0..ROUNDS {
        let blocking: Vec<&str> = violations
            .iter()
            .filter(|v| v.blocks_draft())
            .map(|v| v.path.as_str())
            .collect();
        if blocking.is_empty() {
            break;
        }
        for path in blocking {
            remove(&mut storable, path);
        }
        violations = validate(form, &storable);
    }
    (storable, problems)
}

/// Where the page shows a problem: a coordinate's at its position.
pub fn shown_at(path: &str) -> &str {
    path.strip_suffix(".lat")
        .or_else(|| path.strip_suffix(".lon"))
        .unwrap_or(path)
}

/// The top-level field a path is in: `seizures` for `seizures[1].quantity`.
pub fn top_level(path: &str) -> &str {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    &path[..end]
}

/// One step of a path: a field name, or a list index.
enum Step<'a> {
    Name(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in shown_at(path).split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        out.push(Step::Name(name));
        if !rest.is_empty() {
            for index in rest.split('[') {
                out.push(Step::Index(index.strip_suffix(']')?.parse().ok()?));
            }
        }
    }
    Some(out)
}

/// Take the value at `path` out of `fields` (a coordinate takes its whole
/// position); true if something was there.
pub fn remove(fields: &mut Map<String, Json>, path: &str) -> bool {
    let Some(steps) = steps(path) else {
        return false;
    };
    let Some((last, walk)) = steps.split_last() else {
        return false;
    };
    let mut here: &mut Json = match walk.first() {
        Some(Step::Name(n)) => match fields.get_mut(*n) {
            Some(v) => v,
            None => return false,
        },
        _ => {
            return match last {
                Step::Name(n) => fields.remove(*n).is_some(),
                Step::Index(_) => false,
            }
        }
    };
    for step in &walk[1..] {
        let next = match (step, here) {
            (Step::Name(n), Json::Object(m)) => m.get_mut(*n),
            (Step::Index(i), Json::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(v) => here = v,
            None => return false,
        }
    }
    match (last, here) {
        (Step::Name(n), Json::Object(m)) => m.remove(*n).is_some(),
        // An item of a list of values (an officer's name): the list without it.
        (Step::Index(i), Json::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tideline_schemas::FormRegistry;

    fn boarding() -> Form {
        FormRegistry::builtin()
            .latest("boarding-report")
            .unwrap()
            .clone()
    }

    fn map(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn paths_name_what_is_taken_out() {
        let mut f = map(json!({
            "a": 1,
            "position": {"lat": 1.0, "lon": 2.0},
            "seizures": [{"quantity": 1}, {"quantity": -3, "unit": "kg"}],
            "officers": ["x", "y"]
        }));
        assert!(remove(&mut f, "seizures[1].quantity"));
        assert_eq!(f["seizures"][1], json!({"unit": "kg"}));
        assert!(remove(&mut f, "position.lat"));
        assert!(!f.contains_key("position"));
        assert!(remove(&mut f, "officers[0]"));
        assert_eq!(f["officers"], json!(["y"]));
        assert!(remove(&mut f, "a"));
        assert!(!remove(&mut f, "a"));
        assert!(!remove(&mut f, "seizures[9].quantity"));
        assert!(!remove(&mut f, "seizures[x"));
    }

    #[test]
    fn every_problem_comes_at_once_and_the_rest_is_stored() {
        let form = boarding();
        // Contraband "no" with a seizure listed, a negative quantity, a
        // required outcome missing, and arrests that did not parse.
        let fields = map(json!({
            "boarding_time": "2026-11-20T14:05:00-04:00",
            "position": {"lat": 13.1, "lon": -59.6},
            "vessel_name": "Sea Breeze",
            "persons_on_board": 3,
            "reason": "fisheries",
            "crew": [{"name": "A. Joseph", "role": "master"}],
            "contraband_found": false,
            "seizures": [{"item_type": "narcotics", "description": "bales", "quantity": -2, "unit": "kg"}],
            "findings": "Hold searched."
        }));
        let unreadable = Problems::from([(
            "arrests".to_string(),
            vec!["Enter a whole number, like 4.".to_string()],
        )]);
        let (storable, problems) = split(&form, &fields, &unreadable, true);
        let (_, draft) = split(&form, &fields, &unreadable, false);
        assert!(!draft.contains_key("outcome"), "a draft may be incomplete");
        assert!(draft.contains_key("arrests"));
        assert!(problems.contains_key("arrests"));
        assert!(problems.contains_key("outcome"), "{problems:?}");
        assert!(
            problems.keys().any(|p| p.starts_with("seizures")),
            "{problems:?}"
        );
        // What is stored breaks no rule a draft must keep...
        assert!(validate(&form, &storable).iter().all(|v| !v.blocks_draft()));
        // ...and keeps every value that was fine.
        for kept in [
            "vessel_name",
            "persons_on_board",
            "crew",
            "findings",
            "position",
        ] {
            assert_eq!(storable[kept], fields[kept], "{kept}");
        }
    }
}
