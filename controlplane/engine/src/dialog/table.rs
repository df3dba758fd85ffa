//! Dialog lookup by id (RFC 3261 §12.2: requests and responses find their dialog
//! by Call-ID and tags).

use std::collections::HashMap;

use super::{Dialog, DialogId, DialogState};
use crate::transaction::SipMsg;

/// All dialogs of one endpoint, keyed by [`DialogId`].
#[derive(Debug, Default)]
pub struct DialogTable {
    dialogs: HashMap<DialogId, Dialog>,
    created: u64,
    removed: u64,
}

impl DialogTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts (or replaces) a dialog; returns its id.
    pub fn insert(&mut self, dialog: Dialog) -> DialogId {
        let id = dialog.id.clone();
        if self.dialogs.insert(id.clone(), dialog).is_none() {
            self.created += 1;
        }
        id
    }

    /// A dialog by id.
    #[must_use]
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }

    /// A dialog by id, mutable.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.get_mut(id)
    }

    /// The dialog an incoming in-dialog request belongs to (To tag = our tag).
    pub fn for_request(&mut self, req: &SipMsg) -> Option<&mut Dialog> {
        let id = DialogId::of_incoming_request(req).ok().flatten()?;
        self.dialogs.get_mut(&id)
    }

    /// The dialog an incoming response belongs to (From tag = our tag).
    pub fn for_response(&mut self, resp: &SipMsg) -> Option<&mut Dialog> {
        let id = DialogId::of_incoming_response(resp).ok().flatten()?;
        self.dialogs.get_mut(&id)
    }

    /// Removes a dialog.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        let d = self.dialogs.remove(id);
        if d.is_some() {
            self.removed += 1;
        }
        d
    }

    /// Removes every dialog in state Terminated; returns how many.
    pub fn purge_terminated(&mut self) -> usize {
        let before = self.dialogs.len();
        self.dialogs
            .retain(|_, d| d.state != DialogState::Terminated);
        let n = before - self.dialogs.len();
        self.removed += n as u64;
        n
    }

    /// Live dialogs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    /// No live dialog.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// Dialogs created / removed so far (counters).
    #[must_use]
    pub fn counters(&self) -> (u64, u64) {
        (self.created, self.removed)
    }
}
