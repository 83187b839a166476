//! Damaged sync bodies are refused, never turned into records. Real request
//! and response bodies, built by the engine from real records, have bits
//! flipped at random offsets (many seeds); whatever the receiver then holds
//! is a record that was sent, exactly as it was sent.
//!
//! Two layers are attacked separately: the whole body (caught by the zstd
//! frame checksum) and single Automerge changes inside a well-formed body
//! (caught by each change's own checksum), since damage can happen before
//! a body is compressed, too.

mod support;

use proptest::prelude::*;
use std::collections::BTreeMap;
use tideline_schemas::{samples, FormRegistry};
use tideline_sync::engine::{sign_request, Downstream, Upstream};
use tideline_sync::protocol::{self, Limits, Rejection, SyncRequest, SyncResponse};
use tideline_sync::{Author, Filter, MemoryStore, Records};

const STATION: &str = "BB-01";
const RECORDS: usize = 12;

fn open() -> Records<MemoryStore> {
    Records::open(MemoryStore::new(), FormRegistry::builtin(), STATION).unwrap()
}

/// Every record's JSON view, by id.
fn views(records: &Records<MemoryStore>) -> Views {
    records
        .list(&Filter::default(), 10_000, 0)
        .unwrap()
        .records
        .iter()
        .map(|raw| {
            let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// A boat with some records, and the first request it sends.
fn boat_request() -> (Views, SyncRequest, Vec<u8>) {
    let boat = open();
    for n in 0..RECORDS {
        boat.create(
            Author::Instance,
            "boarding-report",
            &samples::varied_report(n),
        )
        .unwrap();
    }
    let signer = support::signer(&boat);
    let (request, _) = Downstream::new(&boat, &signer).prepare().unwrap();
    assert_eq!(request.push.len(), RECORDS);
    let bytes = protocol::encode_request(&request).unwrap();
    (views(&boat), request, bytes)
}

/// HQ's answer to a new downstream: every record of the station.
fn hq_response() -> (Views, Vec<u8>) {
    let hq = open();
    for n in 0..RECORDS {
        hq.create(
            Author::Instance,
            "boarding-report",
            &samples::varied_report(n),
        )
        .unwrap();
    }
    let mut request = SyncRequest {
        instance: [9; 16],
        station: STATION.into(),
        ..Default::default()
    };
    sign_request(&mut request, &support::signer_for([9; 16]));
    let response = Upstream::new()
        .handle(&hq, request, &support::peer_for([9; 16]))
        .unwrap();
    assert_eq!(response.pull.len(), RECORDS);
    (views(&hq), protocol::encode_response(&response).unwrap())
}

/// What the receiver holds is a subset of what was sent, each record as it
/// was sent (the views include fields, authors and timestamps).
fn only_what_was_sent(got: &Views, sent: &Views) -> Result<(), TestCaseError> {
    for (id, view) in got {
        let Some(original) = sent.get(id) else {
            return Err(TestCaseError::fail(format!(
                "record {id} appeared that was never sent"
            )));
        };
        prop_assert_eq!(view, original, "record {} differs from what was sent", id);
    }
    Ok(())
}

fn flip(bytes: &mut [u8], at: prop::sample::Index, bit: u8) {
    let i = at.index(bytes.len());
    bytes[i] ^= 1 << bit;
}

type Views = BTreeMap<String, serde_json::Value>;

/// Built once: the boat's first request (its records' views, the request and
/// its bytes) and HQ's first answer (its records' views and the bytes).
struct Fixtures {
    pushed: Views,
    request: SyncRequest,
    request_bytes: Vec<u8>,
    pulled: Views,
    response_bytes: Vec<u8>,
}

fn fixtures() -> &'static Fixtures {
    static F: std::sync::OnceLock<Fixtures> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let (pushed, request, request_bytes) = boat_request();
        let (pulled, response_bytes) = hq_response();
        Fixtures {
            pushed,
            request,
            request_bytes,
            pulled,
            response_bytes,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A pushed body with bits flipped anywhere: refused whole, or (a flip
    /// that changes nothing the frame carries) the records as sent.
    #[test]
    fn a_damaged_push_body_creates_no_record(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
    ) {
        let f = fixtures();
        let (sent, bytes) = (&f.pushed, &f.request_bytes);
        let mut damaged = bytes.clone();
        for (at, bit) in flips {
            flip(&mut damaged, at, bit);
        }
        let hq = open();
        if let Ok(request) = protocol::decode_request(&damaged, &Limits::default()) {
            let peer = support::peer_for(request.instance);
            let _ = Upstream::new().handle(&hq, request, &peer);
        }
        only_what_was_sent(&views(&hq), sent)?;
    }

    /// One record inside a well-formed request damaged, in one of its
    /// changes or in its whole document: that record is refused as
    /// invalid, the others arrive as sent.
    #[test]
    fn a_damaged_change_is_refused_and_the_rest_arrive(
        doc in any::<prop::sample::Index>(),
        change in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        as_changes in any::<bool>(),
    ) {
        let f = fixtures();
        let (sent, request) = (&f.pushed, &f.request);
        let mut request = request.clone();
        let target = doc.index(request.push.len());
        // A first push sends each record whole; a later one sends changes:
        // the damaged record travels either way.
        let pushed = &mut request.push[target];
        if as_changes {
            let whole = std::mem::take(&mut pushed.document);
            pushed.changes = automerge::AutoCommit::load(&whole)
                .unwrap()
                .get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect();
        }
        if pushed.document.is_empty() {
            let c = change.index(pushed.changes.len());
            flip(&mut pushed.changes[c], at, bit);
        } else {
            prop_assert!(pushed.changes.is_empty());
            flip(&mut pushed.document, at, bit);
        }
        let damaged_id = request.push[target].id.clone();
        // Signed after the damage, as a peer that damaged its own data
        // would: the record is refused for what it is, not for its signature.
        let signer = support::signer_for(request.instance);
        sign_request(&mut request, &signer);
        let bytes = protocol::encode_request(&request).unwrap();
        let request = protocol::decode_request(&bytes, &Limits::default()).unwrap();
        let hq = open();
        let peer = support::peer_for(request.instance);
        let response = Upstream::new().handle(&hq, request, &peer).unwrap();
        prop_assert!(
            response
                .rejected
                .iter()
                .any(|r| r.id == damaged_id && r.reason == Rejection::Invalid),
            "the damaged record was not refused: {:?}", response.rejected
        );
        let got = views(&hq);
        prop_assert!(!got.contains_key(&damaged_id));
        prop_assert_eq!(got.len(), RECORDS - 1);
        only_what_was_sent(&got, sent)?;
    }

    /// A pulled body with bits flipped anywhere: the downstream stores only
    /// records as the upstream sent them.
    #[test]
    fn a_damaged_pull_body_creates_no_record(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
    ) {
        let f = fixtures();
        let (sent, bytes) = (&f.pulled, &f.response_bytes);
        let mut damaged = bytes.clone();
        for (at, bit) in flips {
            flip(&mut damaged, at, bit);
        }
        let boat = open();
        if let Ok(response) = protocol::decode_response(&damaged, &Limits::default()) {
            let response: SyncResponse = response;
            let signer = support::signer(&boat);
            let mut down = Downstream::new(&boat, &signer);
            let (_, pending) = down.prepare().unwrap();
            let _ = down.absorb(pending, response);
        }
        only_what_was_sent(&views(&boat), sent)?;
    }
}
