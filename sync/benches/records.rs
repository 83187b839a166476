//! Benchmarks of the record service on a real sled store (docs/PERFORMANCE.md).
//!
//! Every write path here goes through `SledStore::write`, so it includes the
//! sled flush and the fsync of the database file: that is the latency an officer
//! pressing Save sees. `fsync_floor` measures the disk alone, to tell whether a
//! write target is reachable on this machine at all.
//!
//! Run with `cargo bench -p tideline-sync --bench records`. The document size
//! figures and patch cost against history length are printed once on standard
//! error before the timings (set TIDELINE_BENCH_QUICK=1 to skip the history).
//! `sync_hop` is CPU only: the Automerge work a record costs each time sync
//! carries it across one link.

#![forbid(unsafe_code)]

/// The allocator the `tideline` binary runs with (server/src/main.rs), so
/// that these figures are the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Map, Value as Json};
use std::cell::{Cell, OnceCell};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::Duration;
use tideline_schemas::{FormRegistry, RecordId};
use tideline_sync::record::{RecordDoc, RecordMeta};
use tideline_sync::{Author, Filter, MemoryStore, Patch, Records, SledStore};

const STATION: &str = "BB-01";
const FORM: &str = "boarding-report";
const LARGE_STORE: usize = 10_000;

/// A store in a temporary directory; the directory lives as long as the store.
struct Fixture {
    records: Records<SledStore>,
    _dir: tempfile::TempDir,
}

fn open_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = SledStore::open(dir.path()).expect("open the sled store");
    let records =
        Records::open(store, FormRegistry::builtin(), STATION).expect("open the record service");
    Fixture { records, _dir: dir }
}

/// A varied boarding report (6 crew, 2 seizures, 600 characters of
/// findings) that compresses no better than real ones.
fn typical_report(n: usize) -> Map<String, Json> {
    tideline_schemas::samples::varied_report(n)
}

/// The body of a list response, as the server writes it.
#[derive(serde::Serialize)]
struct ListBody<'a> {
    records: &'a [Box<serde_json::value::RawValue>],
    total: usize,
    limit: usize,
    offset: usize,
}

/// Automerge size of a document holding only `fields` (plus meta), to see what
/// each part of the record costs.
fn doc_size(fields: &Map<String, Json>) -> usize {
    let forms = FormRegistry::builtin();
    let form = forms
        .latest(FORM)
        .expect("the boarding report form is built in");
    let meta = RecordMeta::new(
        RecordId::new(),
        form,
        STATION,
        "00000000-0000-0000-0000-000000000000",
    );
    let mut doc = RecordDoc::create(automerge::ActorId::from([7u8; 16]), &meta, form, fields, 0)
        .expect("create a document");
    doc.save().len()
}

/// Print the saved document size against the JSON of the same record, once.
fn report_sizes() {
    let fx = open_fixture();
    let fields = typical_report(1);
    let written = fx
        .records
        .create(Author::Instance, FORM, &fields)
        .expect("create a record");
    let (id, view) = (written.id, written.view);
    let doc = fx
        .records
        .automerge_bytes(&id)
        .expect("save the document")
        .len();
    let fields_json = serde_json::to_vec(&fields).expect("fields as JSON").len();
    let view_json = view.get().len();
    let stored = fx.records.store();
    let stored_doc = tideline_sync::DocStore::load(stored, &id)
        .expect("load")
        .expect("the record is stored");

    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "== document size (typical boarding report) ==");
    let _ = writeln!(err, "automerge_bytes (compacted save): {doc} B");
    let _ = writeln!(
        err,
        "stored snapshot: {} B, chunks: {}",
        stored_doc.snapshot.len(),
        stored_doc.chunks.len()
    );
    let _ = writeln!(
        err,
        "fields JSON: {fields_json} B -> ratio {:.2}x",
        doc as f64 / fields_json as f64
    );
    let _ = writeln!(
        err,
        "full view JSON: {view_json} B -> ratio {:.2}x",
        doc as f64 / view_json as f64
    );

    // Breakdown: which fields weigh what in the saved document, as the growth
    // over a document with no fields at all.
    let empty = doc_size(&Map::new());
    let _ = writeln!(err, "  empty document (meta + layout only): {empty} B");
    for key in ["crew", "seizures", "findings", "officers"] {
        let only: Map<String, Json> = fields
            .iter()
            .filter(|(k, _)| k.as_str() == key)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let json_len = serde_json::to_vec(&only[key]).map(|v| v.len()).unwrap_or(0);
        let _ = writeln!(
            err,
            "  + {key}: +{} B in the document (its JSON value: {json_len} B)",
            doc_size(&only) - empty
        );
    }
    let scalars: Map<String, Json> = fields
        .iter()
        .filter(|(_, v)| {
            let long_text = v.as_str().is_some_and(|s| s.len() > 100);
            !(v.is_array() || long_text)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let scalar_json = serde_json::to_vec(&scalars).map(|v| v.len()).unwrap_or(0);
    let _ = writeln!(
        err,
        "  + top-level scalars and position: +{} B (their JSON: {scalar_json} B)",
        doc_size(&scalars) - empty
    );

    // History grows the document: the size after a day of small edits.
    let patches = arrests_patches();
    for i in 0..20 {
        fx.records
            .patch(Author::Instance, &id, &patches[i % 2])
            .expect("patch");
    }
    let after = fx.records.automerge_bytes(&id).expect("save").len();
    let _ = writeln!(
        err,
        "after 20 single-field patches: {after} B -> ratio {:.2}x of the fields JSON",
        after as f64 / fields_json as f64
    );
    let _ = writeln!(err);
}

/// Write 4 KiB and fdatasync, in place and appending: the floor under any
/// durable write. sled's flush appends to its log, so the file's size changes
/// and fdatasync must write the inode too: the append figure is the relevant one.
fn fsync_floor(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let block = [0xA5u8; 4096];
    let mut group = c.benchmark_group("fsync_floor");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));

    let file = std::fs::File::create(dir.path().join("overwrite")).expect("create a file");
    file.write_all_at(&block, 0).expect("write");
    file.sync_all().expect("sync");
    group.bench_function("overwrite_4k", |b| {
        b.iter(|| {
            file.write_all_at(&block, 0).expect("write");
            file.sync_data().expect("fdatasync");
        })
    });

    let mut file = std::fs::File::create(dir.path().join("append")).expect("create a file");
    group.bench_function("append_4k", |b| {
        b.iter(|| {
            file.write_all(&block).expect("write");
            file.sync_data().expect("fdatasync");
        })
    });
    group.finish();
}

/// The record service over the in-memory store: the same work minus sled and
/// the fsync, which splits a write's cost into CPU and storage.
fn memory_records() -> Records<MemoryStore> {
    Records::open(MemoryStore::new(), FormRegistry::builtin(), STATION)
        .expect("open the record service")
}

fn create(c: &mut Criterion) {
    let fx = open_fixture();
    let memory = memory_records();
    let fields = typical_report(1);
    let mut group = c.benchmark_group("create");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("boarding_report", |b| {
        b.iter(|| {
            fx.records
                .create(Author::Instance, FORM, black_box(&fields))
                .expect("create")
        })
    });
    group.bench_function("boarding_report_memory_store", |b| {
        b.iter(|| {
            memory
                .create(Author::Instance, FORM, black_box(&fields))
                .expect("create")
        })
    });
    group.finish();
}

/// Patches that always change the record: `arrests` starts at 1 and each
/// round over the records flips it between 2 and 3.
fn arrests_patches() -> [Patch; 2] {
    [2, 3].map(|n| Patch {
        fields: json!({ "arrests": n }).as_object().cloned(),
        status: None,
    })
}

/// Patch `arrests` round-robin over `ids`, so each record gets a few edits as in
/// real use. Compaction (every MAX_CHUNKS edits or so) is included in the average.
/// `done` counts patches across calls: criterion calls the routine once per
/// sample, and restarting the alternation would make some patches no-ops.
fn bench_patch_pool<S: tideline_sync::DocStore>(
    b: &mut criterion::Bencher<'_>,
    records: &Records<S>,
    ids: &[RecordId],
    done: &Cell<usize>,
) {
    let patches = arrests_patches();
    b.iter(|| {
        let i = done.get();
        done.set(i + 1);
        let id = &ids[i % ids.len()];
        records
            .patch(Author::Instance, id, &patches[(i / ids.len()) % 2])
            .expect("patch")
    })
}

const PATCH_POOL: usize = 1_000;

/// `PATCH_POOL` fresh records in `records`.
fn create_pool<S: tideline_sync::DocStore>(records: &Records<S>) -> Vec<RecordId> {
    (0..PATCH_POOL)
        .map(|n| {
            records
                .create(Author::Instance, FORM, &typical_report(n))
                .expect("create")
                .id
        })
        .collect()
}

fn patch_one_field(c: &mut Criterion) {
    let fx = open_fixture();
    let memory = memory_records();
    // Built on first use, so that a filtered run does not pay for them.
    let sled_ids: OnceCell<Vec<RecordId>> = OnceCell::new();
    let memory_ids: OnceCell<Vec<RecordId>> = OnceCell::new();
    let single: OnceCell<[RecordId; 1]> = OnceCell::new();
    let counters = [Cell::new(0), Cell::new(0), Cell::new(0)];

    let mut group = c.benchmark_group("patch_one_field");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("fresh_records", |b| {
        let ids = sled_ids.get_or_init(|| create_pool(&fx.records));
        bench_patch_pool(b, &fx.records, ids, &counters[0])
    });
    group.bench_function("fresh_records_memory_store", |b| {
        let ids = memory_ids.get_or_init(|| create_pool(&memory));
        bench_patch_pool(b, &memory, ids, &counters[1])
    });
    // One record edited thousands of times: how the cost grows with history.
    group.bench_function("same_record", |b| {
        let ids = single.get_or_init(|| {
            [fx.records
                .create(Author::Instance, FORM, &typical_report(0))
                .expect("create")
                .id]
        });
        bench_patch_pool(b, &fx.records, ids, &counters[2])
    });
    group.finish();
}

/// Patch latency and load cost as a record's history grows, printed once.
/// Every patch loads the whole document from its stored bytes, so this shows
/// whether long-lived records get slower to edit.
fn report_history() {
    let fx = open_fixture();
    let id = fx
        .records
        .create(Author::Instance, FORM, &typical_report(1))
        .expect("create")
        .id;
    let patches = arrests_patches();
    let mut edits = 0usize;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "== patch cost vs history of one record (medians of 15) =="
    );
    for target in [0usize, 10, 100, 1_000, 3_000] {
        while edits < target {
            fx.records
                .patch(Author::Instance, &id, &patches[edits % 2])
                .expect("patch");
            edits += 1;
        }
        let mut patch_times = Vec::new();
        for _ in 0..15 {
            let start = std::time::Instant::now();
            fx.records
                .patch(Author::Instance, &id, &patches[edits % 2])
                .expect("patch");
            patch_times.push(start.elapsed());
            edits += 1;
        }
        let bytes = fx.records.automerge_bytes(&id).expect("save");
        let time_load = |f: &dyn Fn()| {
            let mut t: Vec<Duration> = (0..15)
                .map(|_| {
                    let start = std::time::Instant::now();
                    f();
                    start.elapsed()
                })
                .collect();
            t.sort();
            t[t.len() / 2]
        };
        let load = time_load(&|| {
            black_box(automerge::AutoCommit::load(&bytes).expect("load"));
        });
        let load_unverified = time_load(&|| {
            black_box(automerge::AutoCommit::load_unverified_heads(&bytes).expect("load"));
        });
        patch_times.sort();
        let _ = writeln!(
            err,
            "after {:>5} edits: patch {:>8.3} ms, document {:>6} B, AutoCommit::load {:>8.3} ms, \
             load_unverified_heads {:>8.3} ms",
            edits - 15,
            patch_times[7].as_secs_f64() * 1e3,
            bytes.len(),
            load.as_secs_f64() * 1e3,
            load_unverified.as_secs_f64() * 1e3,
        );
    }
    let _ = writeln!(err);
}

/// A store holding 10,000 typical reports, built once and only if a bench
/// that needs it is selected (an fsync per record makes this the slow part).
fn large_store() -> (Fixture, Vec<RecordId>) {
    let fx = open_fixture();
    let start = std::time::Instant::now();
    let ids: Vec<RecordId> = (0..LARGE_STORE)
        .map(|n| {
            fx.records
                .create(Author::Instance, FORM, &typical_report(n))
                .expect("create")
                .id
        })
        .collect();
    eprintln!(
        "setup: created {LARGE_STORE} records in {:.1} s ({:.2} ms each)",
        start.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64() * 1000.0 / LARGE_STORE as f64
    );
    (fx, ids)
}

fn reads(c: &mut Criterion) {
    let store: OnceCell<(Fixture, Vec<RecordId>)> = OnceCell::new();

    let mut group = c.benchmark_group("get_view");
    group.bench_function("one_of_10000", |b| {
        let (fx, ids) = store.get_or_init(large_store);
        // Spread reads over the store so the page cache is not always warm for
        // the same leaf.
        let mut n = 0usize;
        b.iter_batched(
            || {
                n = (n + 7919) % ids.len();
                ids[n]
            },
            |id| fx.records.get(&id).expect("get"),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("list_10000");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("limit_10000", |b| {
        let (fx, _) = store.get_or_init(large_store);
        b.iter(|| {
            let page = fx
                .records
                .list(&Filter::default(), 10_000, 0)
                .expect("list");
            assert_eq!(page.records.len(), LARGE_STORE);
            page
        })
    });
    // What GET /api/v1/records?limit=10000 adds on top: the handler writes the
    // cached views out verbatim (server/src/routes/records.rs, `ListBody`).
    // Building the body with `json!` instead parses every view again: that cost
    // 356 ms and ~250 MB of RSS for this page before the handler was fixed.
    group.bench_function("limit_10000_as_http_body", |b| {
        let (fx, _) = store.get_or_init(large_store);
        b.iter(|| {
            let page = fx
                .records
                .list(&Filter::default(), 10_000, 0)
                .expect("list");
            serde_json::to_vec(&ListBody {
                records: &page.records,
                total: page.total,
                limit: 10_000,
                offset: 0,
            })
            .expect("serialise")
        })
    });
    group.bench_function("default_page_50", |b| {
        let (fx, _) = store.get_or_init(large_store);
        b.iter(|| fx.records.list(&Filter::default(), 50, 0).expect("list"))
    });
    group.finish();
}

/// What one record costs each time it crosses a link, split into the Automerge
/// steps of a first sync: sent as changes (protocol v4), the sender loads the
/// stored document and extracts the changes the peer lacks (all of them), the
/// receiver decodes and applies them to an empty document; sent whole (v5),
/// both check the document's bytes and the receiver loads it. Either way the
/// receiver builds the record's view. No storage: this is the CPU floor a
/// first sync cannot go under, per record and per hop.
fn sync_hop(c: &mut Criterion) {
    let forms = FormRegistry::builtin();
    let form = forms.latest(FORM).expect("built-in form");
    let actor = automerge::ActorId::from([1u8; 16]);
    let docs: Vec<(Vec<u8>, Vec<Vec<u8>>)> = (0..64)
        .map(|i| {
            let meta = RecordMeta::new(RecordId::new(), form, STATION, "bench");
            let mut doc = RecordDoc::create(actor.clone(), &meta, form, &typical_report(i), 0)
                .expect("create a document");
            let changes = doc
                .changes_since(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect();
            (doc.save(), changes)
        })
        .collect();
    let next = Cell::new(0usize);
    let pick = || {
        next.set((next.get() + 1) % docs.len());
        &docs[next.get()]
    };
    let mut group = c.benchmark_group("sync_hop");
    group.bench_function("sender_load_and_changes", |b| {
        b.iter(|| {
            let (saved, _) = pick();
            let mut doc = RecordDoc::load(saved, &[], actor.clone()).expect("load");
            black_box(doc.changes_since(&[]))
        })
    });
    group.bench_function("receiver_apply_to_empty", |b| {
        b.iter(|| {
            let (_, changes) = pick();
            let mut doc = RecordDoc::empty(actor.clone());
            let decoded = changes
                .iter()
                .map(|c| automerge::Change::from_bytes(c.clone()).expect("a change"))
                .collect();
            doc.apply_changes(decoded).expect("apply");
            black_box(doc.save())
        })
    });
    // A first transfer since protocol v5: the sender sends its stored bytes
    // and checks them (`plain_document`), the receiver checks them again and
    // loads the document, which verifies every hash.
    group.bench_function("whole_document_check_and_load", |b| {
        b.iter(|| {
            let (saved, _) = pick();
            let read = tideline_sync::integrity::plain_document(saved).expect("plain");
            black_box(read);
            black_box(RecordDoc::load(saved, &[], actor.clone()).expect("load"))
        })
    });
    group.bench_function("receiver_build_view", |b| {
        let mut loaded: Vec<RecordDoc> = docs
            .iter()
            .map(|(saved, _)| RecordDoc::load(saved, &[], actor.clone()).expect("load"))
            .collect();
        b.iter(|| {
            let i = (next.get() + 1) % loaded.len();
            next.set(i);
            let view =
                tideline_sync::records::build_view(&mut loaded[i], Some(form)).expect("a view");
            black_box(serde_json::to_vec(&view).expect("JSON"))
        })
    });
    group.finish();
}

fn figures(_: &mut Criterion) {
    report_sizes();
    // The history walk makes ~3,000 durable writes; skip it when iterating on
    // one bench.
    if std::env::var_os("TIDELINE_BENCH_QUICK").is_none() {
        report_history();
    }
}

criterion_group!(
    benches,
    figures,
    fsync_floor,
    create,
    patch_one_field,
    reads,
    sync_hop
);
criterion_main!(benches);
