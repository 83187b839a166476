//! What signatures cost on the wire (docs/EVIDENCE.md, docs/PERFORMANCE.md),
//! measured on real requests of varied reports: the same request encoded
//! with and without its signing fields. On a boat's link signing may add at
//! most 128 bytes a request; on a station's link the boats' signatures and
//! certificates it passes on at most 40 bytes a relayed change.

use automerge::AutoCommit;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use tideline_schemas::{samples, FormRegistry};
use tideline_sync::engine::{Downstream, Upstream};
use tideline_sync::evidence::{Attestor, AuditHead, Certificate};
use tideline_sync::protocol::{self, SyncRequest};
use tideline_sync::{Author, MemoryStore, Records};

mod support;

/// A signer with an audit log of some length, as a real instance has.
struct Audited(support::Signer);

fn entry_hash(seq: u64) -> [u8; 32] {
    Sha256::digest(seq.to_be_bytes()).into()
}

impl Attestor for Audited {
    fn sign(&self, m: &[u8]) -> [u8; 64] {
        self.0.sign(m)
    }
    fn public_key(&self) -> VerifyingKey {
        self.0.public_key()
    }
    fn audit_head(&self) -> AuditHead {
        AuditHead {
            seq: 48_213,
            hash: entry_hash(48_213),
        }
    }
    fn audit_hash_at(&self, seq: u64) -> Option<[u8; 32]> {
        Some(entry_hash(seq))
    }
    fn certificate(&self, device: &[u8; 16]) -> Option<Certificate> {
        self.0.certificate(device)
    }
}

fn open() -> Records<MemoryStore> {
    Records::open(MemoryStore::new(), FormRegistry::builtin(), "BB-01").unwrap()
}

/// The encoded request, and the same request without what signing adds.
fn with_and_without(request: &SyncRequest) -> (usize, usize) {
    let mut bare = request.clone();
    bare.signature.clear();
    bare.signed_heads.clear();
    bare.audit = AuditHead::default();
    bare.audit_check = None;
    bare.relayed.clear();
    bare.certificates.clear();
    (
        protocol::encode_request(request).unwrap().len(),
        protocol::encode_request(&bare).unwrap().len(),
    )
}

/// Sync `down` into `up` to the end.
fn sync(down: &Records<MemoryStore>, up: &Records<MemoryStore>, upstream: &Upstream) {
    let signer = Audited(support::signer(down));
    let mut ds = Downstream::new(down, &signer);
    for _ in 0..100 {
        let (request, pending) = ds.prepare().unwrap();
        let response = upstream.handle(up, request, &support::peer(down)).unwrap();
        if !ds.absorb(pending, response).unwrap().more {
            return;
        }
    }
    panic!("sync did not finish");
}

#[test]
fn signing_adds_at_most_128_bytes_to_a_boats_request() {
    let (boat, station) = (open(), open());
    let upstream = Upstream::new();
    for n in 0..300 {
        boat.create(
            Author::Instance,
            "boarding-report",
            &samples::varied_report(n),
        )
        .unwrap();
    }
    let signer = Audited(support::signer(&boat));
    let (first, _) = Downstream::new(&boat, &signer).prepare().unwrap();
    let (signed, bare) = with_and_without(&first);
    eprintln!(
        "boat, first request (300 records): {signed} B signed, {bare} B bare, +{} B",
        signed - bare
    );
    assert!(signed - bare <= 128, "+{} bytes", signed - bare);

    // Later requests carry the audit check too.
    sync(&boat, &station, &upstream);
    for n in 300..305 {
        boat.create(
            Author::Instance,
            "boarding-report",
            &samples::varied_report(n),
        )
        .unwrap();
    }
    let (later, _) = Downstream::new(&boat, &signer).prepare().unwrap();
    assert!(later.audit_check.is_some());
    let (signed, bare) = with_and_without(&later);
    eprintln!(
        "boat, later request (5 records): {signed} B signed, {bare} B bare, +{} B",
        signed - bare
    );
    assert!(signed - bare <= 128, "+{} bytes", signed - bare);
}

#[test]
fn a_station_passes_its_boats_signatures_on_for_at_most_40_bytes_a_change() {
    let (boat, station, hq) = (open(), open(), open());
    let upstream = Upstream::new();
    for n in 0..600 {
        boat.create(
            Author::Instance,
            "boarding-report",
            &samples::varied_report(n),
        )
        .unwrap();
    }
    sync(&boat, &station, &upstream);
    let signer = Audited(support::signer(&station));
    let mut ds = Downstream::new(&station, &signer);
    let (mut total_signed, mut total_bare, mut changes) = (0, 0, 0);
    let hq_upstream = Upstream::new();
    for _ in 0..100 {
        let (request, pending) = ds.prepare().unwrap();
        let (signed, bare) = with_and_without(&request);
        total_signed += signed;
        total_bare += bare;
        for doc in &request.push {
            changes += if doc.document.is_empty() {
                doc.changes.len()
            } else {
                AutoCommit::load(&doc.document)
                    .unwrap()
                    .get_changes(&[])
                    .len()
            };
        }
        let response = hq_upstream
            .handle(&hq, request, &support::peer(&station))
            .unwrap();
        if !ds.absorb(pending, response).unwrap().more {
            break;
        }
    }
    assert_eq!(tideline_sync::DocStore::count(hq.store()).unwrap(), 600);
    let per_change = (total_signed - total_bare) as f64 / changes as f64;
    eprintln!(
        "station relaying {changes} boat changes: {total_signed} B signed, {total_bare} B bare, \
         {per_change:.1} B a change"
    );
    assert!(per_change <= 40.0, "{per_change:.1} bytes a relayed change");
}
