//! The XLSForm export is a codec: any form, written as a workbook and read back,
//! is the same form (its Tideline version aside, which the importer is told; and
//! text without surrounding spaces, which cells lose).

use proptest::prelude::*;
use tideline_schemas::xlsform::{export, import};
use tideline_schemas::{Choice, Constraint, Field, FieldType, Form};

const LANG: &str = "Français (fr)";

/// Text a person might type in a label or hint, with accents and punctuation.
/// Cells are read trimmed, as pyxform reads them, so none starts or ends with a
/// space.
fn text() -> impl Strategy<Value = String> {
    "[A-Za-zÀ-ÿ]([A-Za-zÀ-ÿ0-9 ,.'?()/-]{0,23}[A-Za-zÀ-ÿ0-9?.)])?"
}

fn leaf(name: String) -> impl Strategy<Value = Field> {
    let types = prop::sample::select(vec![
        FieldType::Text,
        FieldType::Integer,
        FieldType::Decimal,
        FieldType::Date,
        FieldType::DateTime,
        FieldType::Time,
        FieldType::Geopoint,
        FieldType::Image,
        FieldType::Note,
        FieldType::Acknowledge,
        FieldType::Boolean,
        FieldType::SelectOne,
        FieldType::SelectMultiple,
    ]);
    (
        types,
        text(),
        prop::option::of(text()),
        any::<bool>(),
        prop::option::of(text()),
        prop::option::of(text()),
        any::<bool>(),
        prop::collection::btree_set("[a-z]{1,6}", 1..4),
    )
        .prop_map(
            move |(ty, label, hint, required, translated, message, flag, values)| {
                let mut f = Field::new(name.clone(), label, ty);
                f.hint = hint;
                f.required = required && ty != FieldType::Note;
                if let Some(t) = translated {
                    f.labels.insert(LANG.into(), t);
                }
                match ty {
                    FieldType::SelectOne | FieldType::SelectMultiple => {
                        f.choices = values
                            .into_iter()
                            .map(|v| Choice::new(v.clone(), v))
                            .collect();
                    }
                    FieldType::Integer | FieldType::Decimal => {
                        f.constraint = Some(Constraint {
                            min: flag.then_some(0.0),
                            expression: Some(". < 1000".into()),
                            message,
                            ..Constraint::default()
                        });
                    }
                    FieldType::Text => {
                        f.multiple = flag;
                        f.constraint = message.map(|m| Constraint {
                            max_length: Some(80),
                            message: Some(m),
                            ..Constraint::default()
                        });
                    }
                    FieldType::Image => f.multiple = flag,
                    _ => {}
                }
                f
            },
        )
}

/// A list of fields named `{prefix}{i}`, some of them groups or repeats holding more.
fn fields(prefix: String, depth: u32) -> BoxedStrategy<Vec<Field>> {
    (1usize..5)
        .prop_flat_map(move |n| {
            let prefix = prefix.clone();
            (0..n)
                .map(|i| {
                    let name = format!("{prefix}{i}");
                    if depth > 0 && i == n - 1 {
                        (any::<bool>(), text(), fields(format!("{name}_"), depth - 1))
                            .prop_map(move |(repeat, label, children)| {
                                let ty = if repeat {
                                    FieldType::Repeat
                                } else {
                                    FieldType::Group
                                };
                                let mut f = Field::new(name.clone(), label, ty);
                                f.fields = children;
                                if repeat {
                                    f.item_label = Some("Item".into());
                                }
                                f
                            })
                            .boxed()
                    } else {
                        leaf(name).boxed()
                    }
                })
                .collect::<Vec<_>>()
        })
        .boxed()
}

fn form() -> impl Strategy<Value = Form> {
    (
        fields("q".into(), 2),
        text(),
        prop::option::of("[0-9]{1,10}"),
    )
        .prop_map(|(fields, title, source_version)| {
            let translated = fields.iter().any(|f| !f.labels.is_empty());
            let json = serde_json::json!({
                "id": "generated-form",
                "version": 7,
                "title": title,
                "fields": fields,
                "source_version": source_version,
                "default_language": translated.then_some("English (en)"),
            });
            Form::parse(&json.to_string()).expect("generated forms are valid")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_form_comes_back_the_same_from_its_workbook(form in form()) {
        let bytes = export(&form).expect("exports");
        let back = import(&bytes, form.version).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut expected = form.clone();
        if expected.source_version.is_none() {
            expected.source_version = Some(form.version.to_string());
        }
        prop_assert_eq!(back, expected);
    }
}
