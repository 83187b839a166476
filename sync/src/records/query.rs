//! Reading records: one record's view, history and document, pages and
//! exports of many, and a check of the whole store. Reads never load
//! documents where a cached view or summary answers.

use crate::blobs::BlobHash;
use crate::record::{HistoryEntry, Status};
use crate::records::service::{Records, RecordsError};
use crate::store::{DocStore, Summary};
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tideline_schemas::RecordId;

/// The largest page a list may ask for.
pub const MAX_LIMIT: usize = 10_000;
/// The page size when a list names none.
pub const DEFAULT_LIMIT: usize = 50;

/// Which records a list or export covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub form: Option<String>,
    pub station: Option<String>,
    pub status: Option<Status>,
    /// Text some text value of the record contains, ignoring case: vessel
    /// name, registration, findings, and inside repeats and lists too (crew
    /// names, evidence tags, officers).
    pub text: Option<String>,
    /// Created at or after this time, and before that one: RFC 3339 UTC or a
    /// prefix of it (`2026-11-20`), compared with `created_at` as text.
    pub created_since: Option<String>,
    pub created_before: Option<String>,
}

impl Filter {
    fn matches(&self, s: &Summary) -> bool {
        self.form.as_ref().is_none_or(|f| *f == s.form)
            && self.station.as_ref().is_none_or(|st| *st == s.station)
            && self.status.is_none_or(|st| st.as_str() == s.status)
    }

    /// Whether matching needs the record's view, not only its summary.
    fn needs_view(&self) -> bool {
        self.text.is_some() || self.created_since.is_some() || self.created_before.is_some()
    }

    fn matches_view(&self, view: &RawValue) -> bool {
        #[derive(serde::Deserialize)]
        struct Searchable {
            created_at: String,
            #[serde(default)]
            fields: Map<String, Json>,
        }
        let Ok(v) = serde_json::from_str::<Searchable>(view.get()) else {
            return false;
        };
        if self
            .created_since
            .as_deref()
            .is_some_and(|since| v.created_at.as_str() < since)
            || self
                .created_before
                .as_deref()
                .is_some_and(|before| v.created_at.as_str() >= before)
        {
            return false;
        }
        match &self.text {
            None => true,
            Some(needle) => {
                let needle = needle.to_lowercase();
                v.fields.values().any(|value| contains_text(value, &needle))
            }
        }
    }
}

/// Whether any string in `value`, however deep in lists and objects,
/// contains `needle` (already lower case).
fn contains_text(value: &Json, needle: &str) -> bool {
    match value {
        Json::String(text) => text.to_lowercase().contains(needle),
        Json::Array(items) => items.iter().any(|v| contains_text(v, needle)),
        Json::Object(map) => map.values().any(|v| contains_text(v, needle)),
        _ => false,
    }
}

/// One page of a list: cached views, newest first, and how many records match.
pub struct Page {
    pub records: Vec<Box<RawValue>>,
    pub total: usize,
}

impl<S: DocStore> Records<S> {
    /// Check the whole store: every record's document loads, its summary's
    /// heads and cached view agree with it, and the change feed names each
    /// record exactly once and nothing else. Returns the records checked and
    /// one sentence per problem found; repairs nothing.
    pub fn check(&self) -> Result<(usize, Vec<String>), RecordsError> {
        let mut problems = Vec::new();
        let mut in_feed: BTreeMap<RecordId, usize> = BTreeMap::new();
        for entry in self.store.changes_since(0, usize::MAX)? {
            *in_feed.entry(entry.id).or_default() += 1;
        }
        let mut summaries = Vec::new();
        self.store.scan_summaries(&mut |id, summary| {
            summaries.push((id, summary));
            true
        })?;
        for (id, summary) in &summaries {
            match in_feed.remove(id) {
                Some(1) => {}
                Some(n) => problems.push(format!("record {id}: {n} entries in the change feed")),
                None => problems.push(format!("record {id}: missing from the change feed")),
            }
            let Some(stored) = self.store.load(id)? else {
                problems.push(format!("record {id}: its summary has no document"));
                continue;
            };
            // A damaged document must be reported, not take the check down.
            let loaded = catch_unwind(AssertUnwindSafe(|| self.load_doc(&stored)));
            let mut doc = match loaded {
                Ok(Ok(doc)) => doc,
                Ok(Err(e)) => {
                    problems.push(format!("record {id}: the document does not load ({e})"));
                    continue;
                }
                Err(_) => {
                    problems.push(format!(
                        "record {id}: the document does not load (decoder panic)"
                    ));
                    continue;
                }
            };
            let mut heads = doc.heads();
            heads.sort();
            let mut listed = summary.change_hashes();
            listed.sort();
            if heads != listed {
                problems.push(format!(
                    "record {id}: the summary's heads differ from the document's"
                ));
            }
            match self.store.view(id)? {
                Some(v) if serde_json::from_slice::<Json>(&v).is_ok() => {}
                Some(_) => problems.push(format!("record {id}: the cached view is not JSON")),
                None => problems.push(format!("record {id}: no cached view")),
            }
        }
        for id in in_feed.keys() {
            problems.push(format!(
                "the change feed names record {id}, which is not stored"
            ));
        }
        Ok((summaries.len(), problems))
    }

    /// Every change of one record, oldest first (`RecordDoc::history`).
    pub fn history(&self, id: &RecordId) -> Result<Vec<HistoryEntry>, RecordsError> {
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        let mut doc = self.load_doc(&stored)?;
        Ok(doc.history())
    }

    /// Every attachment file referenced by a record of one of `forms` (of
    /// any form when None), from the summaries.
    pub fn referenced_files(
        &self,
        forms: Option<&[String]>,
    ) -> Result<BTreeSet<BlobHash>, RecordsError> {
        let mut files = BTreeSet::new();
        self.store.scan_summaries(&mut |_, s| {
            if forms.is_none_or(|forms| forms.contains(&s.form)) {
                files.extend(s.attachments.iter().copied().map(BlobHash::from));
            }
            true
        })?;
        Ok(files)
    }

    /// Whether a record of `station` (of any station when None) references
    /// the file `hash`; this decides who may read or upload it.
    pub fn references(&self, hash: &BlobHash, station: Option<&str>) -> Result<bool, RecordsError> {
        let mut found = false;
        self.store.scan_summaries(&mut |_, s| {
            found = s.attachments.contains(hash.as_bytes())
                && station.is_none_or(|own| own == s.station);
            !found
        })?;
        Ok(found)
    }

    /// The cached JSON view of one record.
    pub fn get(&self, id: &RecordId) -> Result<Box<RawValue>, RecordsError> {
        self.view_of(id)
    }

    /// The record's whole Automerge document, compacted into one file.
    pub fn automerge_bytes(&self, id: &RecordId) -> Result<Vec<u8>, RecordsError> {
        let stored = self.store.load(id)?.ok_or(RecordsError::NotFound(*id))?;
        Ok(self.load_doc(&stored)?.save())
    }

    /// A page of records matching `filter`, newest first.
    pub fn list(&self, filter: &Filter, limit: usize, offset: usize) -> Result<Page, RecordsError> {
        let limit = limit.min(MAX_LIMIT);
        let mut total = 0usize;
        let mut ids = Vec::new();
        if filter.needs_view() {
            // Every candidate's view is read to count the matches.
            let mut candidates = Vec::new();
            self.store.scan_summaries(&mut |id, summary| {
                if filter.matches(&summary) {
                    candidates.push(id);
                }
                true
            })?;
            let mut records = Vec::new();
            for id in candidates {
                let view = self.view_of(&id)?;
                if filter.matches_view(&view) {
                    if total >= offset && records.len() < limit {
                        records.push(view);
                    }
                    total += 1;
                }
            }
            return Ok(Page { records, total });
        }
        self.store.scan_summaries(&mut |id, summary| {
            if filter.matches(&summary) {
                if total >= offset && ids.len() < limit {
                    ids.push(id);
                }
                total += 1;
            }
            true
        })?;
        let records = ids
            .iter()
            .map(|id| self.view_of(id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { records, total })
    }

    /// Visit every matching record's view, newest first, without holding them all.
    pub fn for_each<E: From<RecordsError>>(
        &self,
        filter: &Filter,
        mut visit: impl FnMut(Box<RawValue>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut ids = Vec::new();
        self.store
            .scan_summaries(&mut |id, summary| {
                if filter.matches(&summary) {
                    ids.push(id);
                }
                true
            })
            .map_err(RecordsError::from)?;
        for id in ids {
            let view = self.view_of(&id)?;
            if !filter.needs_view() || filter.matches_view(&view) {
                visit(view)?;
            }
        }
        Ok(())
    }
}
