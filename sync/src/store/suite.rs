//! The conformance suite every [`DocStore`] passes; each test is instantiated once
//! per implementation by `store_suite!`.

use super::*;
use tideline_schemas::RecordId;

pub(super) fn write(id: RecordId, doc: DocWrite, status: &str) -> RecordWrite {
    RecordWrite {
        id,
        doc,
        view: format!("{{\"id\":\"{id}\",\"status\":\"{status}\"}}").into_bytes(),
        summary: Summary {
            form: "boarding-report".into(),
            station: "BB-01".into(),
            status: status.into(),
            heads: vec![[7; 32]],
            attachments: Vec::new(),
        },
    }
}

pub(super) fn write_then_read_back(store: &dyn DocStore) {
    let id = RecordId::new();
    assert_eq!(store.load(&id).unwrap(), None);
    store
        .write(write(id, DocWrite::Replace(vec![1, 2, 3]), "draft"))
        .unwrap();
    let doc = store.load(&id).unwrap().unwrap();
    assert_eq!(doc.snapshot, vec![1, 2, 3]);
    assert!(doc.chunks.is_empty());
    let view = String::from_utf8(store.view(&id).unwrap().unwrap()).unwrap();
    assert!(view.contains("draft"));
    assert_eq!(store.count().unwrap(), 1);
}

pub(super) fn chunks_append_in_order_and_compaction_clears_them(store: &dyn DocStore) {
    let id = RecordId::new();
    store
        .write(write(id, DocWrite::Replace(vec![0]), "draft"))
        .unwrap();
    for n in 1..=12u8 {
        store
            .write(write(id, DocWrite::Append(vec![n]), "draft"))
            .unwrap();
    }
    let doc = store.load(&id).unwrap().unwrap();
    assert_eq!(doc.chunks, (1..=12u8).map(|n| vec![n]).collect::<Vec<_>>());
    store
        .write(write(id, DocWrite::Replace(vec![9, 9]), "submitted"))
        .unwrap();
    let doc = store.load(&id).unwrap().unwrap();
    assert_eq!(doc.snapshot, vec![9, 9]);
    assert!(doc.chunks.is_empty());
    store
        .write(write(id, DocWrite::Append(vec![7]), "submitted"))
        .unwrap();
    assert_eq!(store.load(&id).unwrap().unwrap().chunks, vec![vec![7]]);
}

pub(super) fn feed_has_each_record_once_at_its_latest_seq(store: &dyn DocStore) {
    let a = RecordId::new();
    let b = RecordId::new();
    let s1 = store
        .write(write(a, DocWrite::Replace(vec![1]), "draft"))
        .unwrap();
    let s2 = store
        .write(write(b, DocWrite::Replace(vec![1]), "draft"))
        .unwrap();
    let s3 = store
        .write(write(a, DocWrite::Append(vec![2]), "draft"))
        .unwrap();
    assert!(s1 < s2 && s2 < s3);
    assert_eq!(store.last_seq().unwrap(), s3);
    let feed = store.changes_since(0, 100).unwrap();
    assert_eq!(
        feed,
        vec![FeedEntry { seq: s2, id: b }, FeedEntry { seq: s3, id: a }]
    );
    assert_eq!(
        store.changes_since(s2, 100).unwrap(),
        vec![FeedEntry { seq: s3, id: a }]
    );
    assert_eq!(store.changes_since(0, 1).unwrap().len(), 1);
    assert!(store.changes_since(s3, 100).unwrap().is_empty());
    assert_eq!(store.count().unwrap(), 2);
}

pub(super) fn summaries_scan_newest_first_and_stop_early(store: &dyn DocStore) {
    let ids: Vec<RecordId> = (0..5).map(|_| RecordId::new()).collect();
    for id in &ids {
        store
            .write(write(*id, DocWrite::Replace(vec![1]), "draft"))
            .unwrap();
    }
    let mut seen = Vec::new();
    store
        .scan_summaries(&mut |id, s| {
            assert_eq!(s.station, "BB-01");
            seen.push(id);
            true
        })
        .unwrap();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let mut first_two = Vec::new();
    store
        .scan_summaries(&mut |id, _| {
            first_two.push(id);
            first_two.len() < 2
        })
        .unwrap();
    assert_eq!(first_two, expected[..2].to_vec());
}

pub(super) fn meta_round_trips(store: &dyn DocStore) {
    assert_eq!(store.get_meta("k").unwrap(), None);
    store.put_meta("k", b"v1").unwrap();
    store.put_meta("k", b"v2").unwrap();
    assert_eq!(store.get_meta("k").unwrap(), Some(b"v2".to_vec()));
}

pub(super) fn empty_store_is_empty(store: &dyn DocStore) {
    assert_eq!(store.last_seq().unwrap(), 0);
    assert_eq!(store.count().unwrap(), 0);
    assert!(store.changes_since(0, 10).unwrap().is_empty());
}

pub(super) fn a_commit_is_one_unit_with_its_state(store: &dyn DocStore) {
    let (a, b) = (RecordId::new(), RecordId::new());
    let seqs = store
        .commit(Commit {
            records: vec![
                write(a, DocWrite::Replace(vec![1]), "draft"),
                write(b, DocWrite::Replace(vec![2]), "draft"),
            ],
            state: vec![
                StateWrite {
                    key: b"ck/1".to_vec(),
                    value: Some(b"one".to_vec()),
                },
                StateWrite {
                    key: b"ck/2".to_vec(),
                    value: Some(b"two".to_vec()),
                },
                StateWrite {
                    key: b"other".to_vec(),
                    value: Some(b"x".to_vec()),
                },
            ],
        })
        .unwrap();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0] < seqs[1]);
    assert_eq!(store.summary(&a).unwrap().unwrap().status, "draft");
    assert_eq!(store.get_state(b"ck/2").unwrap(), Some(b"two".to_vec()));
    let scanned = store.scan_state(b"ck/").unwrap();
    assert_eq!(
        scanned,
        vec![
            (b"ck/1".to_vec(), b"one".to_vec()),
            (b"ck/2".to_vec(), b"two".to_vec())
        ]
    );
    store
        .commit(Commit {
            records: vec![],
            state: vec![StateWrite {
                key: b"ck/1".to_vec(),
                value: None,
            }],
        })
        .unwrap();
    assert_eq!(store.get_state(b"ck/1").unwrap(), None);
    store
        .put_state_lazy(vec![StateWrite {
            key: b"lazy".to_vec(),
            value: Some(vec![7]),
        }])
        .unwrap();
    assert_eq!(store.get_state(b"lazy").unwrap(), Some(vec![7]));
}

pub(super) fn a_record_twice_in_one_commit_is_refused_whole(store: &dyn DocStore) {
    let a = RecordId::new();
    let before = store.last_seq().unwrap();
    let result = store.commit(Commit {
        records: vec![
            write(a, DocWrite::Replace(vec![1]), "draft"),
            write(a, DocWrite::Append(vec![2]), "draft"),
        ],
        state: vec![StateWrite {
            key: b"k".to_vec(),
            value: Some(vec![1]),
        }],
    });
    assert!(matches!(result, Err(StoreError::DuplicateInCommit(id)) if id == a));
    assert_eq!(store.load(&a).unwrap(), None);
    assert_eq!(store.get_state(b"k").unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), before);
}

macro_rules! store_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            store_suite!(@tests $make;
                write_then_read_back,
                chunks_append_in_order_and_compaction_clears_them,
                feed_has_each_record_once_at_its_latest_seq,
                summaries_scan_newest_first_and_stop_early,
                meta_round_trips,
                empty_store_is_empty,
                a_commit_is_one_unit_with_its_state,
                a_record_twice_in_one_commit_is_refused_whole);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                let (store, _guard) = $make;
                super::super::$name(&store);
            }
        )*
    };
}

mod backends {
    use super::*;
    store_suite!(memory, (MemoryStore::new(), ()));
    store_suite!(sled, {
        let dir = tempfile::tempdir().unwrap();
        (SledStore::open(dir.path()).unwrap(), dir)
    });
}

#[test]
fn sled_keeps_everything_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = RecordId::new();
    let seq = {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .write(write(id, DocWrite::Replace(vec![5]), "draft"))
            .unwrap();
        store
            .write(write(id, DocWrite::Append(vec![6]), "draft"))
            .unwrap()
    };
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.last_seq().unwrap(), seq);
    assert_eq!(store.load(&id).unwrap().unwrap().chunks, vec![vec![6]]);
    let next = store
        .write(write(RecordId::new(), DocWrite::Replace(vec![1]), "draft"))
        .unwrap();
    assert!(next > seq, "seqs keep growing after a restart");
}

#[test]
fn sled_refuses_a_second_opener_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledStore::open(dir.path()).unwrap();
    match SledStore::open(dir.path()) {
        Err(StoreError::InUse(p)) => assert_eq!(p, dir.path()),
        Err(e) => panic!("expected InUse, got {e}"),
        Ok(_) => panic!("a second opener must be refused"),
    }
}
