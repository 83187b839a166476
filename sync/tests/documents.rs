//! Whole documents from a peer (a first transfer sends a record as its
//! stored document): each is checked before anything of it is stored, and
//! a hostile one is refused for that record alone, without a panic.

mod support;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};
use sha2::{Digest, Sha256};
use tideline_schemas::{samples, FormRegistry, RecordId};
use tideline_sync::engine::{sign_request, SyncError, Upstream};
use tideline_sync::protocol::{DocChanges, Rejection, SyncRequest, SyncResponse};
use tideline_sync::{Author, DocStore, MemoryStore, Records};

const STATION: &str = "BB-01";

fn open() -> Records<MemoryStore> {
    Records::open(MemoryStore::new(), FormRegistry::builtin(), STATION).unwrap()
}

/// A boat's record: its id and its document as the boat stores it.
fn boat_record(boat: &Records<MemoryStore>, n: usize) -> (RecordId, Vec<u8>) {
    let id = boat
        .create(
            Author::Instance,
            "boarding-report",
            &samples::varied_report(n),
        )
        .unwrap()
        .id;
    (id, boat.automerge_bytes(&id).unwrap())
}

fn whole(id: &str, document: Vec<u8>) -> DocChanges {
    DocChanges {
        id: id.to_string(),
        changes: Vec::new(),
        document,
    }
}

/// Push `docs` as `boat`, signed by it, to a fresh HQ.
fn push(
    boat: &Records<MemoryStore>,
    docs: Vec<DocChanges>,
) -> (Records<MemoryStore>, SyncResponse) {
    let hq = open();
    let response = Upstream::new()
        .handle(&hq, request(boat, docs), &support::peer(boat))
        .unwrap();
    (hq, response)
}

fn request(boat: &Records<MemoryStore>, push: Vec<DocChanges>) -> SyncRequest {
    let mut request = SyncRequest {
        instance: *boat.identity().device_id.as_bytes(),
        station: STATION.into(),
        push,
        ..Default::default()
    };
    sign_request(&mut request, &support::signer(boat));
    request
}

fn refused(response: &SyncResponse, id: &str) -> Option<Rejection> {
    response
        .rejected
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.reason)
}

/// A chunk of `kind` around `data`, with a checksum that matches.
fn chunk(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut len = Vec::new();
    let mut n = data.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            len.push(byte);
            break;
        }
        len.push(byte | 0x80);
    }
    let mut hasher = Sha256::new();
    hasher.update([kind]);
    hasher.update(&len);
    hasher.update(data);
    let sum = hasher.finalize();
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83];
    out.extend_from_slice(&sum[..4]);
    out.push(kind);
    out.extend_from_slice(&len);
    out.extend_from_slice(data);
    out
}

#[test]
fn a_sound_document_arrives_and_is_stored_as_sent() {
    let boat = open();
    let (id, doc) = boat_record(&boat, 1);
    let (hq, response) = push(&boat, vec![whole(&id.to_string(), doc.clone())]);
    assert!(response.rejected.is_empty(), "{:?}", response.rejected);
    assert_eq!(hq.automerge_bytes(&id).unwrap(), doc);
    let view = |r: &Records<MemoryStore>| {
        serde_json::from_str::<serde_json::Value>(r.get(&id).unwrap().get()).unwrap()
    };
    assert_eq!(view(&hq), view(&boat));
}

#[test]
fn documents_that_are_not_this_record_are_refused_and_nothing_is_stored() {
    let boat = open();
    let (id, doc) = boat_record(&boat, 2);
    let (other, _) = boat_record(&boat, 3);
    let mut loaded = AutoCommit::load(&doc).unwrap();
    // DEFLATEd columns: loading would inflate them without a bound.
    let deflated = loaded.save();
    assert_ne!(deflated, doc, "the report is large enough to be DEFLATEd");
    // An Automerge document, but not a record.
    let mut not_a_record = AutoCommit::new().with_actor(boat.identity().actor.clone());
    not_a_record.put(ROOT, "vessel", "Sea Breeze").unwrap();
    // A document chunk whose checksum matches but whose contents are noise.
    let noise = chunk(
        0,
        &(0..600u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let cases: Vec<(&str, DocChanges)> = vec![
        ("deflated", whole(&id.to_string(), deflated)),
        (
            "another record's document",
            whole(&other.to_string(), doc.clone()),
        ),
        (
            "not a record",
            whole(&id.to_string(), not_a_record.save_nocompress()),
        ),
        ("noise with a valid checksum", whole(&id.to_string(), noise)),
        (
            "cut short",
            whole(&id.to_string(), doc[..doc.len() - 3].to_vec()),
        ),
        (
            "changes and a document both",
            DocChanges {
                id: id.to_string(),
                changes: loaded
                    .get_changes(&[])
                    .iter()
                    .map(|c| c.raw_bytes().to_vec())
                    .collect(),
                document: doc.clone(),
            },
        ),
    ];
    for (what, doc) in cases {
        let target = doc.id.clone();
        let (hq, response) = push(&boat, vec![doc]);
        assert_eq!(
            refused(&response, &target),
            Some(Rejection::Invalid),
            "{what}: {:?}",
            response.rejected
        );
        assert_eq!(hq.store().count().unwrap(), 0, "{what}: nothing stored");
    }
}

#[test]
fn a_document_whose_changes_depend_on_missing_ones_waits_for_a_repair() {
    let boat = open();
    let (id, doc) = boat_record(&boat, 4);
    // A change made on a copy that has a change the document lacks.
    let mut copy = AutoCommit::load(&doc)
        .unwrap()
        .with_actor(ActorId::from([5u8; 16]));
    copy.put(ROOT, "status", "submitted").unwrap();
    copy.commit().unwrap();
    copy.put(ROOT, "status", "draft").unwrap();
    copy.commit().unwrap();
    let last = copy.get_last_local_change().unwrap().raw_bytes().to_vec();
    let (hq, response) = push(&boat, vec![whole(&id.to_string(), [doc, last].concat())]);
    assert_eq!(
        refused(&response, &id.to_string()),
        Some(Rejection::MissingDeps)
    );
    assert_eq!(hq.store().count().unwrap(), 0);
}

#[test]
fn a_document_naming_an_author_the_sender_may_not_speak_for_refuses_the_request() {
    let boat = open();
    let (id, doc) = boat_record(&boat, 5);
    let hq = open();
    // The sender is another device, signing what it sends: the document's
    // author is not its own, and the author signed nothing.
    let mut req = request(&boat, vec![whole(&id.to_string(), doc)]);
    req.instance = [7; 16];
    sign_request(&mut req, &support::signer_for([7; 16]));
    let result = Upstream::new().handle(&hq, req, &support::peer_for([7; 16]));
    assert!(
        matches!(result, Err(SyncError::ForgedAuthor { .. })),
        "{:?}",
        result.map(|r| r.rejected)
    );
    assert_eq!(hq.store().count().unwrap(), 0);
}
