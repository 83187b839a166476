//! The benchmarks' workload is only as good as its variety: reports that
//! compress into each other make sync bytes look three times better than
//! they are. This holds the generator to the reference workload of 10,000
//! real-looking boarding reports, which take 227 bytes a record as zstd-3
//! JSON lines (docs/PERFORMANCE.md).

use serde_json::json;
use tideline_schemas::samples::varied_report;

/// Bytes a record of the reference workload takes as zstd-3 JSON lines.
const REFERENCE_BYTES_PER_RECORD: f64 = 227.0;

/// zstd-3 JSON lines of `n` varied reports, shaped as the reference file
/// (`{"meta":{"id"},"form","fields"}`), in bytes per record.
fn zstd_bytes_per_record(n: usize) -> f64 {
    let mut lines = Vec::new();
    for i in 0..n {
        let line = json!({
            "meta": {"id": uuid::Uuid::new_v4().to_string()},
            "form": "boarding-report",
            "fields": varied_report(i),
        });
        serde_json::to_writer(&mut lines, &line).unwrap();
        lines.push(b'\n');
    }
    zstd::bulk::compress(&lines, 3).unwrap().len() as f64 / n as f64
}

#[test]
fn varied_reports_compress_no_better_than_the_reference_workload() {
    let per_record = zstd_bytes_per_record(10_000);
    let ratio = per_record / REFERENCE_BYTES_PER_RECORD;
    eprintln!("varied reports: {per_record:.1} B a record as zstd-3 JSON lines ({ratio:.2}× the reference)");
    assert!(
        (0.8..=1.2).contains(&ratio),
        "{per_record:.1} B a record as zstd-3 JSON lines, {ratio:.2}× the reference's 227 B"
    );
}

#[test]
fn the_old_counter_sample_would_fail_the_same_check() {
    // The check above can fail: the sample that differs only by a counter
    // compresses about three times better than real reports.
    let mut lines = Vec::new();
    for i in 0..10_000 {
        let line = json!({
            "meta": {"id": uuid::Uuid::new_v4().to_string()},
            "form": "boarding-report",
            "fields": tideline_schemas::samples::boarding_report(i),
        });
        serde_json::to_writer(&mut lines, &line).unwrap();
        lines.push(b'\n');
    }
    let per_record = zstd::bulk::compress(&lines, 3).unwrap().len() as f64 / 10_000.0;
    assert!(
        per_record < 0.8 * REFERENCE_BYTES_PER_RECORD,
        "{per_record:.1}"
    );
}
