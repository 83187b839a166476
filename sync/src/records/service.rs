//! The record service itself: one instance's records, their forms and
//! who the instance is. Writes (`edit`), records from peers (`remote`) and
//! reads (`query`) are further `impl` blocks of [`Records`].

use crate::record::{DocError, RecordDoc, RecordMeta, Status};
use crate::records::cache::{DocCache, Opened};
use crate::store::{Commit, DocStore, StateWrite, StoreError, StoredDoc};
use automerge::ActorId;
use serde_json::value::RawValue;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tideline_schemas::{Form, FormRegistry, RecordId, Violation};

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("there is no form called {0:?}")]
    UnknownForm(String),
    #[error("form {form} version {version} is not known on this instance")]
    UnknownFormVersion { form: String, version: u32 },
    #[error("record {0} not found")]
    NotFound(RecordId),
    #[error("the record has {} invalid field(s)", .0.len())]
    Invalid(Vec<Violation>),
    #[error("a record must be complete and valid to be {status}; {} problem(s) remain", .violations.len())]
    Incomplete {
        status: Status,
        violations: Vec<Violation>,
    },
    #[error("a record cannot move from {from} to {to}")]
    Transition { from: Status, to: Status },
    #[error("there is no conflict at {0:?} to resolve")]
    NoConflict(String),
    #[error("the form cannot be published: {0}")]
    InvalidForm(String),
    #[error(
        "version {version} of form {id} is already published with other content; \
         publish the change as the next version"
    )]
    FormVersionTaken { id: String, version: u32 },
    #[error(
        "version {version} of form {id} is older than the latest, {latest}; versions only go up"
    )]
    FormVersionOld {
        id: String,
        version: u32,
        latest: u32,
    },
    #[error("record {0} already exists")]
    Exists(RecordId),
    #[error("record {0} is outside this peer's scope")]
    Forbidden(RecordId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Document(#[from] DocError),
}

/// Who this instance is: its device id and the Automerge actor derived from it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub device_id: uuid::Uuid,
    pub actor: ActorId,
}

const DEVICE_ID_KEY: &str = "device_id";

impl Identity {
    /// The instance's identity, created and stored durably on first use. The
    /// actor bytes are the device id, so authorship in a document names the device.
    pub fn load_or_create(store: &dyn DocStore) -> Result<Identity, StoreError> {
        let device_id = match store.get_meta(DEVICE_ID_KEY)? {
            Some(bytes) => uuid::Uuid::from_slice(&bytes)
                .map_err(|_| StoreError::Corrupt("device id".into()))?,
            None => {
                let id = uuid::Uuid::new_v4();
                store.put_meta(DEVICE_ID_KEY, id.as_bytes())?;
                id
            }
        };
        Ok(Identity {
            device_id,
            actor: ActorId::from(*device_id.as_bytes()),
        })
    }
}

pub struct Records<S: DocStore> {
    pub(super) store: S,
    /// Replaced whole when a form version is published, so readers keep a
    /// consistent registry for as long as they hold it.
    forms: RwLock<Arc<FormRegistry>>,
    pub(super) identity: Identity,
    station: String,
    /// Edits are load-modify-store, so two writes of one record must not
    /// overlap or one would lose the other's changes. Local writes hold this
    /// shared and their record's stripe below; records from peers, which
    /// touch many records at once, hold it exclusively. Writes of different
    /// records thus build their documents and views in parallel, and only
    /// the store's commit is one at a time.
    write_lock: RwLock<()>,
    stripes: Vec<Mutex<()>>,
    /// Documents left open by recent writes.
    pub(super) cache: DocCache,
}

/// Locks over records for local writes: enough that unrelated writes
/// rarely share one.
const STRIPES: usize = 64;

/// Held for the length of one local write.
pub(super) struct RecordGuard<'a> {
    _shared: RwLockReadGuard<'a, ()>,
    _stripe: Option<MutexGuard<'a, ()>>,
}

/// State keys of published forms: `forms/<id>/<version, 10 digits>`.
const PUBLISHED: &[u8] = b"forms/";

impl<S: DocStore> Records<S> {
    pub fn open(store: S, mut forms: FormRegistry, station: &str) -> Result<Self, StoreError> {
        let identity = Identity::load_or_create(&store)?;
        // Versions published here or received by sync, beside the built-in ones.
        for (key, json) in store.scan_state(PUBLISHED)? {
            match std::str::from_utf8(&json)
                .map_err(|e| e.to_string())
                .and_then(|j| Form::parse(j).map_err(|e| e.to_string()))
            {
                Ok(form) => {
                    if forms.get(&form.id, form.version).is_none() {
                        let _ = forms.insert(form);
                    }
                }
                Err(e) => tracing::warn!(
                    key = %String::from_utf8_lossy(&key),
                    error = %e,
                    "a stored form could not be read; skipped"
                ),
            }
        }
        Ok(Records {
            store,
            forms: RwLock::new(Arc::new(forms)),
            identity,
            station: station.to_string(),
            write_lock: RwLock::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            cache: DocCache::default(),
        })
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The forms as they are now (a later publication does not change them).
    pub fn forms(&self) -> Arc<FormRegistry> {
        self.forms.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every (form, version) known here.
    pub fn form_versions(&self) -> Vec<(String, u32)> {
        let forms = self.forms();
        forms
            .list_latest()
            .iter()
            .flat_map(|f| forms.versions(&f.id))
            .map(|f| (f.id.clone(), f.version))
            .collect()
    }

    /// Publish a new version of a form (its JSON definition), durably: new
    /// records use it; records made with an earlier version keep theirs.
    /// The same version published again with the same content is accepted
    /// (sync delivers forms more than once); any other reuse of a version
    /// number, or a version below the latest, is refused. Returns the form
    /// and whether it was new here.
    pub fn publish_form(&self, json: &str) -> Result<(Form, bool), RecordsError> {
        let form = Form::parse(json).map_err(|e| RecordsError::InvalidForm(e.to_string()))?;
        let mut current = self.forms.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = current.get(&form.id, form.version) {
            if *existing == form {
                return Ok((form, false));
            }
            return Err(RecordsError::FormVersionTaken {
                id: form.id,
                version: form.version,
            });
        }
        if let Some(latest) = current.latest(&form.id) {
            if latest.version > form.version {
                return Err(RecordsError::FormVersionOld {
                    id: form.id,
                    version: form.version,
                    latest: latest.version,
                });
            }
        }
        let stored = serde_json::to_vec(&form).map_err(|e| StoreError::Io(e.to_string()))?;
        let key = [
            PUBLISHED,
            form.id.as_bytes(),
            b"/",
            format!("{:010}", form.version).as_bytes(),
        ]
        .concat();
        self.store.commit(Commit {
            records: Vec::new(),
            state: vec![StateWrite {
                key,
                value: Some(stored),
            }],
        })?;
        let mut next = FormRegistry::clone(&current);
        next.insert(form.clone())
            .map_err(|e| RecordsError::InvalidForm(e.to_string()))?;
        *current = Arc::new(next);
        Ok((form, true))
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn station(&self) -> &str {
        &self.station
    }

    /// The form version a record was made with; editing needs it.
    pub(super) fn form_of<'f>(
        forms: &'f FormRegistry,
        meta: &RecordMeta,
    ) -> Result<&'f Form, RecordsError> {
        forms
            .get(&meta.form, meta.form_version)
            .ok_or_else(|| RecordsError::UnknownFormVersion {
                form: meta.form.clone(),
                version: meta.form_version,
            })
    }

    /// Exclusive: no local write runs meanwhile (records from peers).
    pub(super) fn lock(&self) -> RwLockWriteGuard<'_, ()> {
        self.write_lock.write().unwrap_or_else(|p| p.into_inner())
    }

    /// For a local write of `id` (None: a record being created, which no
    /// one else can write yet): no other write of it runs meanwhile.
    pub(super) fn lock_record(&self, id: Option<&RecordId>) -> RecordGuard<'_> {
        let shared = self.write_lock.read().unwrap_or_else(|p| p.into_inner());
        let stripe = id.map(|id| {
            let b = id.as_bytes();
            // The low bytes of a UUIDv7 are random: an even spread.
            let n = u16::from_le_bytes([b[14], b[15]]) as usize % STRIPES;
            self.stripes[n].lock().unwrap_or_else(|p| p.into_inner())
        });
        RecordGuard {
            _shared: shared,
            _stripe: stripe,
        }
    }

    pub(super) fn load_doc(&self, stored: &StoredDoc) -> Result<RecordDoc, RecordsError> {
        Ok(RecordDoc::load(
            &stored.snapshot,
            &stored.chunks,
            self.identity.actor.clone(),
        )?)
    }

    /// The document of `id` for a write: the one the last write left open
    /// when it is still current, or else loaded from `stored`.
    pub(super) fn open_doc(
        &self,
        id: &RecordId,
        stored: &StoredDoc,
    ) -> Result<(RecordDoc, Opened), RecordsError> {
        if self.cache.holds(id) {
            if let Some(summary) = self.store.summary(id)? {
                if let Some(doc) = self.cache.take(id, &summary.change_hashes()) {
                    return Ok((doc, Opened::Cached));
                }
            }
        }
        Ok((self.load_doc(stored)?, Opened::Loaded))
    }

    pub(super) fn view_of(&self, id: &RecordId) -> Result<Box<RawValue>, RecordsError> {
        let bytes = self.store.view(id)?.ok_or(RecordsError::NotFound(*id))?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("view".into()))?;
        RawValue::from_string(text)
            .map_err(|e| RecordsError::Store(StoreError::Corrupt(format!("view: {e}"))))
    }
}

pub(super) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}
