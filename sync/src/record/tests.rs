use super::*;
use proptest::prelude::*;
use serde_json::json;
use tideline_schemas::FormRegistry;

fn actor(n: u8) -> ActorId {
    ActorId::from([n; 16])
}

fn obj(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn report() -> Map<String, Json> {
    obj(json!({
        "boarding_time": "2026-11-20T14:05:00Z",
        "position": {"lat": 13.1, "lon": -59.6},
        "vessel_name": "Sea Breeze",
        "persons_on_board": 3,
        "reason": "fisheries",
        "crew": [
            {"name": "A. Joseph", "role": "master"},
            {"name": "B. Charles", "role": "crew"},
            {"name": "C. Pierre", "role": "crew"}
        ],
        "contraband_found": false,
        "findings": "Vessel boarded without incident. Catch inspected.",
        "outcome": "released",
        "officers": ["PC Smith", "PC Jones"]
    }))
}

fn new_doc(fields: &Map<String, Json>) -> (RecordDoc, FormRegistry) {
    let forms = FormRegistry::builtin();
    let form = forms.latest("boarding-report").unwrap().clone();
    let meta = RecordMeta::new(RecordId::new(), &form, "BB-01", "boat-1");
    let doc = RecordDoc::create(actor(1), &meta, &form, fields, 1_700_000_000).unwrap();
    (doc, forms)
}

#[test]
fn fields_round_trip_exactly() {
    let (doc, _) = new_doc(&report());
    assert_eq!(doc.fields(), report());
    assert_eq!(doc.status(), Some(Status::Draft));
    assert_eq!(doc.meta().unwrap().station, "BB-01");
}

#[test]
fn findings_are_automerge_text() {
    let (mut doc, _) = new_doc(&report());
    let am = doc.automerge();
    let (_, fields) = am.get(ROOT, "fields").unwrap().unwrap();
    let (v, _) = am.get(&fields, "findings").unwrap().unwrap();
    assert_eq!(v, Value::Object(ObjType::Text));
}

#[test]
fn merge_keeps_edits_of_different_fields() {
    let (mut boat, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    let mut hq = boat.fork(actor(2));
    boat.update_fields(form, &obj(json!({"vessel_registration": "BB-1234"})))
        .unwrap();
    hq.update_fields(form, &obj(json!({"master_name": "A. Joseph"})))
        .unwrap();
    boat.merge(&mut hq).unwrap();
    hq.merge(&mut boat).unwrap();
    for doc in [&boat, &hq] {
        let f = doc.fields();
        assert_eq!(f["vessel_registration"], "BB-1234");
        assert_eq!(f["master_name"], "A. Joseph");
        assert!(doc.conflicts().is_empty());
    }
}

#[test]
fn same_scalar_edited_on_both_sides_is_a_listed_conflict() {
    let (mut boat, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    let mut hq = boat.fork(actor(2));
    boat.update_fields(form, &obj(json!({"outcome": "warning_issued"})))
        .unwrap();
    hq.update_fields(form, &obj(json!({"outcome": "detained"})))
        .unwrap();
    boat.merge(&mut hq).unwrap();
    hq.merge(&mut boat).unwrap();

    assert_eq!(
        boat.fields()["outcome"],
        hq.fields()["outcome"],
        "same winner everywhere"
    );
    let conflicts = boat.conflicts();
    assert_eq!(conflicts, hq.conflicts());
    let values = &conflicts["outcome"];
    let mut seen: Vec<(String, String)> = values
        .iter()
        .map(|c| (c.value.as_str().unwrap().to_string(), c.author.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("detained".to_string(), actor(2).to_hex_string()),
            ("warning_issued".to_string(), actor(1).to_hex_string()),
        ]
    );

    // A fresh write resolves it, even with the value that already won.
    let winner = boat.fields()["outcome"].clone();
    boat.resolve(Some(form), "outcome", &winner).unwrap();
    assert!(boat.conflicts().is_empty());
    hq.merge(&mut boat).unwrap();
    assert!(hq.conflicts().is_empty());
    assert_eq!(hq.fields()["outcome"], winner);
}

#[test]
fn conflicts_inside_repeats_are_named_by_path() {
    let (mut boat, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    let mut hq = boat.fork(actor(2));
    let mut crew_boat = report()["crew"].clone();
    crew_boat[0]["name"] = json!("A. Josephs");
    let mut crew_hq = report()["crew"].clone();
    crew_hq[0]["name"] = json!("Andre Joseph");
    boat.update_fields(form, &obj(json!({ "crew": crew_boat })))
        .unwrap();
    hq.update_fields(form, &obj(json!({ "crew": crew_hq })))
        .unwrap();
    boat.merge(&mut hq).unwrap();
    let conflicts = boat.conflicts();
    assert_eq!(conflicts.keys().collect::<Vec<_>>(), vec!["crew[0].name"]);
    boat.resolve(Some(form), "crew[0].name", &json!("Andre Joseph"))
        .unwrap();
    assert!(boat.conflicts().is_empty());
    assert_eq!(boat.fields()["crew"][0]["name"], "Andre Joseph");
}

#[test]
fn narrative_edits_on_both_sides_both_survive() {
    let (mut boat, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    let mut hq = boat.fork(actor(2));
    boat.update_fields(
        form,
        &obj(json!({"findings": "Vessel boarded without incident at dawn. Catch inspected."})),
    )
    .unwrap();
    hq.update_fields(
        form,
        &obj(json!({"findings": "Vessel boarded without incident. Catch inspected and weighed."})),
    )
    .unwrap();
    boat.merge(&mut hq).unwrap();
    let findings = boat.fields()["findings"].as_str().unwrap().to_string();
    assert_eq!(
        findings,
        "Vessel boarded without incident at dawn. Catch inspected and weighed."
    );
    assert!(boat.conflicts().is_empty());
}

#[test]
fn removing_one_crew_member_merges_with_an_edit_of_another() {
    let (mut boat, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    let mut hq = boat.fork(actor(2));
    let crew = report()["crew"].as_array().unwrap().clone();
    boat.update_fields(form, &obj(json!({ "crew": crew[1..].to_vec() })))
        .unwrap();
    let mut edited = crew.clone();
    edited[2]["nationality"] = json!("LC");
    hq.update_fields(form, &obj(json!({ "crew": edited })))
        .unwrap();
    boat.merge(&mut hq).unwrap();
    let merged = boat.fields()["crew"].clone();
    assert_eq!(
        merged,
        json!([
            {"name": "B. Charles", "role": "crew"},
            {"name": "C. Pierre", "role": "crew", "nationality": "LC"}
        ])
    );
}

#[test]
fn an_unchanged_patch_writes_nothing() {
    let (mut doc, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    doc.update_fields(form, &report()).unwrap();
    assert!(doc.commit("edit", 0).is_none());
    doc.update_fields(form, &obj(json!({"arrests": 0})))
        .unwrap();
    assert!(doc.commit("edit", 0).is_some());
}

#[test]
fn null_removes_a_field() {
    let (mut doc, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    doc.update_fields(form, &obj(json!({"officers": null})))
        .unwrap();
    assert!(!doc.fields().contains_key("officers"));
}

#[test]
fn load_keeps_the_instance_actor() {
    let (mut doc, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    let bytes = doc.save();
    let mut loaded = RecordDoc::load(&bytes, &[], actor(1)).unwrap();
    assert_eq!(loaded.automerge().get_actor(), &actor(1));
    loaded
        .update_fields(form, &obj(json!({"arrests": 1})))
        .unwrap();
    loaded.commit("edit", 0);
    let actors: std::collections::HashSet<_> = loaded
        .automerge()
        .get_changes(&[])
        .iter()
        .map(|c| c.actor_id().clone())
        .collect();
    assert_eq!(actors.len(), 1, "a reload must not introduce a new author");
}

#[test]
fn incremental_chunks_load_back() {
    let (mut doc, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    let snapshot = doc.save();
    let heads = doc.heads();
    doc.update_fields(form, &obj(json!({"arrests": 2})))
        .unwrap();
    doc.commit("edit", 0);
    let chunk = doc.save_after(&heads);
    let loaded = RecordDoc::load(&snapshot, &[chunk], actor(1)).unwrap();
    assert_eq!(loaded.fields()["arrests"], 2);
}

#[test]
fn garbage_is_a_decode_error_not_a_panic() {
    for bytes in [&b""[..], b"\x85o\x4a\x83garbage", &[0u8; 64]] {
        assert!(RecordDoc::load(bytes, &[], actor(1)).is_err());
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Vessel(String),
    Outcome(usize),
    Findings(usize, String),
    AddCrew(String),
    DropCrew(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        "[A-Z][a-z]{1,8}".prop_map(Edit::Vessel),
        (0usize..4).prop_map(Edit::Outcome),
        (0usize..80, "[a-z ]{1,10}").prop_map(|(at, s)| Edit::Findings(at, s)),
        "[A-Z]\\. [A-Z][a-z]{2,6}".prop_map(Edit::AddCrew),
        (0usize..4).prop_map(Edit::DropCrew),
    ]
}

fn apply(doc: &mut RecordDoc, form: &Form, e: &Edit) {
    let f = doc.fields();
    let patch = match e {
        Edit::Vessel(v) => json!({ "vessel_name": v }),
        Edit::Outcome(i) => {
            let outcomes = ["released", "warning_issued", "escorted_to_port", "detained"];
            json!({ "outcome": outcomes[*i] })
        }
        Edit::Findings(at, s) => {
            let mut text: Vec<char> = f["findings"].as_str().unwrap_or("").chars().collect();
            let at = (*at).min(text.len());
            text.splice(at..at, s.chars());
            json!({ "findings": text.into_iter().collect::<String>() })
        }
        Edit::AddCrew(name) => {
            let mut crew = f["crew"].as_array().cloned().unwrap_or_default();
            crew.push(json!({ "name": name }));
            json!({ "crew": crew })
        }
        Edit::DropCrew(i) => {
            let mut crew = f["crew"].as_array().cloned().unwrap_or_default();
            if *i < crew.len() {
                crew.remove(*i);
            }
            json!({ "crew": crew })
        }
    };
    doc.update_fields(form, &obj(patch)).unwrap();
    doc.commit("edit", 0);
}

proptest! {
    /// Three copies edited independently converge to the same fields, conflicts
    /// and heads whatever order they are merged in.
    #[test]
    fn copies_converge_in_any_merge_order(
        edits in proptest::collection::vec((0usize..3, edit()), 1..24),
        order in Just(vec![0usize, 1, 2]).prop_shuffle(),
    ) {
        let (mut base, forms) = new_doc(&report());
        let form = forms.latest("boarding-report").unwrap().clone();
        let mut copies = [base.fork(actor(1)), base.fork(actor(2)), base.fork(actor(3))];
        for (who, e) in &edits {
            apply(&mut copies[*who], &form, e);
        }
        let mut a = copies[order[0]].fork(actor(9));
        let (first, second) = (order[1], order[2]);
        a.merge(&mut copies[first]).unwrap();
        a.merge(&mut copies[second]).unwrap();
        let mut b = copies[2].fork(actor(8));
        b.merge(&mut copies[1]).unwrap();
        b.merge(&mut copies[0]).unwrap();
        prop_assert_eq!(a.fields(), b.fields());
        prop_assert_eq!(a.conflicts(), b.conflicts());
        let (mut ha, mut hb) = (a.heads(), b.heads());
        ha.sort();
        hb.sort();
        prop_assert_eq!(ha, hb);
    }
}

#[test]
fn a_revision_keeps_what_others_changed_and_conflicts_where_both_did() {
    let (mut doc, forms) = new_doc(&report());
    let form = forms.latest("boarding-report").unwrap();
    let base = doc.heads();
    // HQ changes two answers meanwhile...
    let mut hq = doc.fork(actor(2));
    let mut theirs = Map::new();
    theirs.insert("vessel_name".into(), json!("Sea Breeze II"));
    theirs.insert("persons_on_board".into(), json!(4));
    hq.update_fields(form, &theirs).unwrap();
    hq.commit("edit by user:hq", 1_700_000_100);
    // ...and this instance made one of its own, which a revision must
    // follow (one actor's changes stay in sequence), before HQ's arrived.
    let mut own = Map::new();
    own.insert("master_name".into(), json!("A. Joseph"));
    doc.update_fields(form, &own).unwrap();
    doc.commit("edit by user:ann", 1_700_000_150);
    doc.merge(&mut hq).unwrap();
    // The phone's edit starts from what it first sent: it changes the
    // crew count and the outcome, and repeats the vessel name unchanged.
    let mut phone = report();
    phone.insert("persons_on_board".into(), json!(5));
    phone.insert("outcome".into(), json!("detained"));
    let hash = doc
        .revise(form, &base, &phone, "edit by user:ann", 1_700_000_200)
        .unwrap();
    assert!(hash.is_some());
    let fields = doc.fields();
    assert_eq!(fields["vessel_name"], "Sea Breeze II", "HQ's edit is kept");
    assert_eq!(fields["outcome"], "detained");
    assert_eq!(fields["master_name"], "A. Joseph", "own later edit is kept");
    let conflicts = doc.conflicts();
    assert_eq!(conflicts.keys().collect::<Vec<_>>(), ["persons_on_board"]);
    let mut values: Vec<Json> = conflicts["persons_on_board"]
        .iter()
        .map(|c| c.value.clone())
        .collect();
    values.sort_by_key(|v| v.to_string());
    assert_eq!(values, [json!(4), json!(5)]);
    // The same answers again change nothing.
    let again = doc.heads();
    assert!(doc
        .revise(form, &again, &doc.fields(), "edit", 1_700_000_300)
        .unwrap()
        .is_none());
}
