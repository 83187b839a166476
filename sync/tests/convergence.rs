//! Convergence of a sync tree: whatever records are created and edited on
//! whichever instances, and however individual syncs are cut short, once every
//! instance has synced with its parent until nothing moves, all instances hold
//! the same records with the same Automerge heads and the same JSON views
//! (fields, conflicts, status, validation, updated_at).
//!
//! This is the promise docs/DESIGN.md §1 and §6 make to the people using Tideline:
//! boats, stations and headquarters each work offline, links drop at any point
//! of an exchange, and still nobody ends up looking at a different report, or
//! at a conflict someone else cannot see. Example-based tests in `engine.rs`
//! cover each protocol rule alone; only random interleavings of edits, partial
//! syncs and a random topology find the orderings nobody thought to write down.
//!
//! Edits also land in the middle of exchanges (after a request is prepared,
//! before or after the upstream handled it), on either side, as they do when
//! people keep working while a server syncs.
//!
//! Instances run in process over `MemoryStore`, and every message goes through
//! the wire encoding, as in `engine.rs`. Set `PROPTEST_CASES` for longer runs.

mod support;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use tideline_schemas::{FormRegistry, RecordId};
use tideline_sync::engine::{Downstream, Upstream};
use tideline_sync::protocol::{self, Limits};
use tideline_sync::{Author, DocStore, Filter, MemoryStore, Patch, Records, Status};

/// One station for every instance, so every record is in scope everywhere and
/// the property is about merging, not about who may see what.
const STATION: &str = "BB-01";
const MAX_INSTANCES: usize = 6;
const MAX_OPS: usize = 40;
/// A sync that needs more exchanges than this is not converging on its own.
const MAX_EXCHANGES: usize = 200;
/// One bottom-up and one top-down pass should carry everything everywhere, and
/// a second round confirm it; a protocol that keeps moving records after ten
/// rounds is ping-ponging, which is itself a failure.
const MAX_ROUNDS: usize = 10;

const VESSELS: &[&str] = &["Sea Breeze", "Marlin II", "Esperanza", "UNNAMED", "Ti Ban"];
const NAMES: &[&str] = &[
    "A. Joseph",
    "M. Charles",
    "R. Baptiste",
    "K. Singh",
    "Élodie Noël",
];
const WORDS: &[&str] = &[
    "Hold searched. ",
    "nets ",
    "fuel drums",
    "é",
    " crew calm",
    "\n",
];
const FINDINGS: &[&str] = &["", "Catch inspected.", "Two coolers of conch; no licence."];
const OUTCOMES: &[&str] = &["released", "warning_issued", "escorted_to_port", "detained"];
const REASONS: &[&str] = &["routine_inspection", "fisheries", "customs", "other"];

struct Instance {
    records: Records<MemoryStore>,
    upstream: Upstream,
}

/// Parsed once: in a debug build, parsing the built-in forms for every
/// instance of every case is a noticeable share of the run.
fn forms() -> FormRegistry {
    static FORMS: OnceLock<FormRegistry> = OnceLock::new();
    FORMS.get_or_init(FormRegistry::builtin).clone()
}

impl Instance {
    fn new() -> Instance {
        Instance {
            records: Records::open(MemoryStore::new(), forms(), STATION).unwrap(),
            upstream: Upstream::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Report {
    vessel: &'static str,
    crew: Vec<&'static str>,
    extra_persons: u8,
    findings: &'static str,
    reason: usize,
    /// None leaves the required outcome out: an incomplete draft, which must
    /// carry the same validation problems everywhere.
    outcome: Option<usize>,
    arrests: Option<u8>,
}

#[derive(Debug, Clone)]
enum Edit {
    Outcome(Option<usize>),
    VesselName(&'static str),
    Arrests(Option<u8>),
    PersonsOnBoard(u8),
    /// Replace `delete` characters at `at` (modulo the length) with `insert`:
    /// the findings are Automerge Text, so concurrent splices interleave.
    Findings {
        at: usize,
        delete: usize,
        insert: &'static str,
    },
    AddCrew {
        at: usize,
        name: &'static str,
    },
    RemoveCrew(usize),
    Status(Status),
    /// Resolve the n-th conflict the instance shows (if any) with one of its values.
    Resolve {
        conflict: usize,
        value: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The upstream never sees the request.
    Request,
    /// The upstream applies the request, but its answer never arrives.
    Response,
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        at: usize,
        report: Report,
    },
    Edit {
        at: usize,
        record: usize,
        edit: Edit,
    },
    /// `child` picks a non-root instance. `page_bytes` small forces one record
    /// per page, so a cut can fall between pages of one sync; `cut` happens in
    /// exchange number `cut_after` if the sync lasts that long.
    Sync {
        child: usize,
        page_bytes: Option<u64>,
        cut: Option<Cut>,
        cut_after: usize,
        /// Edits made while this sync runs, between a request being prepared
        /// and its response being absorbed, as a server's users do.
        during: Vec<Concurrent>,
    },
}

/// An edit made in the middle of an exchange.
#[derive(Debug, Clone)]
struct Concurrent {
    /// In exchange number `exchange` of the sync, if it lasts that long.
    exchange: usize,
    /// On the upstream (else the downstream).
    upstream: bool,
    /// After the upstream handled the request (else before).
    after_handle: bool,
    record: usize,
    edit: Edit,
}

#[derive(Debug, Clone)]
struct Scenario {
    instances: usize,
    /// `parents[i - 1] % i` is the parent of instance i: always an earlier
    /// instance, so instance 0 is the root and the graph is a tree.
    parents: Vec<usize>,
    ops: Vec<Op>,
}

impl Scenario {
    fn parent(&self, i: usize) -> usize {
        self.parents[i - 1] % i
    }
}

fn report() -> impl Strategy<Value = Report> {
    (
        prop::sample::select(VESSELS),
        prop::collection::vec(prop::sample::select(NAMES), 0..3),
        0u8..3,
        prop::sample::select(FINDINGS),
        0..REASONS.len(),
        prop::option::weighted(0.8, 0..OUTCOMES.len()),
        prop::option::of(0u8..3),
    )
        .prop_map(
            |(vessel, crew, extra_persons, findings, reason, outcome, arrests)| Report {
                vessel,
                crew,
                extra_persons,
                findings,
                reason,
                outcome,
                arrests,
            },
        )
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => prop::option::weighted(0.9, 0..OUTCOMES.len()).prop_map(Edit::Outcome),
        1 => prop::sample::select(VESSELS).prop_map(Edit::VesselName),
        1 => prop::option::of(0u8..4).prop_map(Edit::Arrests),
        1 => (0u8..6).prop_map(Edit::PersonsOnBoard),
        3 => (0usize..64, 0usize..4, prop::sample::select(WORDS))
            .prop_map(|(at, delete, insert)| Edit::Findings { at, delete, insert }),
        1 => (0usize..4, prop::sample::select(NAMES))
            .prop_map(|(at, name)| Edit::AddCrew { at, name }),
        1 => (0usize..4).prop_map(Edit::RemoveCrew),
        1 => prop::sample::select(Status::ALL.to_vec()).prop_map(Edit::Status),
        1 => (0usize..4, 0usize..4).prop_map(|(conflict, value)| Edit::Resolve { conflict, value }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..MAX_INSTANCES, report()).prop_map(|(at, report)| Op::Create { at, report }),
        4 => (0..MAX_INSTANCES, 0usize..8, edit())
            .prop_map(|(at, record, edit)| Op::Edit { at, record, edit }),
        3 => (
            0..MAX_INSTANCES - 1,
            prop::option::weighted(0.3, 1u64..2_000),
            prop_oneof![
                3 => Just(None),
                1 => Just(Some(Cut::Request)),
                2 => Just(Some(Cut::Response)),
            ],
            0usize..3,
            prop::collection::vec(concurrent(), 0..3),
        )
            .prop_map(|(child, page_bytes, cut, cut_after, during)| Op::Sync {
                child,
                page_bytes,
                cut,
                cut_after,
                during,
            }),
    ]
}

fn concurrent() -> impl Strategy<Value = Concurrent> {
    (0usize..3, any::<bool>(), any::<bool>(), 0usize..8, edit()).prop_map(
        |(exchange, upstream, after_handle, record, edit)| Concurrent {
            exchange,
            upstream,
            after_handle,
            record,
            edit,
        },
    )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        3..=MAX_INSTANCES,
        prop::collection::vec(0..MAX_INSTANCES, MAX_INSTANCES - 1),
        prop::collection::vec(op(), 1..=MAX_OPS),
    )
        .prop_map(|(instances, parents, ops)| Scenario {
            instances,
            parents,
            ops,
        })
}

fn fail(what: &str, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e}"))
}

fn report_fields(r: &Report) -> Map<String, Value> {
    let mut fields = json!({
        "boarding_time": "2026-11-20T14:05:00Z",
        "position": {"lat": 13.1, "lon": -59.6},
        "vessel_name": r.vessel,
        "persons_on_board": r.crew.len() + r.extra_persons as usize,
        "reason": REASONS[r.reason],
        "crew": r.crew.iter().map(|n| json!({"name": n, "role": "crew"})).collect::<Vec<_>>(),
        "contraband_found": false,
        "findings": r.findings,
    });
    if let Some(o) = r.outcome {
        fields["outcome"] = json!(OUTCOMES[o]);
    }
    if let Some(a) = r.arrests {
        fields["arrests"] = json!(a);
    }
    fields.as_object().cloned().unwrap()
}

fn views(inst: &Instance) -> Result<BTreeMap<String, Value>, TestCaseError> {
    let page = inst
        .records
        .list(&Filter::default(), 10_000, 0)
        .map_err(|e| fail("list", e))?;
    page.records
        .iter()
        .map(|raw| {
            let v: Value = serde_json::from_str(raw.get()).map_err(|e| fail("view", e))?;
            Ok((v["id"].as_str().unwrap_or_default().to_string(), v))
        })
        .collect()
}

/// Build the edit as the app would: read the current view, change one thing,
/// send the whole field back. A resolve is its own call, not a patch, so it is
/// made here and None returned, as for edits that do not apply.
fn edit_patch(inst: &Instance, id: &RecordId, view: &Value, edit: &Edit) -> Option<Patch> {
    let fields = &view["fields"];
    let set = |k: &str, v: Value| Patch {
        fields: Some(Map::from_iter([(k.to_string(), v)])),
        status: None,
    };
    Some(match edit {
        Edit::Outcome(o) => set("outcome", o.map_or(Value::Null, |o| json!(OUTCOMES[o]))),
        Edit::VesselName(n) => set("vessel_name", json!(n)),
        Edit::Arrests(a) => set("arrests", a.map_or(Value::Null, |a| json!(a))),
        Edit::PersonsOnBoard(p) => set("persons_on_board", json!(p)),
        Edit::Findings { at, delete, insert } => {
            let old: Vec<char> = fields["findings"].as_str().unwrap_or("").chars().collect();
            let at = at % (old.len() + 1);
            let end = (at + delete).min(old.len());
            let text: String = old[..at]
                .iter()
                .chain(insert.chars().collect::<Vec<_>>().iter())
                .chain(old[end..].iter())
                .collect();
            set("findings", json!(text))
        }
        Edit::AddCrew { at, name } => {
            let mut crew = fields["crew"].as_array().cloned().unwrap_or_default();
            let at = at % (crew.len() + 1);
            crew.insert(at, json!({"name": name, "role": "crew"}));
            set("crew", Value::Array(crew))
        }
        Edit::RemoveCrew(at) => {
            let mut crew = fields["crew"].as_array().cloned().unwrap_or_default();
            if crew.is_empty() {
                return None;
            }
            crew.remove(at % crew.len());
            set("crew", Value::Array(crew))
        }
        Edit::Status(s) => Patch {
            fields: None,
            status: Some(*s),
        },
        Edit::Resolve { conflict, value } => {
            let conflicts = view["conflicts"].as_object()?;
            if conflicts.is_empty() {
                return None;
            }
            let (path, values) = conflicts.iter().nth(conflict % conflicts.len())?;
            let values = values.as_array()?;
            let chosen = &values.get(value % values.len().max(1))?["value"];
            // Refusals (a value that no longer validates) are allowed outcomes.
            let _ = inst.records.resolve(Author::Instance, id, path, chosen);
            return None;
        }
    })
}

/// Edit the `record`-th record (in id order) of `inst`, if it has any.
fn apply_edit(inst: &Instance, record: usize, edit: &Edit) -> Result<(), TestCaseError> {
    let all = views(inst)?;
    if all.is_empty() {
        return Ok(());
    }
    let (id, view) = all.iter().nth(record % all.len()).unwrap();
    let id: RecordId = id.parse().map_err(|e| fail("id", e))?;
    if let Some(patch) = edit_patch(inst, &id, view, edit) {
        // Validation and workflow refusals are allowed outcomes: they write
        // nothing, which is what matters here.
        let _ = inst.records.patch(Author::Instance, &id, &patch);
    }
    Ok(())
}

/// Run one sync of `down` with `up`: to completion, or until `cut` strikes in
/// exchange `cut_after`, with the `during` edits made inside its exchanges.
/// A fresh `Downstream` each time, as the server does, so a cut also loses
/// whatever it held in memory.
fn sync(
    down: &Instance,
    up: &Instance,
    page_bytes: Option<u64>,
    cut: Option<(usize, Cut)>,
    during: &[Concurrent],
) -> Result<(), TestCaseError> {
    let edits_at = |n: usize, after_handle: bool| -> Result<(), TestCaseError> {
        for c in during
            .iter()
            .filter(|c| c.exchange == n && c.after_handle == after_handle)
        {
            apply_edit(if c.upstream { up } else { down }, c.record, &c.edit)?;
        }
        Ok(())
    };
    let signer = support::signer(&down.records);
    let mut ds = Downstream::new(&down.records, &signer);
    if let Some(bytes) = page_bytes {
        ds = ds.with_page_bytes(bytes);
    }
    let limits = Limits::default();
    for n in 0..MAX_EXCHANGES {
        let cut_here = cut.filter(|(at, _)| *at == n).map(|(_, c)| c);
        let (request, pending) = ds.prepare().map_err(|e| fail("prepare", e))?;
        let bytes = protocol::encode_request(&request).map_err(|e| fail("encode", e))?;
        if cut_here == Some(Cut::Request) {
            return Ok(());
        }
        let request = protocol::decode_request(&bytes, &limits).map_err(|e| fail("decode", e))?;
        edits_at(n, false)?;
        let response = up
            .upstream
            .handle(&up.records, request, &support::peer(&down.records))
            .map_err(|e| fail("handle", e))?;
        edits_at(n, true)?;
        let bytes = protocol::encode_response(&response).map_err(|e| fail("encode", e))?;
        if cut_here == Some(Cut::Response) {
            return Ok(());
        }
        let response = protocol::decode_response(&bytes, &limits).map_err(|e| fail("decode", e))?;
        let exchange = ds
            .absorb(pending, response)
            .map_err(|e| fail("absorb", e))?;
        if !exchange.more {
            return Ok(());
        }
    }
    Err(TestCaseError::fail(format!(
        "a sync did not finish in {MAX_EXCHANGES} exchanges"
    )))
}

fn last_seqs(nodes: &[Instance]) -> Result<Vec<u64>, TestCaseError> {
    nodes
        .iter()
        .map(|n| {
            n.records
                .store()
                .last_seq()
                .map_err(|e| fail("last_seq", e))
        })
        .collect()
}

/// Sync every child with its parent, bottom-up then top-down, until a whole
/// round writes no record anywhere. Returns the number of rounds.
fn settle(s: &Scenario, nodes: &[Instance]) -> Result<usize, TestCaseError> {
    for round in 1..=MAX_ROUNDS {
        let before = last_seqs(nodes)?;
        for i in (1..nodes.len()).rev() {
            sync(&nodes[i], &nodes[s.parent(i)], None, None, &[])?;
        }
        for i in 1..nodes.len() {
            sync(&nodes[i], &nodes[s.parent(i)], None, None, &[])?;
        }
        if last_seqs(nodes)? == before {
            return Ok(round);
        }
    }
    Err(TestCaseError::fail(format!(
        "records were still changing after {MAX_ROUNDS} rounds of full syncs"
    )))
}

fn sorted_heads(inst: &Instance, id: &RecordId) -> Result<Vec<String>, TestCaseError> {
    let bytes = inst
        .records
        .automerge_bytes(id)
        .map_err(|e| fail("automerge_bytes", e))?;
    let mut doc = automerge::AutoCommit::load(&bytes).map_err(|e| fail("load", e))?;
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    Ok(heads)
}

fn run(s: &Scenario) -> Result<(), TestCaseError> {
    let nodes: Vec<Instance> = (0..s.instances).map(|_| Instance::new()).collect();
    let forms = FormRegistry::builtin();
    let form = forms.latest("boarding-report").unwrap();
    for op in &s.ops {
        match op {
            Op::Create { at, report } => {
                let fields = report_fields(report);
                // The generator only builds reports a draft accepts; a refusal
                // would silently shrink the scenario, so it is a test bug.
                let blocking: Vec<_> = tideline_schemas::validate(form, &fields)
                    .into_iter()
                    .filter(|v| v.blocks_draft())
                    .collect();
                prop_assert!(
                    blocking.is_empty(),
                    "generated report is refused: {blocking:?}"
                );
                nodes[at % s.instances]
                    .records
                    .create(Author::Instance, "boarding-report", &fields)
                    .map_err(|e| fail("create", e))?;
            }
            Op::Edit { at, record, edit } => apply_edit(&nodes[at % s.instances], *record, edit)?,
            Op::Sync {
                child,
                page_bytes,
                cut,
                cut_after,
                during,
            } => {
                let child = 1 + child % (s.instances - 1);
                sync(
                    &nodes[child],
                    &nodes[s.parent(child)],
                    *page_bytes,
                    cut.map(|c| (*cut_after, c)),
                    during,
                )?;
            }
        }
    }

    settle(s, &nodes)?;

    let hq = views(&nodes[0])?;
    let mut hq_heads = BTreeMap::new();
    for id in hq.keys() {
        let rid: RecordId = id.parse().map_err(|e| fail("id", e))?;
        hq_heads.insert(id.clone(), sorted_heads(&nodes[0], &rid)?);
    }
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let mine = views(node)?;
        prop_assert_eq!(
            mine.keys().collect::<Vec<_>>(),
            hq.keys().collect::<Vec<_>>(),
            "instance {} (parent {}) holds a different set of records than HQ",
            i,
            s.parent(i)
        );
        for (id, view) in &mine {
            let rid: RecordId = id.parse().map_err(|e| fail("id", e))?;
            prop_assert_eq!(
                &sorted_heads(node, &rid)?,
                &hq_heads[id],
                "record {} has different heads on instance {} and HQ",
                id,
                i
            );
            prop_assert_eq!(
                view,
                &hq[id],
                "record {} has a different view on instance {} and HQ",
                id,
                i
            );
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    // `with_cases` would ignore PROPTEST_CASES; honour it explicitly so longer
    // runs need no code change.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_sync_tree_converges_despite_cut_exchanges(s in scenario()) {
        run(&s)?;
    }
}
