//! The downstream side of sync: a boat towards its station, or a station
//! towards headquarters. [`Downstream::prepare`] builds a request from the
//! local change feed; [`Downstream::absorb`] stores the response, with all
//! of the exchange's bookkeeping in the one durable commit that stores the
//! pulled records.

use crate::blobs::BlobHash;
use crate::engine::error::SyncError;
use crate::engine::ledger::{Checkpoint, Ledger};
use crate::engine::repairs::Repairs;
use crate::engine::transfer::{outgoing, receive, record_id};
use crate::evidence::{self, Attestor, AuditHead, Batch, Certificate};
use crate::feed::feed_page;
use crate::plan::{frontier, peer_has_all, DEFAULT_PAGE_BYTES, MAX_PAGE_BYTES};
use crate::protocol::{DocChanges, Rejection, SyncRequest, SyncResponse};
use crate::records::{Records, RemoteResult};
use crate::store::DocStore;
use automerge::ChangeHash;
use std::collections::HashMap;
use tideline_schemas::RecordId;

/// Counts of one exchange, for progress reporting and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    pub pushed: usize,
    pub pulled: usize,
    pub rejected: usize,
    /// More exchanges are needed to finish (paging, repairs or a reset).
    pub more: bool,
    /// The upstream did not recognise our checkpoint; bookkeeping was reset.
    pub reset: bool,
}

/// What `prepare` promised, kept until the response arrives.
pub struct Pending {
    push_upto: u64,
    more_push: bool,
    acked_after: Vec<(RecordId, Vec<ChangeHash>)>,
    /// The audit head the request anchors, and the batches and
    /// certificates it passed on: all acknowledged by a response.
    audit: AuditHead,
    relayed: Vec<[u8; 32]>,
    certificates: Vec<[u8; 16]>,
}

/// The audit heads this instance's upstream has acknowledged, oldest first.
pub fn acknowledged_anchors(store: &dyn DocStore) -> Result<Vec<AuditHead>, SyncError> {
    Ledger::new(store).anchors()
}

/// The downstream side of sync for one sync run (a series of exchanges).
pub struct Downstream<'a, S: DocStore> {
    records: &'a Records<S>,
    page_bytes: u64,
    repairs: Repairs,
    /// Signs for this instance (docs/EVIDENCE.md).
    attestor: &'a dyn Attestor,
}

/// A page of local changes for the upstream.
struct PushPage {
    docs: Vec<DocChanges>,
    /// The tips of what is sent, which the request's signature covers.
    tips: Vec<[u8; 32]>,
    /// Records with changes by other authors, whose batches go with them.
    relaying: Vec<RecordId>,
    pending: Pending,
}

impl<'a, S: DocStore> Downstream<'a, S> {
    /// Start a sync run, resuming any repair an earlier run left unfinished.
    /// `attestor` signs each request with the instance key.
    pub fn new(records: &'a Records<S>, attestor: &'a dyn Attestor) -> Self {
        Downstream {
            records,
            page_bytes: DEFAULT_PAGE_BYTES,
            attestor,
            repairs: Repairs::resume(&Ledger::new(records.store())),
        }
    }

    pub fn with_page_bytes(mut self, bytes: u64) -> Self {
        self.page_bytes = bytes.clamp(1, MAX_PAGE_BYTES);
        self
    }

    pub fn checkpoint(records: &Records<S>) -> Result<Checkpoint, SyncError> {
        Ledger::new(records.store()).checkpoint()
    }

    /// Local changes not yet acknowledged by the upstream (an upper bound:
    /// records touched only by pulls count until the next push passes them),
    /// plus records waiting for a repair.
    pub fn pending_changes(records: &Records<S>) -> Result<usize, SyncError> {
        let store = records.store();
        let ledger = Ledger::new(store);
        let cp = ledger.checkpoint()?;
        let mut pending = 0;
        // A record written by a pull (a merge) is in the feed too, but the
        // upstream has it all: count only what a sync would really send.
        for entry in store.changes_since(cp.push_seq, usize::MAX)? {
            let Some(summary) = store.summary(&entry.id)? else {
                continue;
            };
            if !peer_has_all(&ledger.acked(&entry.id)?, &summary.change_hashes()) {
                pending += 1;
            }
        }
        Ok(pending + ledger.repairs()?.len())
    }

    /// Whether the upstream has accepted the file `hash` since it last
    /// started this instance afresh.
    pub fn file_sent(records: &Records<S>, hash: &BlobHash) -> Result<bool, SyncError> {
        Ledger::new(records.store()).file_sent(hash.as_bytes())
    }

    /// Remember that the upstream accepted the file `hash`, so it is not
    /// offered again. Advisory: a lost marker costs one question to the upstream.
    pub fn mark_file_sent(records: &Records<S>, hash: &BlobHash) -> Result<(), SyncError> {
        let mut ledger = Ledger::new(records.store());
        ledger.mark_file_sent(hash.as_bytes());
        ledger.commit_lazy()
    }

    /// Build the next request: a page of local changes, the pull checkpoint and
    /// the next message of each repair.
    pub fn prepare(&mut self) -> Result<(SyncRequest, Pending), SyncError> {
        // The checkpoint sent below tells the upstream what we have stored; it
        // must be on disk, even if the commit that wrote it failed to flush.
        self.records.store().ensure_durable()?;
        let ledger = Ledger::new(self.records.store());
        let cp = ledger.checkpoint()?;
        let mut page = self.push_page(&ledger, cp.push_seq)?;
        let fallback = self.repairs.messages(self.records)?;
        let store = self.records.store();
        let mut signed_heads = Vec::new();
        for msg in &fallback {
            let Some(id) = record_id(&msg.id) else {
                continue;
            };
            if let Some(summary) = store.summary(&id)? {
                signed_heads.extend(summary.change_hashes().iter().map(|h| h.0));
            }
            page.relaying.push(id);
        }
        let me = *self.records.identity().device_id.as_bytes();
        let (relayed, certificates) = self.relayed(&ledger, &page.relaying, &me)?;
        let audit = self.attestor.audit_head();
        let audit_check = ledger.anchors()?.last().map(|anchor| {
            let now = self.attestor.audit_hash_at(anchor.seq).unwrap_or_default();
            (anchor.seq, now[..16].try_into().unwrap_or_default())
        });
        let mut tips = page.tips;
        tips.extend(signed_heads.iter().copied());
        let signature = Batch::sign(self.attestor, me, audit, tips).signature;
        page.pending.audit = audit;
        page.pending.relayed = relayed.iter().map(Batch::id).collect();
        page.pending.certificates = certificates.iter().map(|c| c.enrolment.device).collect();
        let request = SyncRequest {
            instance: me,
            station: self.records.station().to_string(),
            epoch: cp.epoch,
            pull_since: cp.pull_seq,
            max_pull_bytes: self.page_bytes,
            push: page.docs,
            fallback,
            signature,
            signed_heads,
            audit,
            audit_check,
            relayed,
            certificates,
            forms: self.records.form_versions(),
        };
        Ok((request, page.pending))
    }

    /// The batches of other authors that signed tips of `records` and that
    /// the upstream has not accepted from us yet, with the certificates of
    /// their signers (those enrolled here).
    fn relayed(
        &self,
        ledger: &Ledger<'_>,
        records: &[RecordId],
        me: &[u8; 16],
    ) -> Result<(Vec<Batch>, Vec<Certificate>), SyncError> {
        let store = self.records.store();
        let mut batches: Vec<Batch> = Vec::new();
        let mut certificates: Vec<Certificate> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in records {
            for (batch_id, signer) in evidence::record_batches(store, id)? {
                if signer == *me || !seen.insert(batch_id) || ledger.relayed(&batch_id)? {
                    continue;
                }
                let Some(batch) = evidence::batch(store, &batch_id)? else {
                    continue;
                };
                let known = certificates.iter().any(|c| c.enrolment.device == signer);
                if !known && !ledger.certificate_sent(&signer)? {
                    // Enrolled here, or further down (a certificate a
                    // downstream presented, passed on as it was signed).
                    let cert = match self.attestor.certificate(&signer) {
                        Some(cert) => Some(cert),
                        None => evidence::certificate(store, &signer)?,
                    };
                    certificates.extend(cert);
                }
                batches.push(batch);
            }
        }
        Ok((batches, certificates))
    }

    /// Local changes after the push checkpoint that the upstream lacks, the
    /// tips of what is sent, and the records other authors wrote in.
    fn push_page(&self, ledger: &Ledger<'_>, after: u64) -> Result<PushPage, SyncError> {
        let (store, records, repairs) = (self.records.store(), self.records, &self.repairs);
        let page = feed_page::<_, SyncError>(store, after, self.page_bytes, |entry| {
            // A record under repair travels by the repair, not by the feed.
            if repairs.holds(&entry.id) {
                return Ok(None);
            }
            let Some(summary) = store.summary(&entry.id)? else {
                return Ok(None);
            };
            let acked = ledger.acked(&entry.id)?;
            let Some(out) = outgoing(records, &entry.id, &summary, &acked)? else {
                return Ok(None);
            };
            Ok(Some((
                out.size,
                (out.doc, (entry.id, out.shared), out.authors, out.tips),
            )))
        })?;
        let own = &self.records.identity().actor;
        let mut docs = Vec::with_capacity(page.items.len());
        let mut acked_after = Vec::with_capacity(page.items.len());
        let mut tips = Vec::with_capacity(page.items.len());
        let mut relaying = Vec::new();
        for (doc, acked, authors, doc_tips) in page.items {
            if authors.iter().any(|a| a != own) {
                relaying.push(acked.0);
            }
            tips.extend(doc_tips.iter().map(|h| h.0));
            docs.push(doc);
            acked_after.push(acked);
        }
        Ok(PushPage {
            docs,
            tips,
            relaying,
            pending: Pending {
                push_upto: page.upto,
                more_push: page.more,
                acked_after,
                audit: AuditHead::default(),
                relayed: Vec::new(),
                certificates: Vec::new(),
            },
        })
    }

    /// Store a response: acknowledgements, repairs, pulled records and the
    /// new checkpoints, the bookkeeping in one durable commit with the
    /// pulled records.
    pub fn absorb(
        &mut self,
        pending: Pending,
        response: SyncResponse,
    ) -> Result<Exchange, SyncError> {
        let mut ledger = Ledger::new(self.records.store());
        let cp = ledger.checkpoint()?;
        if response.reset || cp.epoch.is_some_and(|e| e != response.epoch) {
            return self.reset(ledger, response.epoch);
        }
        self.take_forms(&response.forms);
        let rejected = self.take_rejections(&mut ledger, &response.rejected);
        for batch in &pending.relayed {
            ledger.mark_relayed(batch);
        }
        for device in &pending.certificates {
            ledger.mark_certificate_sent(device);
        }
        ledger.add_anchor(&pending.audit);
        let mut pushed = 0;
        for (id, heads) in &pending.acked_after {
            if !rejected.contains_key(id) {
                ledger.set_acked(id, heads);
                pushed += 1;
            }
        }
        // Repairs before the pull, so the one commit below holds what they
        // settled; the records they brought are stored as they go.
        self.repairs.receive(self.records, response.fallback)?;
        self.repairs.finish(self.records, &mut ledger)?;
        let next = Checkpoint {
            push_seq: pending.push_upto,
            pull_seq: response.pull_seq,
            epoch: Some(response.epoch),
            upstream: Some(response.instance),
        };
        let pulled = self.take_pull(ledger, response.pull, &next)?;
        Ok(Exchange {
            pushed,
            pulled,
            rejected: rejected.len(),
            more: pending.more_push || response.more || !self.repairs.is_empty(),
            reset: false,
        })
    }

    /// Form versions from the upstream, first: pulled records may use them.
    fn take_forms(&self, forms: &[String]) {
        for json in forms {
            match self.records.publish_form(json) {
                Ok((form, true)) => {
                    tracing::info!(form = %form.id, version = form.version, "form version received")
                }
                Ok((_, false)) => {}
                Err(e) => tracing::warn!(error = %e, "a form from the upstream was not taken"),
            }
        }
    }

    /// The records the upstream refused: those missing dependencies start a
    /// repair; any other refusal ends the record's repair, if it had one.
    fn take_rejections(
        &mut self,
        ledger: &mut Ledger<'_>,
        rejected: &[crate::protocol::Rejected],
    ) -> HashMap<RecordId, Rejection> {
        let mut refused = HashMap::new();
        for r in rejected {
            let Some(id) = record_id(&r.id) else { continue };
            refused.insert(id, r.reason);
        }
        for (id, reason) in &refused {
            if *reason == Rejection::MissingDeps {
                self.repairs.start(ledger, *id);
            } else {
                tracing::warn!(record = %id, reason = ?reason, "upstream refused a record");
                self.repairs.refused(ledger, id);
            }
        }
        refused
    }

    /// Store the pulled records and, in the same durable commit, the
    /// exchange's bookkeeping and the checkpoint that moves past them.
    /// Returns how many records the pull changed here.
    fn take_pull(
        &mut self,
        mut ledger: Ledger<'_>,
        pull: Vec<DocChanges>,
        next: &Checkpoint,
    ) -> Result<usize, SyncError> {
        let received = receive(pull, "a pull page");
        for id in &received.refused {
            tracing::warn!(record = %id, "upstream sent a record that is not one, or changes that do not decode or are damaged");
        }
        let mut pulled_heads = HashMap::new();
        for doc in &received.docs {
            let base = ledger.acked(&doc.id)?;
            pulled_heads.insert(doc.id, frontier(&base, &doc.graph()));
        }
        ledger.set_checkpoint(next)?;
        let repairs = &mut self.repairs;
        let results = self.records.apply_remote(
            received.docs,
            |_| true,
            |results| {
                for (id, result) in results {
                    match result {
                        RemoteResult::Applied | RemoteResult::Unchanged => {
                            if let Some(heads) = pulled_heads.remove(id) {
                                ledger.set_acked(id, &heads);
                            }
                        }
                        // Recorded with the checkpoint that skips past it, so a
                        // cut here cannot lose it.
                        RemoteResult::MissingDeps => repairs.start(&mut ledger, *id),
                        _ => {}
                    }
                }
                ledger.take_writes()
            },
        )?;
        Ok(results
            .iter()
            .filter(|(_, r)| *r == RemoteResult::Applied)
            .count())
    }

    /// Forget everything known about the upstream: the next exchanges push
    /// every record in full, pull everything in scope and offer every file.
    fn reset(&mut self, mut ledger: Ledger<'_>, epoch: [u8; 16]) -> Result<Exchange, SyncError> {
        ledger.forget_upstream(epoch)?;
        ledger.commit()?;
        self.repairs.clear();
        tracing::warn!("upstream did not recognise our checkpoint; resending everything");
        Ok(Exchange {
            more: true,
            reset: true,
            ..Default::default()
        })
    }
}
