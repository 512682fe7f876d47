//! Test and bench hooks for `exec`: push a revision, inject `sync` faults, tune its run time.

use std::time::Duration;

use super::SimHandle;
use super::revisions::{ExecState, SyncFault};
use super::shared::lock;

impl SimHandle {
    /// "The web app pushed `sha` to the app's branch": the next `sync` on one of the app's
    /// machines fetches it and answers with it.
    pub fn push_revision(&self, app: &str, sha: &str) {
        lock(&self.shared.exec).pushed.insert(app.to_owned(), sha.to_owned());
    }

    /// The revision machine `id` of `app` serves (as of its last `sync`).
    pub fn served_revision(&self, app: &str, id: &str) -> String {
        let st = lock(&self.shared.exec);
        st.served.get(id).cloned().unwrap_or_else(|| ExecState::initial(app))
    }

    /// Makes every `sync` on the app's machines go wrong this way; `None` clears it.
    pub fn set_sync_fault(&self, app: &str, fault: Option<SyncFault>) {
        let mut st = lock(&self.shared.exec);
        match fault {
            Some(f) => st.faults.insert(app.to_owned(), f),
            None => st.faults.remove(app),
        };
    }

    /// How long a simulated `sync` runs inside the machine (default
    /// [`crate::DEFAULT_SYNC_TIME`]), on top of the API latency.
    pub fn set_sync_time(&self, run: Duration) {
        lock(&self.shared.exec).sync_time = Some(run);
    }
}
