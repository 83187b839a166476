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

/// The built-in boarding report as a spreadsheet is an XLSForm ODK's own tools
/// accept, and it imports back as the same form.
#[test]
fn the_boarding_report_exports_as_an_xlsform_pyxform_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let out = dir.path().join("boarding-report.xlsx");
    let tideline = env!("CARGO_BIN_EXE_tideline");
    let run = |args: &[&std::ffi::OsStr]| {
        let o = Command::new(tideline)
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()
            .expect("run tideline");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // With no data directory yet, the built-in forms are there to export.
    let said = run(&[
        "form".as_ref(),
        "export".as_ref(),
        "boarding-report".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(said.contains("boarding-report version 2"), "{said}");
    let json = run(&["form".as_ref(), "import".as_ref(), out.as_os_str()]);
    let back = tideline_schemas::Form::parse(&json).expect("form JSON");
    let builtin = tideline_schemas::Form::parse(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/forms/boarding-report.v2.json"
    )))
    .expect("built-in form");
    // Importing the latest version's own workbook is that version again.
    assert_eq!(back.version, 2);
    assert_eq!(back, builtin);

    let ready = Command::new("python3")
        .args(["-c", "import pyxform"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        assert!(
            std::env::var_os("TIDELINE_REQUIRE_PYXFORM").is_none(),
            "pyxform is required here"
        );
        eprintln!("SKIPPED the pyxform half of the_boarding_report_exports_as_an_xlsform_pyxform_accepts: pyxform is not installed");
        return;
    }
    let converted = Command::new("python3")
        .args(["-c", "import sys; from pyxform.xls2xform import convert; r = convert(xlsform=sys.argv[1]); open(sys.argv[2], 'w').write(r.xform)"])
        .arg(&out)
        .arg(dir.path().join("boarding-report.xml"))
        .output()
        .expect("run pyxform");
    assert!(
        converted.status.success(),
        "pyxform refuses the export: {}",
        String::from_utf8_lossy(&converted.stderr)
    );
}

/// Every built-in form, and every supported fixture once imported, is an XForm
/// ODK Validate (JavaRosa, the engine inside Collect) accepts.
#[test]
fn every_form_is_an_xform_odk_validate_accepts() {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/xlsform");
    let jar = Command::new("python3")
        .args([
            "-c",
            "import os, pyxform; print(os.path.join(os.path.dirname(pyxform.__file__), 'validators/odk_validate/bin/ODK_Validate.jar'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let (Some(jar), true) = (jar, java) else {
        assert!(
            std::env::var_os("TIDELINE_REQUIRE_PYXFORM").is_none(),
            "pyxform (for ODK Validate) and Java are required here"
        );
        eprintln!(
            "SKIPPED every_form_is_an_xform_odk_validate_accepts: pyxform or Java is not installed"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let tideline = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_tideline"))
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()
            .expect("run tideline");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let fixtures = dir.path().join("fixtures");
    let made = Command::new("python3")
        .arg(harness.join("fixtures.py"))
        .arg(&fixtures)
        .output()
        .expect("run fixtures.py");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    for name in ["all_types", "groups_repeats", "logic", "languages"] {
        let file = fixtures.join(format!("{name}.xlsx"));
        tideline(&["form", "import", file.to_str().expect("path"), "--publish"]);
    }
    let listed = tideline(&["form", "list"]);
    let forms: Vec<(&str, &str)> = listed
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?, words.next()?.trim_start_matches('v')))
        })
        .collect();
    assert_eq!(forms.len(), 7, "{listed}");
    for (id, version) in forms {
        let xml = dir.path().join(format!("{id}-{version}.xml"));
        tideline(&[
            "form",
            "export",
            id,
            "--version",
            version,
            "--format",
            "xform",
            "--out",
            xml.to_str().expect("path"),
        ]);
        let checked = Command::new("java")
            .arg("-jar")
            .arg(&jar)
            .arg(&xml)
            .output()
            .expect("run ODK Validate");
        let said = String::from_utf8_lossy(&checked.stdout);
        assert!(
            checked.status.success() && said.contains("Xform is valid"),
            "ODK Validate refuses {id} v{version}:\n{said}{}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
