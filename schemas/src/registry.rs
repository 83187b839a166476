//! An in-memory set of forms, several versions per form id: records name the version they
//! were made with, so old versions stay available after a new one is published.

use std::collections::BTreeMap;

use crate::builtin::builtin_forms;
use crate::form::{Form, FormError};

/// Forms by id, then by version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormRegistry {
    forms: BTreeMap<String, BTreeMap<u32, Form>>,
}

impl FormRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry holding the built-in forms.
    pub fn builtin() -> Self {
        let mut registry = Self::new();
        for form in builtin_forms() {
            // builtin_forms() has already checked each form and their id+versions are
            // distinct, so this cannot fail; ignoring the result keeps this infallible.
            let _ = registry.insert(form);
        }
        registry
    }

    /// Adds a form. Refuses a form failing the structural checks (it may have been built
    /// in code rather than parsed) and a second form with the same id and version, since
    /// records already made against that version must keep meaning the same thing.
    pub fn insert(&mut self, mut form: Form) -> Result<(), FormError> {
        // Keeps the regexes a parsed form compiled; a form built in code gets its own.
        form.prepare()?;
        let versions = self.forms.entry(form.id.clone()).or_default();
        if versions.contains_key(&form.version) {
            return Err(FormError::DuplicateVersion {
                id: form.id,
                version: form.version,
            });
        }
        versions.insert(form.version, form);
        Ok(())
    }

    /// The form `id` at `version`.
    pub fn get(&self, id: &str, version: u32) -> Option<&Form> {
        self.forms.get(id)?.get(&version)
    }

    /// The highest version of form `id`.
    pub fn latest(&self, id: &str) -> Option<&Form> {
        self.forms.get(id)?.values().next_back()
    }

    /// The highest version of every form, sorted by id.
    pub fn list_latest(&self) -> Vec<&Form> {
        self.forms
            .values()
            .filter_map(|versions| versions.values().next_back())
            .collect()
    }

    /// Every version of form `id`, oldest first.
    pub fn versions(&self, id: &str) -> Vec<&Form> {
        self.forms
            .get(id)
            .map(|versions| versions.values().collect())
            .unwrap_or_default()
    }

    /// Whether the registry holds no forms.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(id: &str, version: u32, title: &str) -> Form {
        Form::parse(&format!(
            r#"{{"id": "{id}", "version": {version}, "title": "{title}",
                "fields": [{{"name": "x", "label": "X", "type": "text"}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn builtin_holds_the_builtin_forms() {
        let r = FormRegistry::builtin();
        let ids: Vec<_> = r.list_latest().iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["boarding-report", "vessel-sighting"]);
        assert_eq!(
            r.get("boarding-report", 1).unwrap().title,
            "Boarding report"
        );
        assert_eq!(r.latest("boarding-report").unwrap().version, 2);
        assert!(r.get("boarding-report", 3).is_none());
        assert!(r.get("nope", 1).is_none());
        assert!(r.latest("nope").is_none());
    }

    #[test]
    fn keeps_every_version_and_finds_the_latest() {
        let mut r = FormRegistry::new();
        assert!(r.is_empty());
        r.insert(form("b", 2, "B2")).unwrap();
        r.insert(form("b", 10, "B10")).unwrap();
        r.insert(form("b", 1, "B1")).unwrap();
        r.insert(form("a", 3, "A3")).unwrap();
        assert_eq!(r.latest("b").unwrap().title, "B10");
        assert_eq!(r.get("b", 2).unwrap().title, "B2");
        let latest: Vec<_> = r
            .list_latest()
            .iter()
            .map(|f| (f.id.as_str(), f.version))
            .collect();
        assert_eq!(latest, [("a", 3), ("b", 10)]);
        let versions: Vec<_> = r.versions("b").iter().map(|f| f.version).collect();
        assert_eq!(versions, [1, 2, 10]);
    }

    #[test]
    fn refuses_duplicate_id_and_version() {
        let mut r = FormRegistry::new();
        r.insert(form("a", 1, "first")).unwrap();
        assert_eq!(
            r.insert(form("a", 1, "second")),
            Err(FormError::DuplicateVersion {
                id: "a".into(),
                version: 1
            })
        );
        assert_eq!(r.get("a", 1).unwrap().title, "first");
    }

    #[test]
    fn refuses_structurally_bad_forms_built_in_code() {
        let mut r = FormRegistry::new();
        let mut bad = form("a", 1, "A");
        bad.version = 0;
        assert!(matches!(
            r.insert(bad),
            Err(FormError::InvalidVersion { .. })
        ));
        assert!(r.is_empty());
    }
}
