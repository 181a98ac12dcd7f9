//! The engine's sessions: the live ones, bounded in total, per aggregate and per creating
//! owner, and the finished ones, kept (in a bounded first-in first-out list) so that late
//! readers can still fetch the result.
//!
//! Threat: anyone holding the session table full, so that nobody else can sign. A finished
//! session (completed, failed, aborted or expired) stops counting against any bound the moment
//! it finishes; in-flight sessions are capped per aggregate and per creating owner (creation
//! needs that owner's signature, checked by the caller), so one owner, or one aggregate,
//! cannot take every slot.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, TryLockError};

use crate::error::Error;
use crate::keys::AggregateId;
use crate::session::{Session, SessionId};
use crate::{
    MAX_FINISHED_SESSIONS, MAX_SESSIONS, MAX_SESSIONS_PER_AGGREGATE, MAX_SESSIONS_PER_OWNER,
};

struct Entry {
    session: Arc<Mutex<Session>>,
    aggregate: AggregateId,
    creator: [u8; 32],
    finished: bool,
}

#[derive(Default)]
pub(crate) struct Table {
    entries: HashMap<SessionId, Entry>,
    /// Finished sessions, oldest first (may name ids already removed).
    finished: VecDeque<SessionId>,
}

impl Table {
    /// Refuses a new session that would exceed a bound (after `prune`).
    pub(crate) fn admit(&self, aggregate: &AggregateId, creator: &[u8; 32]) -> Result<(), Error> {
        let live = || self.entries.values().filter(|e| !e.finished);
        if live().count() >= MAX_SESSIONS {
            return Err(Error::TooManySessions);
        }
        if live().filter(|e| e.aggregate == *aggregate).count() >= MAX_SESSIONS_PER_AGGREGATE {
            return Err(Error::SessionQuota("sessions in flight on this aggregate"));
        }
        if live().filter(|e| e.creator == *creator).count() >= MAX_SESSIONS_PER_OWNER {
            return Err(Error::SessionQuota(
                "sessions in flight created by this owner",
            ));
        }
        Ok(())
    }

    pub(crate) fn insert(
        &mut self,
        id: SessionId,
        session: Session,
        aggregate: AggregateId,
        creator: [u8; 32],
    ) {
        self.entries.insert(
            id,
            Entry {
                session: Arc::new(Mutex::new(session)),
                aggregate,
                creator,
                finished: false,
            },
        );
    }

    /// The sessions in flight on `aggregate`.
    pub(crate) fn live_on(&self, aggregate: &AggregateId) -> Vec<SessionId> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.finished && e.aggregate == *aggregate)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn get(&self, id: &SessionId) -> Option<Arc<Mutex<Session>>> {
        self.entries.get(id).map(|e| e.session.clone())
    }

    /// Marks a session finished: it frees its slot now, and is forgotten once
    /// `MAX_FINISHED_SESSIONS` newer ones have finished (or at its expiry).
    pub(crate) fn finish(&mut self, id: &SessionId) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if e.finished {
            return;
        }
        e.finished = true;
        self.finished.push_back(*id);
        while self.finished.len() > MAX_FINISHED_SESSIONS {
            if let Some(old) = self.finished.pop_front()
                && self.entries.get(&old).is_some_and(|e| e.finished)
            {
                self.entries.remove(&old);
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &SessionId) -> Option<Arc<Mutex<Session>>> {
        let e = self.entries.remove(id)?;
        if e.finished {
            self.finished.retain(|f| f != id);
        }
        Some(e.session)
    }

    /// Applies expiry to every idle session: live ones that just finished free their slot,
    /// and sessions past `expires_at` are forgotten. Returns how many were forgotten.
    pub(crate) fn prune(&mut self, now: u64) -> usize {
        let mut just_finished = Vec::new();
        let before = self.entries.len();
        self.entries.retain(|id, e| match e.session.try_lock() {
            Ok(mut g) => {
                g.refresh(now);
                if g.is_terminal() && !e.finished {
                    just_finished.push(*id);
                }
                now < g.expires_at
            }
            // Busy with a call right now: not idle, keep it for the next sweep.
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Poisoned(_)) => false,
        });
        let removed = before - self.entries.len();
        for id in just_finished {
            self.finish(&id);
        }
        let entries = &self.entries;
        self.finished.retain(|id| entries.contains_key(id));
        removed
    }

    /// Sessions still in flight.
    pub(crate) fn live(&self) -> usize {
        self.entries.values().filter(|e| !e.finished).count()
    }
}
