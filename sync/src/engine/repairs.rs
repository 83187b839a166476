//! The downstream's repairs: records whose heads show missing dependencies on
//! one side, brought level with Automerge's own sync protocol, one message
//! each way per exchange.

use crate::engine::error::SyncError;
use crate::engine::ledger::Ledger;
use crate::engine::transfer::record_id;
use crate::integrity::sync_message_intact;
use crate::protocol::DocSyncMessage;
use crate::records::{Records, RecordsError};
use crate::store::DocStore;
use automerge::sync;
use std::collections::HashMap;
use tideline_schemas::RecordId;

/// Exchanges one repair may take within one sync before it waits for the next.
const MAX_REPAIR_ROUNDS: u32 = 16;

/// One record under repair.
struct Repair {
    state: sync::State,
    outgoing: Option<Vec<u8>>,
    rounds: u32,
}

impl Repair {
    fn new() -> Self {
        Repair {
            state: sync::State::new(),
            outgoing: None,
            rounds: 0,
        }
    }
}

/// The repairs of one sync run. Each is recorded in the ledger from when it
/// is found until it completes, so a cut sync resumes it.
#[derive(Default)]
pub struct Repairs {
    active: HashMap<RecordId, Repair>,
    /// Repairs set aside in this run (no progress, or refused); they stay
    /// recorded in the ledger and are tried again by the next run.
    parked: Vec<RecordId>,
}

impl Repairs {
    /// The repairs an earlier run left unfinished.
    pub fn resume(ledger: &Ledger<'_>) -> Self {
        let mut repairs = Repairs::default();
        match ledger.repairs() {
            Ok(ids) => {
                for id in ids {
                    repairs.active.insert(id, Repair::new());
                }
            }
            // Unreadable repair bookkeeping delays repairs; it must not stop sync.
            Err(e) => tracing::warn!(error = %e, "could not read pending repairs"),
        }
        repairs
    }

    /// Whether the record travels by a repair in this run, not by the feed.
    pub fn holds(&self, id: &RecordId) -> bool {
        self.active.contains_key(id) || self.parked.contains(id)
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn clear(&mut self) {
        self.active.clear();
        self.parked.clear();
    }

    /// Start repairing `id` (unless this run has set it aside), recording it.
    pub fn start(&mut self, ledger: &mut Ledger<'_>, id: RecordId) {
        ledger.add_repair(&id);
        if !self.parked.contains(&id) {
            self.active.entry(id).or_insert_with(Repair::new);
        }
    }

    /// The upstream refused the record: a repair will not succeed by repeating it.
    pub fn refused(&mut self, ledger: &mut Ledger<'_>, id: &RecordId) {
        if self.active.remove(id).is_some() {
            ledger.drop_repair(id);
        }
    }

    fn park(&mut self, id: RecordId) {
        self.active.remove(&id);
        self.parked.push(id);
    }

    /// The next message of each repair, for the request.
    pub fn messages<S: DocStore>(
        &mut self,
        records: &Records<S>,
    ) -> Result<Vec<DocSyncMessage>, SyncError> {
        let mut messages = Vec::new();
        for (id, repair) in self.active.iter_mut() {
            let message = match repair.outgoing.take() {
                Some(m) => Some(m),
                None => records.fallback_step(id, &mut repair.state, None, |_| true, &|_| false)?,
            };
            if let Some(message) = message {
                repair.rounds += 1;
                messages.push(DocSyncMessage {
                    id: id.to_string(),
                    message,
                });
            }
        }
        Ok(messages)
    }

    /// Take in the upstream's replies; a damaged or refused one sets its
    /// repair aside until the next run.
    pub fn receive<S: DocStore>(
        &mut self,
        records: &Records<S>,
        replies: Vec<DocSyncMessage>,
    ) -> Result<(), SyncError> {
        for msg in replies {
            let Some(id) = record_id(&msg.id) else {
                continue;
            };
            let Some(repair) = self.active.get_mut(&id) else {
                continue;
            };
            if !sync_message_intact(&msg.message) {
                tracing::warn!(record = %id, "repair message is damaged; retrying next sync");
                self.park(id);
                continue;
            }
            let step = records.fallback_step(
                &id,
                &mut repair.state,
                Some(&msg.message),
                |_| true,
                // What the upstream sends down is not checked for signatures.
                &|_| false,
            );
            match step {
                Ok(reply) => repair.outgoing = reply,
                Err(RecordsError::Store(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(record = %id, error = %e, "repair message refused; retrying next sync");
                    self.park(id);
                }
            }
        }
        Ok(())
    }

    /// A repair is done when neither side has anything left to say; the heads
    /// both sides then share become the record's acknowledged heads. A repair
    /// that has gone on too long waits for the next sync run.
    pub fn finish<S: DocStore>(
        &mut self,
        records: &Records<S>,
        ledger: &mut Ledger<'_>,
    ) -> Result<(), SyncError> {
        let mut done = Vec::new();
        let mut stalled = Vec::new();
        for (id, repair) in self.active.iter_mut() {
            if repair.outgoing.is_none() {
                repair.outgoing =
                    records.fallback_step(id, &mut repair.state, None, |_| true, &|_| false)?;
                if repair.outgoing.is_none() && repair.state.their_heads.is_some() {
                    done.push((*id, repair.state.shared_heads.clone()));
                    continue;
                }
            }
            if repair.rounds >= MAX_REPAIR_ROUNDS {
                stalled.push(*id);
            }
        }
        for (id, heads) in done {
            ledger.set_acked(&id, &heads);
            ledger.drop_repair(&id);
            self.active.remove(&id);
        }
        for id in stalled {
            tracing::warn!(record = %id, "repair made no progress; retrying next sync");
            self.park(id);
        }
        Ok(())
    }
}
