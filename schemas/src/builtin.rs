//! The forms that ship with Tideline, embedded at compile time so a fresh boat install can
//! record boardings before it has ever synced with HQ.

use crate::form::Form;

/// The JSON of each built-in form, in the order `builtin_forms` returns them.
pub const BUILTIN_FORM_SOURCES: [(&str, &str); 3] = [
    // Version 1 stays: records made with it keep meaning what they meant.
    (
        "boarding-report.json",
        include_str!("../forms/boarding-report.json"),
    ),
    // Version 2: seizures only when contraband was found, arrest details only
    // when someone was arrested.
    (
        "boarding-report.v2.json",
        include_str!("../forms/boarding-report.v2.json"),
    ),
    (
        "vessel-sighting.json",
        include_str!("../forms/vessel-sighting.json"),
    ),
];

/// The built-in forms: `boarding-report` versions 1 and 2, and `vessel-sighting` 1.
pub fn builtin_forms() -> Vec<Form> {
    BUILTIN_FORM_SOURCES
        .iter()
        .map(|(file, json)| match Form::parse(json) {
            Ok(form) => form,
            // The files are part of this crate and the tests parse every one of them, so
            // this is a build defect, not bad input.
            Err(e) => panic!("built-in form {file} is invalid: {e}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::{Check, FieldType};

    #[test]
    fn builtin_forms_parse() {
        let forms = builtin_forms();
        let ids: Vec<_> = forms.iter().map(|f| (f.id.as_str(), f.version)).collect();
        assert_eq!(
            ids,
            [
                ("boarding-report", 1),
                ("boarding-report", 2),
                ("vessel-sighting", 1)
            ]
        );
    }

    #[test]
    fn boarding_report_2_is_1_with_its_skip_logic() {
        let forms = builtin_forms();
        let (v1, v2) = (&forms[0], &forms[1]);
        let mut plain = v2.clone();
        plain.version = 1;
        plain.fields.retain(|f| f.name != "arrest_details");
        for f in &mut plain.fields {
            f.relevant = None;
            if let Some(c) = &mut f.constraint {
                c.expression = None;
            }
        }
        let hint = |form: &Form| form.field("contraband_found").and_then(|f| f.hint.clone());
        plain.fields.iter_mut().for_each(|f| {
            if f.name == "contraband_found" {
                f.hint = hint(v1);
            }
        });
        assert_eq!(plain.fields, v1.fields, "version 2 changes only the logic");
        assert_eq!(
            v2.field("seizures").and_then(|f| f.relevant.as_deref()),
            Some("${contraband_found} = true()")
        );
        assert_eq!(
            v2.field("arrest_details")
                .and_then(|f| f.relevant.as_deref()),
            Some("${arrests} > 0")
        );
        let record = serde_json::json!({"arrests": 0, "arrest_details": "none",
            "contraband_found": false, "seizures": [{"item_type": "fish"}]});
        let now = chrono::Local::now().fixed_offset();
        let kept = crate::clear_irrelevant(v2, record.as_object().unwrap(), now).unwrap();
        assert!(!kept.contains_key("seizures"));
        assert!(!kept.contains_key("arrest_details"));
    }

    #[test]
    fn boarding_report_has_the_agreed_fields_in_order() {
        let form = &builtin_forms()[0];
        assert_eq!(form.title, "Boarding report");
        let fields: Vec<_> = form
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.field_type, f.required))
            .collect();
        use FieldType::*;
        assert_eq!(
            fields,
            [
                ("boarding_time", DateTime, true),
                ("position", Geopoint, true),
                ("vessel_name", Text, true),
                ("vessel_registration", Text, false),
                ("flag_state", SelectOne, false),
                ("vessel_type", SelectOne, false),
                ("persons_on_board", Integer, true),
                ("master_name", Text, false),
                ("reason", SelectOne, true),
                ("crew", Repeat, false),
                ("contraband_found", Boolean, true),
                ("seizures", Repeat, false),
                ("arrests", Integer, false),
                ("findings", Text, false),
                ("outcome", SelectOne, true),
                ("officers", Text, false),
                ("photos", Image, false),
            ]
        );
        let values = |name: &str| -> Vec<String> {
            form.field(name)
                .map(|f| f.choices.iter().map(|c| c.value.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            values("flag_state"),
            [
                "AG", "AI", "BB", "DM", "GD", "KN", "LC", "MS", "TT", "VC", "VG", "US", "VE",
                "other"
            ]
        );
        assert_eq!(
            values("vessel_type"),
            [
                "fishing",
                "go_fast",
                "cargo",
                "tanker",
                "pleasure",
                "passenger",
                "other"
            ]
        );
        assert_eq!(
            values("reason"),
            [
                "routine_inspection",
                "suspected_trafficking",
                "fisheries",
                "customs",
                "immigration",
                "search_and_rescue",
                "other"
            ]
        );
        assert_eq!(
            values("outcome"),
            ["released", "warning_issued", "escorted_to_port", "detained"]
        );
        let crew: Vec<_> = form
            .field("crew")
            .unwrap()
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(crew, ["name", "nationality", "id_document", "role"]);
        let seizures = form.field("seizures").unwrap();
        let names: Vec<_> = seizures.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "item_type",
                "description",
                "quantity",
                "unit",
                "evidence_tag"
            ]
        );
        let tag = seizures.child("evidence_tag").unwrap();
        assert!(tag.unique && tag.required);
        assert!(form.field("findings").unwrap().is_long_text());
        assert!(form.field("officers").unwrap().multiple);
        assert!(form.field("photos").unwrap().multiple);
        assert_eq!(
            form.checks[0],
            Check::CountAtMost {
                count: "crew".into(),
                limit: "persons_on_board".into(),
                message: "Persons on board cannot be fewer than the crew listed.".into()
            }
        );
        assert!(
            matches!(&form.checks[1], Check::EmptyUnless { field, when, .. }
            if field == "seizures" && when == "contraband_found")
        );
        for field in &form.fields {
            assert!(!field.label.is_empty(), "{} has no label", field.name);
        }
    }

    #[test]
    fn vessel_sighting_has_the_agreed_fields() {
        let form = &builtin_forms()[2];
        let fields: Vec<_> = form
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.field_type, f.required))
            .collect();
        use FieldType::*;
        assert_eq!(
            fields,
            [
                ("sighted_at", DateTime, true),
                ("position", Geopoint, true),
                ("vessel_name", Text, false),
                ("description", Text, false),
                ("heading_deg", Integer, false),
                ("speed_knots", Decimal, false),
                ("photos", Image, false),
            ]
        );
        assert!(form.field("description").unwrap().is_long_text());
        let heading = form
            .field("heading_deg")
            .unwrap()
            .constraint
            .clone()
            .unwrap();
        assert_eq!((heading.min, heading.max), (Some(0.0), Some(359.0)));
    }
}
