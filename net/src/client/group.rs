//! A consumer in a consumer group: [`GroupConsumer::subscribe`] joins the group, and each
//! [`poll`](GroupConsumer::poll) heartbeats when due, takes on the partitions the coordinator
//! hands it, gives up those it must, commits positions (automatically every
//! `auto_commit_interval_ms`, or when the application says), and reads.
//!
//! Rebalances are incremental (see [`crate::groups`]): the consumer keeps reading the
//! partitions it keeps. A partition it must give up is committed (with auto-commit) and
//! dropped at once, and the next heartbeat goes out right away to say so, so that its new owner
//! gets it quickly. A member the coordinator no longer knows (its session expired) or fenced
//! loses every partition without committing, and joins again.
//!
//! Delivery is at least once: a record is committed only after `poll` handed it out, so a
//! crash between the two replays it.

use super::connection::Target;
use super::consumer::{Consumer, ConsumerConfig, ConsumerRecord, Seek};
use super::coordinator::CoordinatorLink;
use super::error::{ClientError, Result};
use crate::ErrorCode;
use crate::groups::{GroupHeartbeat, GroupRequest, GroupResponse, OffsetCommitEntry, TopicAssignment};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// A partition of a topic.
pub type TopicPartition = (String, u32);

/// Where a partition the group has no committed offset for is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    Earliest,
    #[default]
    Latest,
    /// Fail: the application must commit or seek first.
    None,
}

impl std::str::FromStr for OffsetReset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(Self::Earliest),
            "latest" => Ok(Self::Latest),
            "none" => Ok(Self::None),
            _ => Err(format!("offset reset must be earliest, latest or none, got {s:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub group: String,
    /// Static membership: a consumer that restarts with the same id within its session takes
    /// its partitions back without a rebalance.
    pub instance_id: Option<String>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// `range`, `roundrobin` or `sticky` (the default); the first member's choice is the group's.
    pub assignor: Option<String>,
    pub auto_commit: bool,
    pub auto_commit_interval_ms: u64,
    pub offset_reset: OffsetReset,
    pub consumer: ConsumerConfig,
}

impl GroupConfig {
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            instance_id: None,
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 60_000,
            assignor: None,
            auto_commit: true,
            auto_commit_interval_ms: 5_000,
            offset_reset: OffsetReset::Latest,
            consumer: ConsumerConfig::default(),
        }
    }
}

/// What happened to the consumer's partitions, for the application (see
/// [`GroupConsumer::take_events`]).
#[derive(Debug)]
pub enum GroupEvent {
    /// Partitions now read by this consumer.
    Assigned(Vec<TopicPartition>),
    /// Partitions given up in a rebalance, committed first with auto-commit.
    Revoked(Vec<TopicPartition>),
    /// Partitions taken away without a commit: the consumer was fenced or its session expired.
    Lost(Vec<TopicPartition>),
    /// A commit queued with [`GroupConsumer::commit_async`] failed.
    CommitFailed(ClientError),
}

/// A consumer of a group. Owned by one task; not shared.
#[derive(Debug)]
pub struct GroupConsumer {
    config: GroupConfig,
    topics: Vec<String>,
    consumer: Consumer,
    coordinator: CoordinatorLink,
    member_id: String,
    member_epoch: i32,
    owned: BTreeSet<TopicPartition>,
    /// What the coordinator last said this member should own; `owned` moves towards it at every
    /// heartbeat and poll, so a partition whose taking on failed (a leader move) is taken later.
    target: BTreeSet<TopicPartition>,
    /// `owned` changed since the last heartbeat: the next goes out at once.
    owned_changed: bool,
    /// Counts the times the member lost its partitions (fenced or forgotten): a commit prepared
    /// before a loss is not sent after it.
    losses: u64,
    next_heartbeat: Instant,
    next_auto_commit: Instant,
    /// Positions committed last, by partition.
    committed: BTreeMap<TopicPartition, u64>,
    commit_queued: bool,
    events: VecDeque<GroupEvent>,
}

impl GroupConsumer {
    /// Joins `config.group` subscribed to `topics`, and takes the partitions its first answer
    /// hands it.
    pub async fn subscribe(target: &Target, config: GroupConfig, topics: &[&str]) -> Result<Self> {
        if topics.is_empty() {
            return Err(ClientError::InvalidArgument("subscribe to at least one topic".into()));
        }
        let consumer = Consumer::connect(target, config.consumer.clone()).await?;
        let coordinator = CoordinatorLink::new(target, &config.group, config.consumer.retry_backoff_ms);
        let now = Instant::now();
        let mut c = Self {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            consumer,
            coordinator,
            member_id: String::new(),
            member_epoch: 0,
            owned: BTreeSet::new(),
            target: BTreeSet::new(),
            owned_changed: false,
            losses: 0,
            next_heartbeat: now,
            next_auto_commit: now + Duration::from_millis(config.auto_commit_interval_ms),
            committed: BTreeMap::new(),
            commit_queued: false,
            events: VecDeque::new(),
            config,
        };
        c.heartbeat().await?;
        Ok(c)
    }

    /// Records of the partitions this consumer owns, waiting up to `timeout_ms`; heartbeats,
    /// rebalances and automatic commits happen here, so call it at least every heartbeat
    /// interval (and well within `session_timeout_ms`).
    pub async fn poll(&mut self, timeout_ms: u32) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms.into());
        loop {
            // A partition whose taking on failed is tried again at the next heartbeat, not at
            // every poll: each attempt may wait on a leader move.
            if Instant::now() >= self.next_heartbeat {
                self.heartbeat().await?;
            }
            self.commit_if_due().await?;
            let until_heartbeat = self.next_heartbeat.saturating_duration_since(Instant::now());
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(until_heartbeat);
            let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
            let records = match self.owned.is_empty() {
                true => {
                    tokio_rt::time::sleep(wait).await;
                    Vec::new()
                }
                false => match self.consumer.poll(wait_ms).await {
                    Err(e @ ClientError::Server { code: ErrorCode::OffsetOutOfRange, .. }) => {
                        let Some(tp) = self.consumer.take_failed() else { return Err(e) };
                        self.reset_out_of_range(tp).await?;
                        Vec::new()
                    }
                    r => r?,
                },
            };
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    /// What happened to the consumer's partitions since the last call.
    pub fn take_events(&mut self) -> Vec<GroupEvent> {
        self.events.drain(..).collect()
    }

    /// The partitions this consumer owns now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.owned.iter().cloned().collect()
    }

    /// The next offset this consumer reads from an owned partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.consumer.position(topic, partition)
    }

    /// The member id the coordinator gave this consumer, and its epoch.
    pub fn member(&self) -> (&str, i32) {
        (&self.member_id, self.member_epoch)
    }

    /// The group's committed offset of a partition, asked of the coordinator.
    pub async fn committed(&mut self, topic: &str, partition: u32) -> Result<Option<u64>> {
        let offsets = self.fetch_committed(&[(topic.to_owned(), partition)]).await?;
        Ok(offsets.get(&(topic.to_owned(), partition)).copied())
    }

    /// Commits the position of every owned partition, and waits for the coordinator to have it
    /// durably. Fails `UnknownMemberId` or `FencedMemberEpoch` once the consumer was fenced.
    pub async fn commit(&mut self) -> Result<()> {
        let positions = self.positions(self.owned.iter());
        self.commit_positions(positions, true).await
    }

    /// Commits these offsets (each the next offset to read of its partition) of partitions this
    /// consumer owns, and waits for the coordinator to have them durably.
    pub async fn commit_offsets(&mut self, offsets: Vec<(TopicPartition, u64)>) -> Result<()> {
        let offsets = offsets.into_iter().filter(|(tp, _)| self.owned.contains(tp)).collect();
        self.commit_positions(offsets, true).await
    }

    /// Queues a commit of every owned partition's position for the next `poll`; a failure is
    /// reported as [`GroupEvent::CommitFailed`].
    pub fn commit_async(&mut self) {
        self.commit_queued = true;
    }

    /// Commits (with auto-commit) and leaves the group: its partitions go to the others at once.
    /// A static member leaves for a while instead: its partitions wait for it until its session
    /// expires.
    pub async fn close(mut self) -> Result<()> {
        let committed = match self.config.auto_commit && self.member_epoch > 0 {
            true => self.commit().await,
            false => Ok(()),
        };
        // The leave goes out whatever the commit did: a member that lingers holds its
        // partitions from the others for a whole session.
        self.leave().await?;
        committed
    }

    /// Leaves the group without committing (as [`close`](Self::close) otherwise does): for an
    /// application that could not process what it polled last.
    pub async fn leave(mut self) -> Result<()> {
        if self.member_id.is_empty() {
            return Ok(()); // Never joined, or forgotten: nothing to leave.
        }
        self.member_epoch = if self.config.instance_id.is_some() { -2 } else { -1 };
        let req = self.heartbeat_request();
        let resp = self.coordinator.call(&GroupRequest::Heartbeat(req)).await?;
        match resp.error() {
            // Already removed (its session ended): it is out of the group, as asked.
            (ErrorCode::UnknownMemberId, _) => Ok(()),
            (code, message) => ClientError::check(code, message.to_owned()),
        }
    }
}

impl GroupConsumer {
    /// A heartbeat. It always says what the member owns: the coordinator then answers the
    /// assignment again when they differ, so an answer lost on the way strands nothing.
    fn heartbeat_request(&mut self) -> GroupHeartbeat {
        let joining = self.member_epoch == 0;
        GroupHeartbeat {
            group: self.config.group.clone(),
            member_id: self.member_id.clone(),
            instance_id: self.config.instance_id.clone(),
            member_epoch: self.member_epoch,
            topics: joining.then(|| self.topics.clone()),
            owned: Some(to_assignments(&self.owned)),
            session_timeout_ms: self.config.session_timeout_ms,
            rebalance_timeout_ms: self.config.rebalance_timeout_ms,
            assignor: joining.then(|| self.config.assignor.clone()).flatten(),
        }
    }

    /// One heartbeat, and what its answer asks: partitions to give up (then another heartbeat
    /// at once, to say they are given up) or to take on. A fenced or forgotten member loses its
    /// partitions and joins again.
    async fn heartbeat(&mut self) -> Result<()> {
        let session = Duration::from_millis(self.config.session_timeout_ms.into());
        let joining_until = Instant::now() + session;
        loop {
            self.owned_changed = false;
            let req = self.heartbeat_request();
            let resp = self.coordinator.call(&GroupRequest::Heartbeat(req)).await?;
            let GroupResponse::Heartbeat {
                error,
                message,
                member_id,
                member_epoch,
                heartbeat_interval_ms,
                assignment,
            } = resp
            else {
                return Err(ClientError::InvalidArgument("unexpected answer to a heartbeat".into()));
            };
            match error {
                ErrorCode::None => {}
                ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch => {
                    tracing::warn!(group = %self.config.group, ?error, %message, "fenced; joining again");
                    // A member fenced for its epoch rejoins under its id (it takes its own place
                    // back); one the group forgot joins anew.
                    self.lose_all(error == ErrorCode::UnknownMemberId);
                    continue;
                }
                // A static member restarted before its predecessor's session ended waits for it.
                ErrorCode::UnreleasedInstanceId if Instant::now() < joining_until => {
                    tokio_rt::time::sleep(Duration::from_millis(self.config.consumer.retry_backoff_ms)).await;
                    continue;
                }
                _ => return ClientError::check(error, message),
            }
            self.member_id = member_id;
            self.member_epoch = member_epoch;
            let interval = Duration::from_millis(heartbeat_interval_ms.max(50).into());
            self.next_heartbeat = Instant::now() + interval;
            if let Some(assignment) = assignment {
                self.target = assignment
                    .into_iter()
                    .flat_map(|t| t.partitions.into_iter().map(move |p| (t.topic.clone(), p)))
                    .collect();
            }
            self.reconcile().await?;
            if !self.owned_changed {
                return Ok(());
            }
            // Tell the coordinator at once what changed, so moved partitions reach their new
            // owners without waiting a heartbeat interval.
        }
    }

    /// Moves what the member owns towards its target: gives up what it must, then takes on what
    /// it may. A partition whose taking on fails stays in the target, tried again next time.
    async fn reconcile(&mut self) -> Result<()> {
        let revoked: Vec<TopicPartition> = self.owned.difference(&self.target).cloned().collect();
        if !revoked.is_empty() {
            self.revoke(revoked).await?;
        }
        let added: Vec<TopicPartition> = self.target.difference(&self.owned).cloned().collect();
        if !added.is_empty() {
            self.take_on(added).await?;
        }
        Ok(())
    }

    /// Gives partitions up: their positions committed first with auto-commit.
    async fn revoke(&mut self, revoked: Vec<TopicPartition>) -> Result<()> {
        if self.config.auto_commit {
            let positions = self.positions(revoked.iter());
            if let Err(e) = self.commit_positions(positions, false).await {
                tracing::warn!(group = %self.config.group, error = %e, "commit before giving partitions up failed");
            }
        }
        for (topic, partition) in &revoked {
            self.consumer.unassign(topic, *partition);
            self.owned.remove(&(topic.clone(), *partition));
        }
        self.owned_changed = true;
        self.events.push_back(GroupEvent::Revoked(revoked));
        Ok(())
    }

    /// Takes partitions on, each from the group's committed offset or the reset policy.
    async fn take_on(&mut self, added: Vec<TopicPartition>) -> Result<()> {
        let committed = self.fetch_committed(&added).await?;
        let mut taken = Vec::with_capacity(added.len());
        for tp in &added {
            let seek = match (committed.get(tp), self.config.offset_reset) {
                (Some(&o), _) => Seek::Offset(o),
                (None, OffsetReset::Earliest) => Seek::Earliest,
                (None, OffsetReset::Latest) => Seek::Latest,
                (None, OffsetReset::None) => {
                    let m = format!("no committed offset for {}/{} and offset reset is none", tp.0, tp.1);
                    return Err(ClientError::InvalidArgument(m));
                }
            };
            if let Err(e) = self.consumer.assign(&tp.0, tp.1, seek).await {
                tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "cannot take a partition on yet");
                continue;
            }
            if let Some(&o) = committed.get(tp) {
                self.committed.insert(tp.clone(), o);
            }
            self.owned.insert(tp.clone());
            taken.push(tp.clone());
        }
        if !taken.is_empty() {
            self.owned_changed = true;
            self.events.push_back(GroupEvent::Assigned(taken));
        }
        Ok(())
    }

    /// A position outside its partition (retention deleted past a group's commit, or the topic
    /// was made anew) starts over where the reset policy says, as Kafka's `auto.offset.reset`.
    /// Only the partition the node refused is moved: the node knows its bounds (a partition
    /// with a lagging high watermark is not out of range for it).
    async fn reset_out_of_range(&mut self, (topic, partition): TopicPartition) -> Result<()> {
        let position = self.consumer.position(&topic, partition);
        let seek = match self.config.offset_reset {
            OffsetReset::Earliest => Seek::Earliest,
            OffsetReset::Latest => Seek::Latest,
            OffsetReset::None => {
                let m =
                    format!("{topic}/{partition} at {position:?} is out of range, and offset reset is none");
                return Err(ClientError::Server { code: ErrorCode::OffsetOutOfRange, message: m });
            }
        };
        tracing::warn!(%topic, partition, ?position, ?seek, "position out of range; resetting");
        self.consumer.seek(&topic, partition, seek).await
    }

    /// Every partition goes, uncommitted, and the consumer joins again: under its id when
    /// `forget_id` is false (fenced for its epoch), else anew (the group forgot it).
    fn lose_all(&mut self, forget_id: bool) {
        let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        for (topic, partition) in &lost {
            self.consumer.unassign(topic, *partition);
        }
        if !lost.is_empty() {
            self.events.push_back(GroupEvent::Lost(lost));
        }
        if forget_id {
            self.member_id.clear();
        }
        self.losses += 1;
        self.member_epoch = 0;
        self.target.clear();
        self.owned_changed = false;
    }

    async fn fetch_committed(&mut self, parts: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, u64>> {
        let req = GroupRequest::OffsetFetch { group: self.config.group.clone(), partitions: parts.to_vec() };
        match self.coordinator.call(&req).await? {
            GroupResponse::OffsetFetch { error, message, offsets } => {
                ClientError::check(error, message)?;
                Ok(offsets.into_iter().filter_map(|o| Some(((o.topic, o.partition), o.offset?))).collect())
            }
            _ => Err(ClientError::InvalidArgument("unexpected answer to an offset fetch".into())),
        }
    }

    /// The positions of `parts` that moved since their last commit.
    fn positions<'a>(&self, parts: impl Iterator<Item = &'a TopicPartition>) -> Vec<(TopicPartition, u64)> {
        parts
            .filter_map(|tp| Some((tp.clone(), self.consumer.position(&tp.0, tp.1)?)))
            .filter(|(tp, pos)| self.committed.get(tp) != Some(pos))
            .collect()
    }

    /// Commits `positions` in the member's epoch. A commit refused as stale (the epoch moved on
    /// in a heartbeat it has not sent yet) is sent again after one.
    ///
    /// After that heartbeat only the partitions still owned are committed, and none if the
    /// member was fenced meanwhile: positions of partitions it no longer holds must not move
    /// another member's offsets. `may_heartbeat` is false inside a heartbeat's own reconcile.
    async fn commit_positions(
        &mut self,
        mut positions: Vec<(TopicPartition, u64)>,
        may_heartbeat: bool,
    ) -> Result<()> {
        for attempt in 0..2 {
            if positions.is_empty() {
                return Ok(());
            }
            let offsets = positions
                .iter()
                .map(|((topic, partition), offset)| OffsetCommitEntry {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                    metadata: String::new(),
                })
                .collect();
            let req = GroupRequest::OffsetCommit {
                group: self.config.group.clone(),
                member_id: self.member_id.clone(),
                member_epoch: self.member_epoch,
                offsets,
            };
            let resp = self.coordinator.call(&req).await?;
            let (code, message) = resp.error();
            if code == ErrorCode::StaleMemberEpoch && attempt == 0 && may_heartbeat {
                let losses = self.losses;
                Box::pin(self.heartbeat()).await?;
                if self.losses != losses || self.member_epoch <= 0 {
                    let m = "fenced before the commit could be sent again".to_owned();
                    return Err(ClientError::Server { code: ErrorCode::FencedMemberEpoch, message: m });
                }
                positions.retain(|(tp, _)| self.owned.contains(tp));
                continue;
            }
            ClientError::check(code, message.to_owned())?;
            self.committed.extend(positions);
            return Ok(());
        }
        unreachable!("the second attempt returns")
    }

    async fn commit_if_due(&mut self) -> Result<()> {
        let due = self.config.auto_commit && Instant::now() >= self.next_auto_commit;
        if !(due || self.commit_queued) || self.member_epoch <= 0 {
            return Ok(());
        }
        let queued = std::mem::take(&mut self.commit_queued);
        self.next_auto_commit = Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
        match self.commit().await {
            Ok(()) => Ok(()),
            Err(e) if queued => {
                self.events.push_back(GroupEvent::CommitFailed(e));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(group = %self.config.group, error = %e, "automatic commit failed");
                Ok(())
            }
        }
    }
}

fn to_assignments(parts: &BTreeSet<TopicPartition>) -> Vec<TopicAssignment> {
    let mut out: Vec<TopicAssignment> = Vec::new();
    for (topic, partition) in parts {
        match out.last_mut() {
            Some(t) if &t.topic == topic => t.partitions.push(*partition),
            _ => out.push(TopicAssignment { topic: topic.clone(), partitions: vec![*partition] }),
        }
    }
    out
}
