//! The follower's side of a replica: the fetch loop and truncation to the leader's log
//! (KIP-279: repeated until the logs agree).

use crate::ids::NodeId;
use crate::log_ops::{LogFailure, LogOp};
use crate::messages::{FetchAnswer, FetchBody, FetchRequest};
use crate::mutation::{Mutation, active};
use crate::replica::{Output, Replica, Role};

/// A fetch sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    request_id: u64,
    sent_ms: u64,
}

/// The follower's state in one leader epoch.
#[derive(Debug)]
pub(crate) struct FollowerState {
    pub(crate) leader: NodeId,
    in_flight: Option<InFlight>,
    /// No fetch before this (a backoff after an empty or refused answer).
    pub(crate) fetch_after_ms: u64,
    /// The durable end the last fetch reported: a flush past it is worth a fetch at once.
    reported_durable: u64,
    /// The leader's high watermark from its last answer with records.
    leader_high_watermark: u64,
    /// The leader's log start from its last answer with records: this log follows it (see
    /// [`Replica::log_start_to_follow`](crate::Replica::log_start_to_follow)).
    pub(crate) leader_log_start: u64,
    /// The log agrees with the leader's below this: the fetch offset of an answer with records,
    /// and what was appended from it. Only this much of the log may be exposed.
    pub(crate) agreed_end: u64,
    /// The fetch answer whose batches are being appended.
    appending: Option<u64>,
    /// Set only by [`Mutation::SkipTruncation`]: the epoch the follower claims its log ends in.
    claims_epoch: Option<u32>,
}

impl FollowerState {
    pub(crate) fn new(leader: NodeId) -> Self {
        Self {
            leader,
            in_flight: None,
            fetch_after_ms: 0,
            reported_durable: 0,
            leader_high_watermark: 0,
            leader_log_start: 0,
            agreed_end: 0,
            appending: None,
            claims_epoch: None,
        }
    }
}

/// What to do with the batches that came with a fetch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerVerdict {
    /// Keep them: [`LogOp::AppendFetched`] with this answer's request id will ask for them.
    Append,
    /// Drop them (a stale, refused or diverging answer).
    Discard,
}

impl Replica {
    /// Sends a fetch when none is under way, the log end is settled, and either the backoff
    /// passed or a flush made more durable than the last fetch reported. A fetch unanswered
    /// for `fetch_timeout_ms` is taken as lost.
    pub(crate) fn follower_drive(&mut self, now_ms: u64) {
        let unsettled = self.log_end_unsettled();
        let last_batch_epoch = self.last_batch_epoch();
        let Role::Follower(f) = &mut self.role else { return };
        if let Some(i) = f.in_flight
            && now_ms.saturating_sub(i.sent_ms) >= self.config.fetch_timeout_ms
        {
            f.in_flight = None;
        }
        let due = now_ms >= f.fetch_after_ms || self.durable_end > f.reported_durable;
        if f.in_flight.is_some() || unsettled || !due {
            return;
        }
        let durable_offset =
            if active(Mutation::AckBeforeDurable) { self.offsets.log_end() } else { self.durable_end };
        let last_fetched_epoch = f.claims_epoch.or(last_batch_epoch);
        let leader = f.leader;
        let request_id = self.request_id();
        let request = FetchRequest {
            partition: self.partition,
            replica: self.id,
            request_id,
            leader_epoch: self.offsets.leader_epoch(),
            fetch_offset: self.offsets.log_end(),
            log_start: self.offsets.log_start(),
            last_fetched_epoch,
            durable_offset,
        };
        let Role::Follower(f) = &mut self.role else { unreachable!("checked above") };
        f.in_flight = Some(InFlight { request_id, sent_ms: now_ms });
        f.reported_durable = durable_offset;
        self.out.push_back(Output::Fetch { to: leader, request });
    }

    /// The answer to this follower's fetch. Stale answers (another fetch, another leader,
    /// another epoch, a log end that moved) are dropped; records are appended, a divergence
    /// truncates, a refusal backs off.
    pub fn handle_fetch_answer(&mut self, now_ms: u64, from: NodeId, answer: &FetchAnswer) -> AnswerVerdict {
        let (epoch, log_end) = (self.offsets.leader_epoch(), self.offsets.log_end());
        let Role::Follower(f) = &mut self.role else { return AnswerVerdict::Discard };
        if from != f.leader || f.in_flight.is_none_or(|i| i.request_id != answer.request_id) {
            return AnswerVerdict::Discard;
        }
        f.in_flight = None;
        let backoff = now_ms + self.config.fetch_backoff_ms;
        if answer.leader_epoch != epoch {
            f.fetch_after_ms = backoff;
            return AnswerVerdict::Discard;
        }
        let verdict = match answer.body {
            FetchBody::Records { fetch_offset } if fetch_offset == log_end => {
                // A diverging answer says nothing of which offsets agree: its high watermark may
                // cover offsets this log holds from another epoch, about to be truncated.
                f.leader_high_watermark = f.leader_high_watermark.max(answer.high_watermark);
                f.leader_log_start = f.leader_log_start.max(answer.log_start);
                f.agreed_end = f.agreed_end.max(fetch_offset);
                f.appending = Some(answer.request_id);
                self.queue(LogOp::AppendFetched { request_id: answer.request_id });
                AnswerVerdict::Append
            }
            FetchBody::Records { .. } | FetchBody::Refused(_) => {
                f.fetch_after_ms = backoff;
                AnswerVerdict::Discard
            }
            FetchBody::Diverging { .. } if active(Mutation::SkipTruncation) => {
                f.claims_epoch = Some(answer.leader_epoch);
                AnswerVerdict::Discard
            }
            // The leader knows no epoch as old as this log's last: retention deleted it. This
            // log's batches at or past the leader's log start are of older epochs than the
            // leader's there, so never committed: cut them; what is left below cannot be shown
            // to agree, so the log then starts over at the leader's log start.
            FetchBody::Diverging { epoch: None, end_offset } if end_offset >= log_end => {
                self.queue(LogOp::StartOver { offset: end_offset });
                AnswerVerdict::Discard
            }
            FetchBody::Diverging { epoch: None, end_offset } => {
                self.queue(LogOp::Truncate { offset: end_offset });
                AnswerVerdict::Discard
            }
            FetchBody::Diverging { epoch, end_offset } => {
                let offset = self.truncation_point(epoch, end_offset);
                self.queue(LogOp::Truncate { offset });
                AnswerVerdict::Discard
            }
        };
        self.drive(now_ms);
        verdict
    }

    /// Where to cut a log the leader says diverges after `end_offset` of `epoch` (KIP-279):
    /// if this log has that epoch, at the earlier of the two ends of it; if not, at the end of
    /// its largest epoch below it, to ask again from there. Each cut is strictly below the log
    /// end, so the exchange ends.
    fn truncation_point(&self, epoch: Option<u32>, end_offset: u64) -> u64 {
        let log_end = self.offsets.log_end();
        let Some(epoch) = epoch else { unreachable!("an answer without an epoch starts the log over") };
        match self.epochs.end_offset_for(epoch, log_end) {
            Some(own) if own.epoch == epoch => own.end_offset.min(end_offset),
            Some(own) => own.end_offset,
            None => self.offsets.log_start(),
        }
    }

    pub(crate) fn on_fetched_appended(
        &mut self,
        now_ms: u64,
        request_id: u64,
        empty: bool,
        failure: Option<LogFailure>,
    ) {
        self.failed |= failure.is_some_and(|f| f.log_failed);
        let log_end = self.offsets.log_end();
        if let Role::Follower(f) = &mut self.role {
            // Batches of this epoch's leader extend the agreement; an append from an earlier
            // role, finishing late, does not.
            if f.appending.take_if(|id| *id == request_id).is_some() && failure.is_none() {
                f.agreed_end = f.agreed_end.max(log_end);
            }
            // An empty answer means the follower caught up: wait before asking again.
            f.fetch_after_ms =
                if empty || failure.is_some() { now_ms + self.config.fetch_backoff_ms } else { now_ms };
        }
    }

    /// A follower's high watermark: the leader's, as far as this log holds it durably and
    /// agrees with the leader's.
    pub(crate) fn follower_high_watermark(&mut self) {
        let Role::Follower(f) = &self.role else { return };
        let hw = f.leader_high_watermark.min(self.durable_end).min(f.agreed_end);
        self.offsets.advance_high_watermark(hw);
    }
}
