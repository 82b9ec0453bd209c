//! The blank-node rule: a voter whose Raft state began empty must not help elect a leader
//! until it holds the committed log.
//!
//! A voter that lost its data dir and restarts with an empty log and no vote would grant its
//! vote to any candidate (every log is at least as up to date as an empty one). With one other
//! voter lagging, that elects a leader without an entry the wiped voter had helped commit, and
//! the entry is lost. So a node whose store opened **blank** ([`LogStore::is_blank`]):
//! - refuses every vote request, except a brand-new cluster's (the candidate's last log id is
//!   none or index 0: the cluster's initialisation, where every node is blank). The refusal is
//!   made here, where vote requests are dispatched to openraft, as a `VoteResponse` with
//!   `vote_granted = false`, this node's vote and last log id;
//! - starts no election once its log holds more than the initial membership (index 0):
//!   its log may lack committed entries too. With nothing past index 0 it may campaign, as
//!   the initialising node of a brand-new cluster must until a quorum is up; such a candidate
//!   can only win the votes of blank nodes;
//! - stops being blank, durably ([`LogStore::leave_blank`]), once a leader's AppendEntries
//!   succeeded that carried the leader's log up to its commit index (`leader_commit` at most the
//!   last index the request leaves in this log), once a snapshot install left this log at least
//!   at the snapshot's last log id, or once this node, as leader, applied an entry of its own
//!   term (only the initialising node of a brand-new cluster can lead while blank).
//!
//! Shared by the RPC server's tasks and the leadership watch on the control plane's runtime.

use crate::log_store::LogStore;
use crate::types::{LogId, Raft, TypeConfig};
use openraft::ServerState;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct BlankGuard {
    pub store: LogStore,
    pub raft: Raft,
}

impl std::fmt::Debug for BlankGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlankGuard").field("blank", &self.store.is_blank()).finish_non_exhaustive()
    }
}

/// Whether a blank node whose log ends at `last` may start elections.
pub fn blank_may_elect(last: Option<LogId>) -> bool {
    last.is_none_or(|l| l.index == 0)
}

/// Whether a blank node may vote for a candidate whose last log id is `last`: only in a
/// brand-new cluster.
pub fn blank_may_vote(last: Option<LogId>) -> bool {
    last.is_none_or(|l| l.index == 0)
}

/// Whether a successful AppendEntries leaves this log holding the leader's log up to the
/// leader's commit index.
pub fn covers_commit(rpc: &AppendEntriesRequest<TypeConfig>) -> bool {
    let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
    rpc.leader_commit.is_none_or(|c| last.is_some_and(|l| c.index <= l.index))
}

impl BlankGuard {
    /// The refusal a blank node answers `rpc` with, if it must refuse it.
    pub fn refusal(&self, rpc: &VoteRequest<u64>) -> Option<VoteResponse<u64>> {
        if !self.store.is_blank() || blank_may_vote(rpc.last_log_id) {
            return None;
        }
        let (vote, last) = self.store.vote_and_last_log_id();
        tracing::info!("blank node: refusing the vote of {} (its log is not known to hold ours)", rpc.vote);
        Some(VoteResponse::new(vote.unwrap_or_default(), last, false))
    }

    /// Serves an AppendEntries, leaving the blank state if it covered the leader's commit.
    pub async fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<u64>, RaftError<u64>> {
        let blank = self.store.is_blank();
        if blank && rpc.entries.last().is_some_and(|e| e.log_id.index > 0) {
            self.stop_electing();
        }
        let covers = blank && covers_commit(&rpc);
        let result = self.raft.append_entries(rpc).await;
        // The store fsyncs an append before openraft answers, so success means durable.
        if covers && matches!(result, Ok(AppendEntriesResponse::Success)) {
            self.leave("caught up with the leader's commit");
        }
        result
    }

    /// Serves an InstallSnapshot chunk, leaving the blank state once the snapshot is installed.
    pub async fn install_snapshot(
        &self,
        rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        let last = rpc.meta.last_log_id;
        if self.store.is_blank() && last.is_some_and(|l| l.index > 0) {
            self.stop_electing();
        }
        let result = self.raft.install_snapshot(rpc).await;
        // Only once the store shows it: later AppendEntries clear it otherwise.
        if result.is_ok() && self.store.is_blank() && self.store.vote_and_last_log_id().1 >= last {
            self.leave("installed the leader's snapshot");
        }
        result
    }

    /// Leaves the blank state once this node leads and applied an entry of its own term (it
    /// initialised a brand-new cluster). Ends when the node is blank no more.
    pub async fn watch_leadership(self) {
        let mut metrics = self.raft.metrics();
        loop {
            if !self.store.is_blank() {
                return;
            }
            let led = {
                let m = metrics.borrow_and_update();
                let own_term = m.last_applied.is_some_and(|a| a.leader_id.term == m.vote.leader_id.term);
                m.state == ServerState::Leader && own_term
            };
            if led {
                self.leave("leads and committed in its own term");
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// Turns elections off before the log (or a snapshot) grows past index 0 while blank.
    fn stop_electing(&self) {
        self.raft.runtime_config().elect(false);
        // `leave` may have run meanwhile: it turned them on before this turned them off.
        if !self.store.is_blank() {
            self.raft.runtime_config().elect(true);
        }
    }

    fn leave(&self, why: &str) {
        match self.store.leave_blank() {
            Ok(true) => {
                tracing::info!("blank node {why}: votes and elects again");
                self.raft.runtime_config().elect(true);
            }
            Ok(false) => {}
            // Still blank, which is safe: a later append tries again.
            Err(e) => tracing::warn!("cannot record that the node caught up: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Entry, Vote};
    use openraft::{CommittedLeaderId, EntryPayload};

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn request(prev: Option<u64>, entries: &[u64], commit: Option<u64>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: prev.map(log_id),
            entries: entries
                .iter()
                .map(|&i| Entry { log_id: log_id(i), payload: EntryPayload::Blank })
                .collect(),
            leader_commit: commit.map(log_id),
        }
    }

    #[test]
    fn a_blank_node_votes_only_for_a_brand_new_clusters_candidate() {
        assert!(blank_may_vote(None));
        assert!(blank_may_vote(Some(log_id(0))));
        assert!(!blank_may_vote(Some(log_id(1))));
    }

    #[test]
    fn an_append_covers_the_commit_only_when_it_reaches_it() {
        assert!(covers_commit(&request(Some(3), &[4, 5], Some(5))));
        assert!(covers_commit(&request(Some(5), &[], Some(4))), "a heartbeat past the commit");
        assert!(!covers_commit(&request(Some(1), &[2, 3], Some(5))), "a batch short of the commit");
        assert!(!covers_commit(&request(None, &[], Some(0))));
        assert!(covers_commit(&request(None, &[], None)), "nothing committed yet");
    }
}
