//! Forms with expressions: what is refused when the form is loaded, and how groups,
//! times, acknowledgements, translations and defaults are read.

use serde_json::{json, Value};
use tideline_schemas::{validate, Form, FormError, ViolationKind};

fn form_with(fields: Value) -> Result<Form, FormError> {
    Form::parse(&json!({"id": "f", "version": 1, "title": "F", "fields": fields}).to_string())
}

fn refusal(fields: Value) -> String {
    form_with(fields)
        .expect_err("the form must be refused")
        .to_string()
}

#[test]
fn expressions_are_checked_when_the_form_is_loaded() {
    let text = |name: &str| json!({"name": name, "label": name, "type": "text"});
    let with = |mut field: Value, key: &str, expr: &str| {
        if key == "relevant" {
            field["relevant"] = json!(expr);
        } else {
            field["constraint"] = json!({"expression": expr});
        }
        field
    };
    let cases = [
        (
            json!([text("a"), with(text("b"), "relevant", "${a} =")]),
            "field \"b\": its relevant expression is invalid: the expression ends",
        ),
        (
            json!([with(text("b"), "constraint", "${missing} = 1")]),
            "field \"b\": its constraint expression is invalid: ${missing} is not a field of this form",
        ),
        (
            json!([text("a"), {"name": "r", "label": "R", "type": "repeat", "fields": [text("a")]},
                   with(text("b"), "relevant", "${a} = 'x'")]),
            "${a} is ambiguous",
        ),
        (
            json!([{"name": "r", "label": "R", "type": "repeat", "fields": [text("inner")]},
                   with(text("b"), "relevant", "${inner} = 'x'")]),
            "${inner} is inside the repeat r",
        ),
        (
            json!([{"name": "r", "label": "R", "type": "repeat", "fields": [text("inner")]},
                   with(text("b"), "relevant", "${r} = 'x'")]),
            "refer to it as count(${r})",
        ),
        (
            json!([text("a"), with(text("b"), "relevant", "count(${a}) > 1")]),
            "count() counts a repeat, and ${a} is a text",
        ),
        (
            json!([{"name": "g", "label": "G", "type": "group", "fields": [text("a")]},
                   with(text("b"), "relevant", "${g} = 'x'")]),
            "${g} is a group",
        ),
        (
            json!([with(text("b"), "relevant", "pulldata('x', 'y')")]),
            "pulldata() is not supported",
        ),
        (
            json!([{"name": "n", "label": "N", "type": "note", "constraint": {"expression": ". = 1"}}]),
            "constraint expression does not apply to a note field",
        ),
        (
            json!([{"name": "n", "label": "N", "type": "integer", "default": "seven"}]),
            "its default \"seven\" is not a valid answer: N must be a whole number.",
        ),
        (
            json!([{"name": "g", "label": "G", "type": "group", "fields": []}]),
            "\"g\" has no child fields",
        ),
    ];
    for (fields, wanted) in cases {
        let got = refusal(fields);
        assert!(got.contains(wanted), "wanted {wanted:?} in {got:?}");
    }
    // Inside a repeat, siblings and outer answers are both visible.
    let ok = form_with(json!([
        text("outer"),
        {"name": "r", "label": "R", "type": "repeat", "fields": [
            text("x"), with(text("y"), "relevant", "${x} = ${outer} and count(${r}) > 1")
        ]}
    ]));
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn groups_time_and_acknowledge_validate_like_other_answers() {
    let form = form_with(json!([
        {"name": "vessel", "label": "Vessel", "type": "group", "fields": [
            {"name": "name", "label": "Vessel name", "type": "text", "required": true},
            {"name": "length", "label": "Length", "type": "decimal",
             "relevant": "${name} != ''", "constraint": {"expression": ". > 0"}}
        ]},
        {"name": "at", "label": "Time", "type": "time"},
        {"name": "ok", "label": "Read the rights", "type": "acknowledge"}
    ]))
    .unwrap();
    let found = |record: Value| -> Vec<(String, ViolationKind)> {
        validate(&form, record.as_object().unwrap())
            .into_iter()
            .map(|v| (v.path, v.kind))
            .collect()
    };
    assert_eq!(
        found(json!({"vessel": {"name": "Marlin", "length": 12.5}, "at": "14:30", "ok": "OK"})),
        []
    );
    assert_eq!(
        found(json!({"vessel": {"length": -1, "mast": 2}, "at": "2pm", "ok": "yes"})),
        [
            ("vessel.name".to_string(), ViolationKind::Missing),
            ("vessel.mast".to_string(), ViolationKind::Unknown),
            ("at".to_string(), ViolationKind::Type),
            ("ok".to_string(), ViolationKind::Type),
        ],
        "length does not apply without a name, so its constraint is not checked"
    );
    assert_eq!(
        found(json!({"vessel": {"name": "M", "length": -1}})),
        [("vessel.length".to_string(), ViolationKind::Constraint)]
    );
    assert_eq!(
        found(json!({"vessel": "Marlin"})),
        [("vessel".to_string(), ViolationKind::Type)]
    );
}

#[test]
fn translations_defaults_and_the_source_version_survive_a_round_trip() {
    let source = json!({
        "id": "f", "version": 3, "title": "F", "default_language": "English (en)",
        "source_version": "2026112801",
        "fields": [
            {"name": "kind", "label": "Kind", "type": "select_one",
             "labels": {"Français (fr)": "Type"}, "hints": {"Français (fr)": "Choisir"},
             "hint": "Pick one", "default": "a",
             "choices": [{"value": "a", "label": "A", "labels": {"Français (fr)": "Un"}}]}
        ]
    });
    let form = Form::parse(&source.to_string()).unwrap();
    assert_eq!(form.source_version.as_deref(), Some("2026112801"));
    assert_eq!(form.fields[0].labels["Français (fr)"], "Type");
    assert_eq!(form.fields[0].choices[0].labels["Français (fr)"], "Un");
    assert_eq!(serde_json::to_value(&form).unwrap(), source);
}
