//! The XLSForm importer judged by pyxform, the converter ODK itself uses:
//! tests/xlsform writes fixtures with openpyxl, converts each with pyxform (and
//! checks the XForm with ODK Validate when Java is here) and with `tideline form
//! import`, and compares them field by field; every refused feature must be
//! refused at its sheet, row and column. `.ci/run` installs what it needs and sets
//! TIDELINE_REQUIRE_PYXFORM, so in CI a missing tool fails rather than skips.

use std::path::Path;
use std::process::Command;

#[test]
fn xlsforms_mean_here_what_pyxform_says_they_mean() {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/xlsform");
    let ready = Command::new("python3")
        .args(["-c", "import pyxform, openpyxl"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let install = format!(
            "pip install -r {}",
            harness.join("requirements.txt").display()
        );
        if std::env::var_os("TIDELINE_REQUIRE_PYXFORM").is_some() {
            panic!("python3 with pyxform and openpyxl is required here: {install}");
        }
        eprintln!("SKIPPED xlsforms_mean_here_what_pyxform_says_they_mean: python3 with pyxform and openpyxl is not installed ({install})");
        return;
    }
    let fixtures = tempfile::tempdir().expect("temp dir");
    let made = Command::new("python3")
        .arg(harness.join("fixtures.py"))
        .arg(fixtures.path())
        .output()
        .expect("run fixtures.py");
    assert!(
        made.status.success(),
        "fixtures.py: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut compare = Command::new("python3");
    compare
        .arg(harness.join("compare.py"))
        .args(["--tideline", env!("CARGO_BIN_EXE_tideline")]);
    if java {
        compare.arg("--validate");
    }
    let out = compare
        .arg(fixtures.path())
        .output()
        .expect("run compare.py");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the importer disagrees with pyxform:\n{report}"
    );
    assert!(report.contains(" 0 failed"), "{report}");
}
