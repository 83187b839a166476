//! Skip logic in the browser, on a form imported from an XLSForm: a question
//! appears only while its condition holds, keeps what was typed in it while
//! hidden, and a cross-field constraint shows the form's message beside its field.

use super::support::*;
use serde_json::{json, Value};
use tideline_tests::{add_user, patrol_xlsform, Instance};

/// Whether the question at `path` is shown, or null while it is not drawn.
async fn shown_question(c: &fantoccini::Client, path: &str) -> Value {
    c.execute(
        "const q = document.querySelector(`[data-path=\"${arguments[0]}\"]`); \
         return q ? !q.hidden && q.offsetParent !== null : null;",
        vec![json!(path)],
    )
    .await
    .unwrap()
}

async fn wait_shown(c: &fantoccini::Client, path: &str, wanted: bool) {
    let script = format!(
        "const q = document.querySelector('[data-path=\"{path}\"]'); \
         return q && (!q.hidden && q.offsetParent !== null) === {wanted} ? true : null;"
    );
    until(c, &script, &format!("{path} shown = {wanted}"), 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_forms_questions_appear_when_they_apply() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let hq = Instance::start("hq", dirs[0].path(), "HQ").await;
    let imported = tideline_server::xlsform::publish(&hq.records, &patrol_xlsform("1", &[]))
        .expect("the workbook imports");
    assert_eq!(imported.form().id, "patrol-check");
    add_user(&hq.records, "officer", "officer", "HQ");
    let driver = start_driver().await;
    let c = browser(&driver, &dirs[1].path().join("profile")).await;
    sign_in(&c, &hq.base, "officer").await;
    c.goto(&format!("{}/records/new?form=patrol-check", hq.base))
        .await
        .unwrap();
    arrive(&c, "/records/new").await;

    // Hidden until contraband was found.
    wait_shown(&c, "contraband_detail", false).await;
    choose(&c, "#f-contraband", "yes").await;
    wait_shown(&c, "contraband_detail", true).await;
    type_into(&c, "#f-contraband-detail", "Two bales").await;
    choose(&c, "#f-contraband", "no").await;
    wait_shown(&c, "contraband_detail", false).await;
    // Shown again before saving: what was typed is still there.
    choose(&c, "#f-contraband", "yes").await;
    wait_shown(&c, "contraband_detail", true).await;
    assert_eq!(value_of(&c, "#f-contraband-detail").await, "Two bales");
    assert_eq!(
        shown_question(&c, "persons").await,
        Value::Null,
        "persons has no condition"
    );

    // A cross-field constraint: its message beside the field, nothing lost.
    type_into(&c, "#f-persons", "1").await;
    type_into(&c, "#f-arrests", "2").await;
    press(&c, "#save-draft").await;
    let error = css(&c, "#f-arrests-error").await.text().await.unwrap();
    assert_eq!(words(&error), "Cannot arrest more people than are on board");
    assert_eq!(value_of(&c, "#f-arrests").await, "2");
    assert_eq!(value_of(&c, "#f-contraband-detail").await, "Two bales");
    wait_shown(&c, "contraband_detail", true).await;
    screenshot(&c, "entry-skip-logic").await;

    // Fixed and saved with no contraband: the detail does not apply and is not kept.
    css(&c, "#f-arrests").await.clear().await.unwrap();
    type_into(&c, "#f-arrests", "1").await;
    choose(&c, "#f-contraband", "no").await;
    press(&c, "#save-draft").await;
    let saved = until(
        &c,
        "return document.querySelector('.field-error') ? null : true;",
        "a save without problems",
        5,
    )
    .await;
    assert_eq!(saved, Value::Bool(true));
    let list: Value = hq.get_json("/api/v1/records?form=patrol-check").await;
    let record = &list["records"][0];
    assert_eq!(record["fields"]["arrests"], 1, "{list}");
    assert!(
        record["fields"]
            .get("contraband_detail")
            .is_none_or(Value::is_null),
        "{list}"
    );
}
