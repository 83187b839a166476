//! XLSForm import on workbooks written here: nesting, languages, settings, and
//! refusals that name the cell, including hostile archives. (tests/xlsform compares
//! the importer with pyxform on a wider set of fixtures.)

use std::io::Write;

use serde_json::json;
use tideline_schemas::xlsform::{import, ImportError, MAX_UNPACKED_BYTES};
use tideline_schemas::{FieldType, ViolationKind};

/// A workbook from rows of text; the first row of each sheet is its header.
fn workbook(sheets: &[(&str, &[&[&str]])]) -> Vec<u8> {
    let sheets: Vec<(&str, Vec<Vec<&str>>)> = sheets
        .iter()
        .map(|(name, rows)| (*name, rows.iter().map(|r| r.to_vec()).collect()))
        .collect();
    tideline_schemas::xlsform::workbook(&sheets).expect("workbook")
}

/// A list of flags in English and French.
const FLAG_CHOICES: &[&[&str]] = &[
    &[
        "list_name",
        "name",
        "label::English (en)",
        "label::French (fr)",
    ],
    &["flag", "lca", "Saint Lucia", "Sainte-Lucie"],
];

const SETTINGS: &[&[&str]] = &[
    &["form_id", "form_title", "version"],
    &["patrol_check", "Patrol check", "2026112801"],
];

fn survey(rows: &[&[&str]]) -> Vec<u8> {
    workbook(&[
        ("survey", rows),
        (
            "choices",
            &[
                &["list_name", "name", "label"],
                &["yes_no", "yes", "Yes"],
                &["yes_no", "no", "No"],
            ],
        ),
        ("settings", SETTINGS),
    ])
}

fn refusal(bytes: &[u8]) -> String {
    import(bytes, 1)
        .expect_err("the workbook must be refused")
        .to_string()
}

#[test]
fn groups_and_repeats_nest_and_logic_is_kept() {
    let bytes = survey(&[
        &[
            "type",
            "name",
            "label",
            "required",
            "relevant",
            "constraint",
            "constraint_message",
        ],
        &[
            "integer",
            "crew_count",
            "Crew count",
            "yes",
            "",
            ". >= 1",
            "At least one",
        ],
        &[
            "select_one yes_no",
            "contraband",
            "Contraband?",
            "TRUE",
            "",
            "",
            "",
        ],
        &["begin_group", "vessel", "Vessel", "", "", "", ""],
        &["text", "vessel_name", "Name", "true", "", "", ""],
        &["begin_repeat", "crew", "Crew", "", "", "", ""],
        &["text", "crew_name", "Name", "", "", "", ""],
        &["integer", "age", "Age", "", "", ". >= 0", ""],
        &["text", "guardian", "Guardian", "", "${age} < 18", "", ""],
        &["end_repeat", "", "", "", "", "", ""],
        &["end_group", "", "", "", "", "", ""],
        &[
            "note",
            "mismatch",
            "Crew differs",
            "",
            "count(${crew}) != ${crew_count}",
            "",
            "",
        ],
    ]);
    let form = import(&bytes, 3).expect("imports");
    assert_eq!((form.id.as_str(), form.version), ("patrol-check", 3));
    assert_eq!(form.source_version.as_deref(), Some("2026112801"));
    let vessel = form.field("vessel").expect("group");
    assert_eq!(vessel.field_type, FieldType::Group);
    let crew = vessel.child("crew").expect("repeat inside the group");
    assert_eq!(crew.field_type, FieldType::Repeat);
    assert_eq!(
        crew.child("guardian").and_then(|g| g.relevant.as_deref()),
        Some("${age} < 18")
    );
    let count = form.field("crew_count").expect("field");
    assert!(count.required);
    let c = count.constraint.as_ref().expect("constraint");
    assert_eq!(c.expression.as_deref(), Some(". >= 1"));
    assert_eq!(c.message.as_deref(), Some("At least one"));
    assert_eq!(form.field("contraband").map(|f| f.choices.len()), Some(2));

    // The imported logic validates: a minor without a guardian is fine, the
    // constraint message is the form's, and the path names the item.
    let record = json!({"crew_count": 0, "contraband": "no", "vessel": {"vessel_name": "Marlin",
        "crew": [{"crew_name": "A", "age": 30}, {"crew_name": "B", "age": -1}]}});
    let found: Vec<_> = tideline_schemas::validate(&form, record.as_object().expect("object"))
        .into_iter()
        .map(|v| (v.path, v.kind, v.message))
        .collect();
    assert_eq!(
        found,
        [
            (
                "crew_count".to_string(),
                ViolationKind::Constraint,
                "At least one".to_string()
            ),
            (
                "vessel.crew[1].age".to_string(),
                ViolationKind::Constraint,
                "Age is not an accepted answer.".to_string()
            ),
        ]
    );
}

#[test]
fn labels_in_several_languages_keep_the_default() {
    let bytes = workbook(&[
        (
            "survey",
            &[
                &[
                    "type",
                    "name",
                    "label::English (en)",
                    "label::French (fr)",
                    "hint::French (fr)",
                ],
                &["select_one flag", "flag", "Flag", "Pavillon", "Le pavillon"],
            ],
        ),
        ("choices", FLAG_CHOICES),
        (
            "settings",
            &[
                &["form_id", "form_title", "version", "default_language"],
                &["flags", "Flags", "1", "English (en)"],
            ],
        ),
    ]);
    let form = import(&bytes, 1).expect("imports");
    assert_eq!(form.default_language.as_deref(), Some("English (en)"));
    let flag = form.field("flag").expect("field");
    assert_eq!(flag.label, "Flag");
    assert_eq!(flag.labels["French (fr)"], "Pavillon");
    assert_eq!(flag.hints["French (fr)"], "Le pavillon");
    assert_eq!(flag.choices[0].label, "Saint Lucia");
    assert_eq!(flag.choices[0].labels["French (fr)"], "Sainte-Lucie");
}

#[test]
fn refusals_name_the_sheet_row_and_column() {
    let header: &[&str] = &[
        "type",
        "name",
        "label",
        "relevant",
        "calculation",
        "default",
    ];
    let cases: Vec<(Vec<&[&str]>, &str)> = vec![
        (
            vec![header, &["text", "a", "A", "", "", ""], &["calculate", "b", "", "", "1 + 1", ""]],
            "survey sheet, row 3, column A (type): calculate is not supported yet; remove the row or make it a note",
        ),
        (
            vec![header, &["text", "a", "A", "${missing} = 1", "", ""]],
            "survey sheet, row 2, column D (relevant): ${missing} is not a field of this form",
        ),
        (
            vec![header, &["text", "a", "A", "pulldata('x') = 1", "", ""]],
            "survey sheet, row 2, column D (relevant): the function pulldata() is not supported",
        ),
        (
            vec![header, &["integer", "a", "A", "", "", "today()"]],
            "survey sheet, row 2, column F (default): only a literal can be a default",
        ),
        (
            vec![header, &["integer", "a", "A", "", "", "seven"]],
            "survey sheet, row 2, column F (default): \"seven\" is not a whole number",
        ),
        (
            vec![header, &["text", "Bad-Name", "A", "", "", ""]],
            "survey sheet, row 2, column B (name): field name \"Bad-Name\"",
        ),
        (
            vec![header, &["text", "a", "A", "", "", ""], &["text", "a", "Again", "", "", ""]],
            "survey sheet, row 3, column B (name): field \"a\" is defined more than once",
        ),
        (
            vec![header, &["begin_group", "g", "G", "", "", ""], &["text", "a", "A", "", "", ""]],
            "survey sheet, row 2, column A (type): this group is never closed",
        ),
        (
            vec![header, &["select_one colours", "a", "A", "", "", ""]],
            "survey sheet, row 2, column A (type): there is no list \"colours\" on the choices sheet",
        ),
        (
            vec![header, &["text", "a", "A", "", "x", ""]],
            "survey sheet, row 2, column E (calculation): calculate is not supported yet",
        ),
    ];
    for (rows, wanted) in cases {
        let got = refusal(&survey(&rows));
        assert!(got.starts_with(wanted), "wanted {wanted:?}\n   got {got:?}");
    }
    let no_settings = workbook(&[("survey", &[&["type", "name", "label"], &["text", "a", "A"]])]);
    assert!(refusal(&no_settings).contains("no settings sheet; add one with form_id"));
}

#[test]
fn what_is_not_a_workbook_is_refused_before_it_is_unpacked() {
    assert!(matches!(
        import(b"not a zip", 1),
        Err(ImportError::NotXlsx(_))
    ));
    assert!(matches!(import(&[], 1), Err(ImportError::NotXlsx(_))));
    // A small archive that unpacks to more than the limit: refused from its
    // declared sizes, before anything is inflated.
    let mut zipped = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut zipped);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        writer
            .start_file("xl/worksheets/sheet1.xml", options)
            .expect("entry");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..=(MAX_UNPACKED_BYTES >> 20) {
            writer.write_all(&zeros).expect("write");
        }
        writer.finish().expect("finish");
    }
    let bytes = zipped.into_inner();
    assert!(
        bytes.len() < 1 << 20,
        "the bomb is small: {} bytes",
        bytes.len()
    );
    assert!(matches!(
        import(&bytes, 1),
        Err(ImportError::TooLarge { .. })
    ));
}

#[test]
fn every_builtin_form_comes_back_the_same_from_its_spreadsheet() {
    for form in tideline_schemas::builtin_forms() {
        let bytes = tideline_schemas::xlsform::export(&form).expect("exports");
        let mut back = import(&bytes, form.version)
            .unwrap_or_else(|e| panic!("{} v{}: {e}", form.id, form.version));
        // The spreadsheet's version is its own: it comes back as the source version.
        assert_eq!(back.source_version, Some(form.version.to_string()));
        back.source_version = form.source_version.clone();
        assert_eq!(
            serde_json::to_value(&back).expect("json"),
            serde_json::to_value(&form).expect("json"),
            "{} v{}",
            form.id,
            form.version
        );
        assert_eq!(back, form);
    }
}

#[test]
fn an_imported_form_comes_back_the_same_from_its_export() {
    let bytes = workbook(&[
        (
            "survey",
            &[
                &[
                    "type",
                    "name",
                    "label::English (en)",
                    "label::French (fr)",
                    "required",
                    "relevant",
                    "default",
                ],
                &[
                    "select_one flag",
                    "flag",
                    "Flag",
                    "Pavillon",
                    "yes",
                    "",
                    "lca",
                ],
                &[
                    "begin_repeat",
                    "crew",
                    "Crew",
                    "Équipage",
                    "",
                    "${flag} = 'lca'",
                    "",
                ],
                &["integer", "age", "Age", "Âge", "", "", "30"],
                &["end_repeat", "", "", "", "", "", ""],
            ],
        ),
        ("choices", FLAG_CHOICES),
        (
            "settings",
            &[
                &["form_id", "form_title", "version", "default_language"],
                &["crew-list", "Crew list", "2026120201", "English (en)"],
            ],
        ),
    ]);
    let form = import(&bytes, 4).expect("imports");
    let again = tideline_schemas::xlsform::export(&form).expect("exports");
    assert_eq!(import(&again, 4).expect("imports again"), form);
}
