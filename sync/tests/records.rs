//! The record service over both stores: compaction, the edit rules, identity.

use serde_json::{json, Map, Value};
use std::sync::Arc;
use tideline_schemas::{FormRegistry, RecordId};
use tideline_sync::records::MAX_CHUNKS;
use tideline_sync::records::{Payload, RemoteDoc, RemoteResult};
use tideline_sync::{
    ActorId, Author, DocStore, MemoryStore, Patch, RecordDoc, RecordMeta, Records, RecordsError,
    SledStore, Status,
};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn sighting() -> Map<String, Value> {
    obj(
        json!({"sighted_at": "2026-11-21T09:00:00Z", "position": {"lat": 12.5, "lon": -61.4}, "description": "Fast boat heading west."}),
    )
}

fn fields_of(view: &serde_json::value::RawValue) -> Value {
    let v: Value = serde_json::from_str(view.get()).unwrap();
    v["fields"].clone()
}

fn each_store(test: impl Fn(Arc<dyn DocStore>)) {
    test(Arc::new(MemoryStore::new()));
    let dir = tempfile::tempdir().unwrap();
    test(Arc::new(SledStore::open(dir.path()).unwrap()));
}

#[test]
fn chunks_are_compacted_past_the_threshold_and_nothing_is_lost() {
    each_store(|store| {
        let records = Records::open(store.clone(), FormRegistry::builtin(), "BB-01").unwrap();
        let id = records
            .create(Author::Instance, "vessel-sighting", &sighting())
            .unwrap()
            .id;
        let mut max_chunks = 0;
        let mut compactions = 0;
        for n in 0..(3 * MAX_CHUNKS) {
            let text = format!(
                "Fast boat heading west. Update {n}.{}",
                " More.".repeat(n % 3)
            );
            let patch = Patch {
                fields: Some(obj(json!({"description": text, "speed_knots": n as f64}))),
                status: None,
            };
            let before = store.load(&id).unwrap().unwrap().chunks.len();
            records.patch(Author::Instance, &id, &patch).unwrap();
            let after = store.load(&id).unwrap().unwrap().chunks.len();
            if after <= before {
                compactions += 1;
            }
            max_chunks = max_chunks.max(after);
            assert_eq!(fields_of(&records.get(&id).unwrap())["description"], text);
        }
        assert!(max_chunks <= MAX_CHUNKS, "chunks grew to {max_chunks}");
        assert!(
            compactions >= 1,
            "no compaction in {} edits",
            3 * MAX_CHUNKS
        );
        let bytes = records.automerge_bytes(&id).unwrap();
        let doc = automerge::AutoCommit::load(&bytes).expect("compacted document loads");
        let fields: Value = serde_json::to_value(automerge::AutoSerde::from(&doc)).unwrap();
        assert_eq!(fields["fields"], fields_of(&records.get(&id).unwrap()));
    });
}

#[test]
fn every_kind_of_write_compacts_past_the_threshold() {
    let store = Arc::new(MemoryStore::new());
    let records = Records::open(store.clone(), FormRegistry::builtin(), "BB-01").unwrap();
    let id = records
        .create(Author::Instance, "vessel-sighting", &sighting())
        .unwrap()
        .id;
    // Review comments alone, which once only ever appended.
    for n in 0..(2 * MAX_CHUNKS) {
        let by = Author::person("user:sam", None);
        records.review(by, &id, &format!("Comment {n}")).unwrap();
        let chunks = store.load(&id).unwrap().unwrap().chunks.len();
        assert!(chunks <= MAX_CHUNKS, "{chunks} chunks after {n} comments");
    }
    let view: Value = serde_json::from_str(records.get(&id).unwrap().get()).unwrap();
    assert_eq!(view["review"].as_array().unwrap().len(), 2 * MAX_CHUNKS);
    assert_eq!(view["review"][0]["by"], "user:sam");
}

/// Writes of a record kept open append small chunks; a write that has to
/// load the record from its chunks stores it back whole, so that the next
/// load reads one snapshot.
#[test]
fn a_record_loaded_from_its_chunks_is_stored_back_whole() {
    each_store(|store| {
        let open = || Records::open(store.clone(), FormRegistry::builtin(), "BB-01").unwrap();
        let records = open();
        let id = records
            .create(Author::Instance, "vessel-sighting", &sighting())
            .unwrap()
            .id;
        for (n, speed) in [4.0, 6.5].into_iter().enumerate() {
            let edit = patch(json!({"speed_knots": speed}), None);
            records.patch(Author::Instance, &id, &edit).unwrap();
            assert_eq!(store.load(&id).unwrap().unwrap().chunks.len(), n + 1);
        }
        drop(records);

        let records = open();
        let edit = patch(json!({"heading_deg": 90}), None);
        records.patch(Author::Instance, &id, &edit).unwrap();
        assert_eq!(store.load(&id).unwrap().unwrap().chunks.len(), 0);
        let fields = fields_of(&records.get(&id).unwrap());
        assert_eq!(fields["speed_knots"], 6.5);
        assert_eq!(fields["heading_deg"], 90);
        assert_eq!(records.history(&id).unwrap().len(), 4, "every change kept");
    });
}

#[test]
fn a_person_writes_only_the_records_of_their_station() {
    let records = Records::open(MemoryStore::new(), FormRegistry::builtin(), "BB-01").unwrap();
    let elsewhere = Author::person("user:lee", Some("LC-01"));
    assert!(matches!(
        records.create(elsewhere, "vessel-sighting", &sighting()),
        Err(RecordsError::Forbidden(_))
    ));
    let here = Author::person("user:ann", Some("BB-01"));
    let written = records
        .create(here, "vessel-sighting", &sighting())
        .unwrap();
    let patch = Patch {
        fields: Some(obj(json!({"description": "Slowing down."}))),
        status: None,
    };
    assert!(matches!(
        records.patch(elsewhere, &written.id, &patch),
        Err(RecordsError::Forbidden(_))
    ));
    let view: Value = serde_json::from_str(written.view.get()).unwrap();
    assert_eq!(view["id"], written.id.to_string());
    assert_eq!(view["created_by_person"], "user:ann");
    let history = records.history(&written.id).unwrap();
    assert_eq!(history[0].person.as_deref(), Some("user:ann"));
}

#[test]
fn invalid_edits_are_refused_and_write_nothing() {
    each_store(|store| {
        let records = Records::open(store.clone(), FormRegistry::builtin(), "BB-01").unwrap();
        let id = records
            .create(Author::Instance, "vessel-sighting", &sighting())
            .unwrap()
            .id;
        let seq = store.last_seq().unwrap();
        let bad = Patch {
            fields: Some(obj(json!({"heading_deg": 400}))),
            status: None,
        };
        match records.patch(Author::Instance, &id, &bad) {
            Err(RecordsError::Invalid(v)) => assert_eq!(v[0].path, "heading_deg"),
            Err(e) => panic!("expected Invalid, got {e}"),
            Ok(_) => panic!("an out-of-range heading was accepted"),
        }
        assert_eq!(
            store.last_seq().unwrap(),
            seq,
            "a refused edit writes nothing"
        );

        let ok = Patch {
            fields: Some(obj(json!({"heading_deg": 270}))),
            status: Some(Status::Submitted),
        };
        let view: Value = serde_json::from_str(
            records
                .patch(Author::Instance, &id, &ok)
                .unwrap()
                .view
                .get(),
        )
        .unwrap();
        assert_eq!(view["status"], "submitted");
        assert_eq!(view["fields"]["heading_deg"], 270);
    });
}

/// A record another instance wrote with a problem (a heading of 400), as
/// sync brings it here: the store takes it and flags it in its view.
fn arrive_invalid(records: &Records<Arc<dyn DocStore>>, status: Status) -> RecordId {
    let forms = FormRegistry::builtin();
    let form = forms.latest("vessel-sighting").unwrap();
    let meta = RecordMeta::new(RecordId::new(), form, "BB-01", "peer");
    let mut fields = sighting();
    fields.insert("heading_deg".into(), json!(400));
    let mut doc =
        RecordDoc::create(ActorId::random(), &meta, form, &fields, 1_700_000_000).unwrap();
    if status != Status::Draft {
        doc.set_status(status).unwrap();
        doc.commit("edit", 1_700_000_100);
    }
    let results = records
        .apply_remote(
            vec![RemoteDoc {
                id: meta.id,
                payload: Payload::Changes(doc.changes_since(&[])),
            }],
            |_| true,
            |_| Vec::new(),
        )
        .unwrap();
    assert!(matches!(results[0].1, RemoteResult::Applied));
    meta.id
}

fn patch(fields: Value, status: Option<Status>) -> Patch {
    Patch {
        fields: Some(obj(fields)),
        status,
    }
}

/// Edits are judged against the record as it was before them: a problem it
/// already had refuses nothing, a new one refuses the edit, and a record
/// past the draft state keeps its fields while it has problems.
#[test]
fn edits_of_a_record_that_arrived_invalid_are_judged_against_its_earlier_state() {
    each_store(|store| {
        let records = Records::open(store.clone(), FormRegistry::builtin(), "BB-01").unwrap();

        let draft = arrive_invalid(&records, Status::Draft);
        let fixed_text = patch(json!({"description": "Two people on deck."}), None);
        let view = records
            .patch(Author::Instance, &draft, &fixed_text)
            .unwrap()
            .view;
        let view: Value = serde_json::from_str(view.get()).unwrap();
        assert_eq!(view["fields"]["description"], "Two people on deck.");
        assert_eq!(
            view["validation"][0]["path"], "heading_deg",
            "still flagged"
        );

        match records.patch(
            Author::Instance,
            &draft,
            &patch(json!({"speed_knots": -3}), None),
        ) {
            Err(RecordsError::Invalid(v)) => {
                assert_eq!(v.len(), 1, "only the new problem is named: {v:?}");
                assert_eq!(v[0].path, "speed_knots");
            }
            other => panic!("a new problem was not refused: {other:?}"),
        }
        match records.patch(
            Author::Instance,
            &draft,
            &patch(json!({}), Some(Status::Submitted)),
        ) {
            Err(RecordsError::Incomplete { status, .. }) => assert_eq!(status, Status::Submitted),
            other => panic!("an invalid record was submitted: {other:?}"),
        }

        let submitted = arrive_invalid(&records, Status::Submitted);
        match records.patch(Author::Instance, &submitted, &fixed_text) {
            Err(RecordsError::Incomplete { .. }) => {}
            other => panic!("a submitted, invalid record took a new value: {other:?}"),
        }
        let same = patch(json!({"description": "Fast boat heading west."}), None);
        records
            .patch(Author::Instance, &submitted, &same)
            .expect("writing the value it already has changes nothing");
        let fix = patch(json!({"heading_deg": 270}), None);
        let view = records
            .patch(Author::Instance, &submitted, &fix)
            .unwrap()
            .view;
        let view: Value = serde_json::from_str(view.get()).unwrap();
        assert_eq!(view["status"], "submitted");
        assert_eq!(view["validation"], json!([]));
    });
}

#[test]
fn unknown_records_and_forms_are_errors() {
    each_store(|store| {
        let records = Records::open(store, FormRegistry::builtin(), "BB-01").unwrap();
        assert!(matches!(
            records.create(Author::Instance, "no-such-form", &Map::new()),
            Err(RecordsError::UnknownForm(_))
        ));
        let nobody = RecordId::new();
        assert!(matches!(
            records.get(&nobody),
            Err(RecordsError::NotFound(_))
        ));
        assert!(matches!(
            records.patch(Author::Instance, &nobody, &Patch::default()),
            Err(RecordsError::NotFound(_))
        ));
    });
}

#[test]
fn the_instance_keeps_one_identity_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Records::open(
            SledStore::open(dir.path()).unwrap(),
            FormRegistry::builtin(),
            "BB-01",
        )
        .unwrap()
    };
    let (device, id) = {
        let records = open();
        let id = records
            .create(Author::Instance, "vessel-sighting", &sighting())
            .unwrap()
            .id;
        (records.identity().device_id, id)
    };
    let records = open();
    assert_eq!(records.identity().device_id, device);
    let patch = Patch {
        fields: Some(obj(json!({"vessel_name": "Grey Ghost"}))),
        status: None,
    };
    records.patch(Author::Instance, &id, &patch).unwrap();
    let mut doc = automerge::AutoCommit::load(&records.automerge_bytes(&id).unwrap()).unwrap();
    let actors: std::collections::HashSet<_> = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.actor_id().clone())
        .collect();
    assert_eq!(actors.len(), 1, "one device, one author, across restarts");
    assert_eq!(
        actors.into_iter().next().unwrap().to_bytes(),
        device.as_bytes()
    );
}

#[test]
fn a_published_form_version_is_kept_and_used_after_reopening() {
    each_store(|store| {
        let records = Records::open(store.clone(), FormRegistry::builtin(), "BB-01").unwrap();
        let mut form: Value =
            serde_json::to_value(records.forms().latest("vessel-sighting").unwrap()).unwrap();
        form["version"] = json!(2);
        form["title"] = json!("Vessel sighting (2)");
        let (published, new) = records.publish_form(&form.to_string()).unwrap();
        assert!(new);
        assert_eq!(published.version, 2);
        // Again, unchanged: accepted, not new. Changed: refused.
        assert!(!records.publish_form(&form.to_string()).unwrap().1);
        form["title"] = json!("Something else");
        assert!(matches!(
            records.publish_form(&form.to_string()),
            Err(RecordsError::FormVersionTaken { version: 2, .. })
        ));
        assert!(matches!(
            records.publish_form("{\"id\": \"x\"}"),
            Err(RecordsError::InvalidForm(_))
        ));
        drop(records);
        let reopened = Records::open(store, FormRegistry::builtin(), "BB-01").unwrap();
        assert_eq!(
            reopened.forms().latest("vessel-sighting").unwrap().version,
            2
        );
        assert_eq!(
            reopened.forms().latest("vessel-sighting").unwrap().title,
            "Vessel sighting (2)"
        );
        let view: Value = serde_json::from_str(
            reopened
                .create(Author::Instance, "vessel-sighting", &sighting())
                .unwrap()
                .view
                .get(),
        )
        .unwrap();
        assert_eq!(view["form_version"], 2);
    });
}

#[test]
fn search_finds_text_inside_repeats_and_lists() {
    let records = Records::open(MemoryStore::new(), FormRegistry::builtin(), "BB-01").unwrap();
    let mut report = tideline_schemas::samples::boarding_report(7);
    report.insert(
        "crew".into(),
        json!([{"name": "Élodie Noël", "role": "master"}]),
    );
    records
        .create(Author::Instance, "boarding-report", &report)
        .unwrap();
    records
        .create(Author::Instance, "vessel-sighting", &sighting())
        .unwrap();
    let found = |text: &str| {
        records
            .list(
                &tideline_sync::Filter {
                    text: Some(text.into()),
                    ..Default::default()
                },
                10,
                0,
            )
            .unwrap()
            .total
    };
    let tag = report["seizures"][0]["evidence_tag"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(found("élodie"), 1, "a crew member's name");
    assert_eq!(found(&tag.to_lowercase()), 1, "an evidence tag");
    assert_eq!(found("fast boat"), 1, "a top-level text");
    assert_eq!(found("nobody at all"), 0);
}

/// Writers on several threads, on both stores: edits of one record never
/// lose each other (each holds the record while it loads, edits and
/// stores it), creates and edits of other records run alongside, every
/// write gets its own place in the feed, and on sled all of it is still
/// there after reopening the store.
#[test]
fn concurrent_writers_lose_nothing_and_each_write_is_in_the_feed() {
    const THREADS: usize = 4;
    const EDITS: usize = 25;
    let check = |store: Arc<dyn DocStore>| -> Vec<(RecordId, Value)> {
        let records = Records::open(store.clone(), FormRegistry::builtin(), "BB-01").unwrap();
        let shared = records
            .create(Author::Instance, "vessel-sighting", &sighting())
            .unwrap()
            .id;
        let seq_before = store.last_seq().unwrap();
        let own: Vec<RecordId> = std::thread::scope(|s| {
            let running: Vec<_> = (0..THREADS)
                .map(|t| {
                    let records = &records;
                    s.spawn(move || {
                        let mine = records
                            .create(Author::Instance, "vessel-sighting", &sighting())
                            .unwrap()
                            .id;
                        for e in 0..EDITS {
                            // A field of its own on the shared record, and
                            // its own record's description.
                            let key = format!("crew_{t}_{e}");
                            let fields = obj(json!({"description": key}));
                            records
                                .patch(
                                    Author::Instance,
                                    &mine,
                                    &Patch {
                                        fields: Some(fields),
                                        status: None,
                                    },
                                )
                                .unwrap();
                            let tail = obj(json!({"vessel_name": format!("t{t} e{e}")}));
                            records
                                .patch(
                                    Author::Instance,
                                    &shared,
                                    &Patch {
                                        fields: Some(tail),
                                        status: None,
                                    },
                                )
                                .unwrap();
                        }
                        mine
                    })
                })
                .collect();
            running.into_iter().map(|t| t.join().unwrap()).collect()
        });
        // Every write took its own seq: creates, then two patches per edit.
        let writes = THREADS * (1 + 2 * EDITS);
        assert_eq!(store.last_seq().unwrap(), seq_before + writes as u64);
        // The shared record holds every edit made to it: its history has
        // one change per patch, none lost to a concurrent load-modify-store.
        let bytes = records.automerge_bytes(&shared).unwrap();
        let history = automerge::AutoCommit::load(&bytes)
            .unwrap()
            .get_changes(&[])
            .len();
        assert_eq!(history, 1 + THREADS * EDITS, "changes of the shared record");
        let mut out: Vec<(RecordId, Value)> = own
            .iter()
            .chain(std::iter::once(&shared))
            .map(|id| (*id, fields_of(&records.get(id).unwrap())))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        for (id, fields) in &out {
            if *id != shared {
                assert_eq!(
                    fields["description"],
                    format!(
                        "crew_{}_{}",
                        own.iter().position(|o| o == id).unwrap(),
                        EDITS - 1
                    )
                );
            }
        }
        out
    };
    check(Arc::new(MemoryStore::new()));
    let dir = tempfile::tempdir().unwrap();
    let written = check(Arc::new(SledStore::open(dir.path()).unwrap()));
    let reopened = Records::open(
        SledStore::open(dir.path()).unwrap(),
        FormRegistry::builtin(),
        "BB-01",
    )
    .unwrap();
    for (id, fields) in written {
        assert_eq!(fields_of(&reopened.get(&id).unwrap()), fields);
    }
}
