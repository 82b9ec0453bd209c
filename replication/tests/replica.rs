//! Scenario tests of the replica state machine, driven by hand over fake logs (see `common`).

mod common;

use common::{Cluster, Node, config, state};
use weir_replication::{
    Acks, AlterPartition, AppendedRange, ControllerError, FetchBody, FetchRefusal, FetchRequest, LogFailure,
    LogOp, NodeId, ReplicaError,
};

const RF3: &[u32] = &[0, 1, 2];

/// Three replicas over empty logs, led by 0 in epoch 1 with every replica in sync.
fn three_in_sync(min_insync: usize) -> Cluster {
    let mut c = Cluster::new(config(min_insync), &[&[], &[], &[]]);
    c.publish(&state(RF3, 0, 1, 1, RF3));
    c
}

/// A new leader records its epoch in the log before anything else, and appends only after the
/// log reported it.
#[test]
fn a_new_leader_begins_its_epoch_before_any_append() {
    let mut n = Node::new(0, config(1), &[(0, 3, 1)]);
    let incarnation = n.replica.incarnation();
    n.replica.handle_registration(0, incarnation, &state(RF3, 0, 2, 1, &[0]));
    n.replica.handle_produce(0, 1, Acks::Leader).unwrap();
    let first = n.take_op().unwrap();
    assert_eq!(first, LogOp::BeginEpoch { epoch: 2 });
    assert_eq!(n.replica.poll_log_op(), None, "one operation at a time");
    n.complete(0, first);
    assert_eq!(n.take_op(), Some(LogOp::AppendProduce { produce: 1, leader_epoch: 2 }));
}

/// acks=leader completes when the leader's own flush does, not at the append.
#[test]
fn acks_leader_completes_at_the_leaders_flush() {
    let mut c = three_in_sync(2);
    c.node(0).hold_flushes();
    c.produce(0, 1, Acks::Leader).unwrap();
    assert_eq!(c.node(0).log.end(), 1, "appended");
    assert_eq!(c.node(0).outcome(1), None, "not durable yet");
    let now = c.now_ms;
    c.node(0).release(now);
    c.settle();
    assert_eq!(c.node(0).outcome(1), Some(Ok(AppendedRange { base: 0, end: 1, epoch: 1 })));
}

/// acks=all waits for every ISR member's durable copy: a follower that appended but has not
/// flushed holds the produce (and the high watermark) back.
#[test]
fn acks_all_waits_for_every_isr_followers_durable_copy() {
    let mut c = three_in_sync(2);
    c.node(2).hold_flushes();
    c.produce(0, 1, Acks::All).unwrap();
    c.advance(100);
    assert_eq!(c.node(1).log.durable, 1);
    assert_eq!(c.node(2).log.end(), 1, "follower 2 appended");
    assert_eq!(c.node(2).log.durable, 0, "but did not flush");
    c.advance(100);
    assert_eq!(c.node(0).hw(), 0);
    assert_eq!(c.node(0).outcome(1), None);
    let now = c.now_ms;
    c.node(2).release(now);
    c.settle();
    assert_eq!(c.node(0).hw(), 1);
    assert_eq!(c.node(0).outcome(1), Some(Ok(AppendedRange { base: 0, end: 1, epoch: 1 })));
}

/// acks=all with fewer in-sync replicas than required is refused at once; nothing is appended.
/// acks=leader is still taken.
#[test]
fn acks_all_below_min_insync_is_refused_without_an_append() {
    let mut c = Cluster::new(config(2), &[&[], &[], &[]]);
    c.publish(&state(RF3, 0, 1, 1, &[0]));
    let refused = c.produce(0, 1, Acks::All);
    assert_eq!(refused, Err(ReplicaError::NotEnoughReplicas { in_sync: 1, required: 2 }));
    assert!(!c.node(0).ops.iter().any(|op| matches!(op, LogOp::AppendProduce { .. })));
    assert_eq!(c.node(0).log.end(), 0);
    assert_eq!(c.node(0).outcome(1), None, "a refused produce gets no later answer");
    c.produce(0, 2, Acks::Leader).unwrap();
    assert_eq!(c.node(0).outcome(2).map(|r| r.is_ok()), Some(true));
}

/// A fetch as follower `replica` at `fetch_offset` would send it in `leader_epoch`.
fn fetch(replica: u32, leader_epoch: u32, fetch_offset: u64) -> FetchRequest {
    FetchRequest {
        partition: common::PARTITION,
        replica: NodeId(replica),
        request_id: 99,
        leader_epoch,
        fetch_offset,
        log_start: fetch_offset,
        last_fetched_epoch: None,
        durable_offset: fetch_offset,
    }
}

/// KIP-320 fencing: the leader refuses a fetch from an older epoch and one from an epoch it has
/// not learned; a replica that does not lead refuses every fetch.
#[test]
fn fetches_from_another_epoch_or_to_a_non_leader_are_refused() {
    let mut c = Cluster::new(config(2), &[&[], &[], &[]]);
    c.publish(&state(RF3, 0, 5, 5, RF3));
    let refusal =
        |c: &mut Cluster, to: u32, epoch| c.node(to).replica.handle_fetch(0, &fetch(1, epoch, 0)).body;
    assert_eq!(refusal(&mut c, 0, 4), FetchBody::Refused(FetchRefusal::FencedLeaderEpoch));
    assert_eq!(refusal(&mut c, 0, 6), FetchBody::Refused(FetchRefusal::UnknownLeaderEpoch));
    assert_eq!(refusal(&mut c, 2, 5), FetchBody::Refused(FetchRefusal::NotLeader));
    assert_eq!(refusal(&mut c, 0, 5), FetchBody::Records { fetch_offset: 0 });
}

/// A deposed leader fails every pending produce at once (an appended one or one whose append
/// is under way: `LeadershipLost`; one only queued: `NotLeader`) and never completes any later,
/// even when the append under way lands and its followers' copies become durable.
#[test]
fn a_deposed_leader_fails_its_pending_produces_and_never_completes_them() {
    let mut c = three_in_sync(2);
    c.node(2).hold_flushes();
    c.produce(0, 1, Acks::All).unwrap();
    c.advance(100);
    let now = c.now_ms;
    let n0 = c.node(0);
    n0.replica.handle_produce(now, 2, Acks::All).unwrap();
    n0.replica.handle_produce(now, 3, Acks::Leader).unwrap();
    let under_way = n0.take_op().unwrap();
    assert_eq!(under_way, LogOp::AppendProduce { produce: 2, leader_epoch: 1 });
    n0.replica.handle_partition_state(now, &state(RF3, 1, 2, 2, RF3));
    n0.drain_outputs();
    assert_eq!(n0.outcome(1), Some(Err(ReplicaError::LeadershipLost)));
    assert_eq!(n0.outcome(2), Some(Err(ReplicaError::LeadershipLost)));
    let not_leader = ReplicaError::NotLeader { leader: Some(NodeId(1)), leader_epoch: 2 };
    assert_eq!(n0.outcome(3), Some(Err(not_leader)));
    n0.complete(now, under_way);
    c.node(2).release(now);
    c.advance(1_000);
    assert_eq!(c.node(0).done.len(), 3, "nothing completes after the deposition: {:?}", c.node(0).done);
    assert!(!c.node(0).ops.contains(&LogOp::AppendProduce { produce: 3, leader_epoch: 1 }));
}

/// The bodies of the fetch answers node `id` got, in order.
fn bodies(c: &mut Cluster, id: u32) -> Vec<FetchBody> {
    c.node(id).answers.iter().map(|a| a.body).collect()
}

fn truncations(c: &mut Cluster, id: u32) -> Vec<LogOp> {
    c.node(id).ops.iter().copied().filter(|op| matches!(op, LogOp::Truncate { .. })).collect()
}

/// KIP-279: the follower's epoch 1 runs to 3 but ends at 2 on the leader. It is told so,
/// truncates to 2, fetches again from there and ends with the leader's log.
#[test]
fn a_diverging_follower_truncates_to_where_the_epoch_ends_on_the_leader() {
    let leader: &[common::Batch] = &[(0, 2, 1), (2, 4, 2)];
    let mut c = Cluster::new(config(1), &[leader, &[(0, 2, 1), (2, 3, 1)]]);
    c.publish(&state(&[0, 1], 0, 3, 1, &[0]));
    let b = bodies(&mut c, 1);
    assert_eq!(b[0], FetchBody::Diverging { epoch: Some(1), end_offset: 2 });
    assert_eq!(b[1], FetchBody::Records { fetch_offset: 2 });
    assert_eq!(truncations(&mut c, 1), [LogOp::Truncate { offset: 2 }]);
    assert_eq!(c.node(1).log.batches, leader);
    assert_eq!(c.node(1).log.durable, 4);
}

/// KIP-279 when the follower lacks the leader's epoch: asked about its epoch 3, the leader
/// answers with its epoch 2 (ending at 4), which the follower never had; it cuts to the end of
/// its largest epoch below 2 (epoch 1, at 3) and asks again; the second answer (epoch 1 ends at
/// 2 on the leader) cuts to 2, and then the logs agree.
#[test]
fn a_follower_without_the_leaders_epoch_truncates_in_two_rounds() {
    let leader: &[common::Batch] = &[(0, 2, 1), (2, 4, 2)];
    let follower: &[common::Batch] = &[(0, 1, 1), (1, 2, 1), (2, 3, 1), (3, 5, 3)];
    let mut c = Cluster::new(config(1), &[leader, follower]);
    c.publish(&state(&[0, 1], 0, 4, 1, &[0]));
    let b = bodies(&mut c, 1);
    assert_eq!(b[0], FetchBody::Diverging { epoch: Some(2), end_offset: 4 });
    assert_eq!(b[1], FetchBody::Diverging { epoch: Some(1), end_offset: 2 });
    assert_eq!(b[2], FetchBody::Records { fetch_offset: 2 });
    let cuts = [LogOp::Truncate { offset: 3 }, LogOp::Truncate { offset: 2 }];
    assert_eq!(truncations(&mut c, 1), cuts);
    assert_eq!(c.node(1).log.batches, [(0, 1, 1), (1, 2, 1), (2, 4, 2)]);
}

/// A follower's high watermark is the leader's only as far as its own log is durable: follower
/// 2, cut off until the batch was committed by 0 and 1, then appends it but does not flush.
#[test]
fn a_followers_high_watermark_is_bounded_by_its_durable_end() {
    let mut c = Cluster::new(config(2), &[&[], &[], &[]]);
    c.cut = vec![2];
    c.publish(&state(RF3, 0, 1, 1, &[0, 1]));
    c.produce(0, 1, Acks::All).unwrap();
    c.advance(100);
    assert_eq!((c.node(0).hw(), c.node(1).hw()), (1, 1));
    c.cut.clear();
    c.node(2).hold_flushes();
    c.advance(500);
    c.advance(100);
    assert_eq!(c.node(2).answers.last().unwrap().high_watermark, 1, "follower 2 heard of it");
    assert_eq!((c.node(2).log.end(), c.node(2).hw()), (1, 0));
    let now = c.now_ms;
    c.node(2).release(now);
    c.settle();
    assert_eq!(c.node(2).hw(), 1);
}

/// A diverging answer carries the leader's high watermark (4), but the follower's log holds
/// offset 2 from epoch 1 where the leader has epoch 2: until the truncation lands and the logs
/// agree, the follower exposes nothing past 2.
#[test]
fn a_followers_high_watermark_never_covers_offsets_of_another_epoch() {
    let leader: &[common::Batch] = &[(0, 2, 1), (2, 4, 2)];
    let mut c = Cluster::new(config(1), &[leader, &[(0, 2, 1), (2, 3, 1)]]);
    c.node(1).hold = Some(|op| matches!(op, LogOp::Truncate { .. }));
    c.publish(&state(&[0, 1], 0, 3, 1, &[0]));
    assert_eq!(c.node(0).hw(), 4);
    assert_eq!(c.node(1).held, Some(LogOp::Truncate { offset: 2 }));
    assert_eq!(c.node(1).answers[0].high_watermark, 4);
    c.advance(1_000);
    assert!(c.node(1).hw() <= 2, "high watermark {} over a diverging offset", c.node(1).hw());
    let now = c.now_ms;
    c.node(1).release(now);
    c.settle();
    c.advance(100);
    assert_eq!(c.node(1).log.batches, leader);
    assert_eq!(c.node(1).hw(), 4);
}

fn alter(partition_epoch: u32, isr: &[u32]) -> AlterPartition {
    AlterPartition {
        partition: common::PARTITION,
        leader: NodeId(0),
        leader_epoch: 1,
        partition_epoch,
        isr: isr.iter().map(|&n| NodeId(n)).collect(),
    }
}

/// Follower 2 stops fetching after t=0 with produce 1 pending. Returns the cluster at the
/// instant the leader proposed removing it (just past `replica_lag_time_max_ms`).
fn follower_2_lags_out() -> Cluster {
    let mut c = three_in_sync(2);
    c.cut = vec![2];
    c.produce(0, 1, Acks::All).unwrap();
    c.advance(1_000);
    assert!(c.node(0).alters.is_empty(), "not lagging for longer than the limit yet");
    c.advance(1);
    assert_eq!(c.node(0).alters, [alter(1, &[0, 1])]);
    c
}

/// ISR shrink (KIP-841): a follower silent for longer than `replica_lag_time_max_ms` is
/// proposed for removal, but the high watermark waits for it until the controller's state
/// without it arrives.
#[test]
fn a_lagging_follower_is_proposed_out_and_counts_until_the_state_drops_it() {
    let mut c = follower_2_lags_out();
    c.advance(100);
    assert_eq!(c.node(1).log.durable, 1);
    assert_eq!((c.node(0).hw(), c.node(0).outcome(1)), (0, None));
    c.publish(&state(RF3, 0, 1, 2, &[0, 1]));
    assert_eq!(c.node(0).hw(), 1);
    assert_eq!(c.node(0).outcome(1).map(|r| r.is_ok()), Some(true));
}

/// Follower 2, dropped from the ISR (partition epoch 2), fetches again and catches up; returns
/// the cluster once the leader proposed it back.
fn follower_2_rejoins() -> Cluster {
    let mut c = follower_2_lags_out();
    c.publish(&state(RF3, 0, 1, 2, &[0, 1]));
    c.cut.clear();
    c.advance(500);
    assert_eq!(c.node(2).log.durable, 1);
    assert_eq!(c.node(0).alters.last(), Some(&alter(2, &[0, 1, 2])));
    c
}

/// ISR expansion (KIP-841): a caught-up follower is proposed back, and counts towards the high
/// watermark at once, before the controller answers.
#[test]
fn a_caught_up_follower_is_proposed_back_and_counts_at_once() {
    let mut c = follower_2_rejoins();
    c.node(2).hold_flushes();
    c.produce(0, 2, Acks::All).unwrap();
    c.advance(100);
    c.advance(100);
    assert_eq!((c.node(1).log.durable, c.node(2).log.end()), (2, 2));
    assert_eq!((c.node(0).hw(), c.node(0).outcome(2)), (1, None), "follower 2 holds it back");
    let now = c.now_ms;
    c.node(2).release(now);
    c.settle();
    assert_eq!(c.node(0).hw(), 2);
    assert_eq!(c.node(0).outcome(2).map(|r| r.is_ok()), Some(true));
}

/// A proposal refused as `IneligibleReplica` is fenced by proposing the current ISR again (so a
/// copy of the refused one still in flight is refused from then on); the refused addition keeps
/// counting until the newer partition epoch arrives.
#[test]
fn a_refused_addition_is_fenced_and_counts_until_a_newer_partition_epoch() {
    let mut c = follower_2_rejoins();
    c.node(2).hold_flushes();
    let (now, refused) = (c.now_ms, alter(2, &[0, 1, 2]));
    let answer = Err(ControllerError::IneligibleReplica { node: NodeId(2) });
    c.node(0).replica.handle_alter_answer(now, &refused, answer);
    c.settle();
    assert_eq!(c.node(0).alters.last(), Some(&alter(2, &[0, 1])));
    c.produce(0, 2, Acks::All).unwrap();
    c.advance(100);
    c.advance(100);
    assert_eq!((c.node(1).log.durable, c.node(2).log.durable), (2, 1));
    assert_eq!((c.node(0).hw(), c.node(0).outcome(2)), (1, None), "follower 2 still counts");
    c.publish(&state(RF3, 0, 1, 3, &[0, 1]));
    assert_eq!(c.node(0).hw(), 2);
    assert_eq!(c.node(0).outcome(2).map(|r| r.is_ok()), Some(true));
}

/// A state with a lower partition epoch than the one held is a delayed message: ignored, even
/// when it names another leader or a smaller ISR.
#[test]
fn a_stale_partition_state_is_ignored() {
    let mut c = Cluster::new(config(2), &[&[], &[], &[]]);
    c.publish(&state(RF3, 0, 2, 3, RF3));
    let before = c.node(0).replica.view().cloned();
    c.publish(&state(RF3, 1, 1, 2, RF3));
    c.publish(&state(RF3, 0, 2, 2, &[0]));
    assert_eq!(c.node(0).replica.view().cloned(), before);
    assert!(c.node(0).replica.is_leader());
    assert_eq!(c.node(1).replica.leader(), Some(NodeId(0)));
    assert_eq!(c.produce(0, 1, Acks::All), Ok(()), "the ISR of 1 was not adopted");
    c.advance(100);
    assert_eq!(c.node(0).outcome(1).map(|r| r.is_ok()), Some(true));
}

/// Node 0 is named leader of epoch 2 and deposed (node 1 leads epoch 3) while its `BeginEpoch`
/// is under way. Node 1 holds a batch of epoch 1 that node 0 lacks: node 0 must copy it, so the
/// epoch 2 its log recorded without writing must be dropped first, as it is when the epoch was
/// begun before the deposition.
#[test]
fn a_leader_deposed_while_beginning_its_epoch_still_copies_the_next_leaders_log() {
    let new_leader: &[common::Batch] = &[(0, 1, 1), (1, 2, 1)];
    let mut c = Cluster::new(config(1), &[&[(0, 1, 1)], new_leader]);
    c.cut = vec![1];
    c.node(0).hold = Some(|op| matches!(op, LogOp::BeginEpoch { .. }));
    c.publish(&state(&[0, 1], 0, 2, 2, &[0, 1]));
    assert_eq!(c.node(0).held, Some(LogOp::BeginEpoch { epoch: 2 }));
    c.publish(&state(&[0, 1], 1, 3, 3, &[0, 1]));
    let now = c.now_ms;
    c.node(0).release(now);
    c.cut.clear();
    for _ in 0..10 {
        c.advance(100);
    }
    let log = &c.nodes[0].log;
    assert_eq!(log.batches, new_leader, "log epochs {:?}", log.epochs);
}

/// A cluster whose leader 0 (epoch 4) holds only `[4, 6)`: retention moved its log start to 4.
fn leader_past_retention(follower: &[common::Batch]) -> Cluster {
    let mut c = Cluster::new(config(1), &[&[], follower]);
    c.nodes[0] = Node::starting_at(0, config(1), 4, &[(4, 6, 3)]);
    c.publish(&state(&[0, 1], 0, 4, 1, &[0]));
    for _ in 0..10 {
        c.advance(100);
    }
    c
}

/// A new, empty follower of a leader whose log start moved on must start at the leader's log
/// start: its fetch from 0 is answered with the leader's log start, where it starts over.
#[test]
fn an_empty_follower_of_a_leader_past_retention_catches_up() {
    let mut c = leader_past_retention(&[]);
    let first = FetchBody::Diverging { epoch: None, end_offset: 4 };
    assert_eq!(bodies(&mut c, 1)[0], first);
    assert!(bodies(&mut c, 1).contains(&FetchBody::Records { fetch_offset: 4 }), "{:?}", bodies(&mut c, 1));
}

/// `Diverging { epoch: None, end_offset }` tells the follower that the leader knows no epoch as
/// old as its own, and to start over at `end_offset`, the leader's log start.
#[test]
fn a_follower_older_than_the_leaders_log_start_starts_over_there() {
    let mut c = leader_past_retention(&[(0, 2, 1)]);
    assert_eq!(bodies(&mut c, 1)[0], FetchBody::Diverging { epoch: None, end_offset: 4 });
    assert!(bodies(&mut c, 1).contains(&FetchBody::Records { fetch_offset: 4 }), "{:?}", bodies(&mut c, 1));
}

/// A follower whose flush hangs copies the batch but never makes it durable; it must not hold
/// the high watermark for ever: it stops fetching behind its hung flush, is proposed out after
/// `replica_lag_time_max_ms`, and the produce completes once the state without it arrives.
#[test]
fn a_follower_with_a_hung_flush_is_proposed_out_of_the_isr() {
    let mut c = three_in_sync(2);
    c.node(2).hold_flushes();
    c.produce(0, 1, Acks::All).unwrap();
    c.advance(100);
    assert_eq!((c.node(2).log.end(), c.node(2).log.durable), (1, 0));
    for _ in 0..11 {
        c.advance(100);
    }
    assert_eq!(c.node(0).alters, [alter(1, &[0, 1])]);
    assert_eq!(c.node(0).outcome(1), None);
    c.publish(&state(RF3, 0, 1, 2, &[0, 1]));
    assert_eq!(c.node(0).outcome(1).map(|r| r.is_ok()), Some(true));
}

/// A produce the log refuses (a full disk) fails with `Storage` and leaves the replica leading;
/// one the log fails on makes the replica failed, and later produces are refused at once.
#[test]
fn a_refused_append_fails_the_produce_and_a_failed_log_fails_the_replica() {
    let mut c = three_in_sync(2);
    c.node(0).fail_next_produce = Some(LogFailure { reason: "disk full", log_failed: false });
    c.produce(0, 1, Acks::All).unwrap();
    assert_eq!(c.node(0).outcome(1), Some(Err(ReplicaError::Storage { reason: "disk full" })));
    c.produce(0, 2, Acks::All).unwrap();
    c.advance(100);
    assert_eq!(c.node(0).outcome(2).map(|r| r.map(|r| r.base)), Some(Ok(0)));
    c.node(0).fail_next_produce = Some(LogFailure { reason: "io error", log_failed: true });
    c.produce(0, 3, Acks::Leader).unwrap();
    assert_eq!(c.node(0).outcome(3), Some(Err(ReplicaError::Storage { reason: "io error" })));
    assert!(c.node(0).replica.is_failed());
    assert!(matches!(c.produce(0, 4, Acks::Leader), Err(ReplicaError::Storage { .. })));
}

/// Found by review: a restarted replica took a state the controller sent before it knew of the
/// restart, naming the replica leader of the epoch its previous life led, and led that epoch a
/// second time (appending other batches at offsets a follower held from the first). Until the
/// controller answers its own incarnation, a replica adopts no state.
#[test]
fn a_restarted_replica_adopts_no_state_before_the_controller_knows_of_it() {
    let mut n = Node::new(0, config(1), &[(0, 3, 2)]);
    let old = state(RF3, 0, 2, 4, RF3);
    n.replica.handle_partition_state(0, &old);
    assert!(n.replica.view().is_none() && !n.replica.is_leader(), "a state before registration is ignored");
    let incarnation = n.replica.incarnation();
    n.replica.handle_registration(0, incarnation + 1, &old);
    assert!(n.replica.view().is_none(), "an answer to another incarnation is ignored");
    // The controller, told of the restart, re-elected: epoch 3.
    n.replica.handle_registration(0, incarnation, &state(RF3, 0, 3, 5, RF3));
    assert!(n.replica.is_leader());
    assert_eq!(n.take_op(), Some(LogOp::BeginEpoch { epoch: 3 }));
    // A delayed broadcast of the old epoch changes nothing now.
    n.replica.handle_partition_state(0, &old);
    assert_eq!(n.replica.view().map(|v| v.leader_epoch), Some(3));
}

/// Found by review and the simulator: a follower whose log retention emptied (its log starts
/// at its end, above the leader's log start) has no epoch to fetch with. Its empty log has
/// nothing to disagree with: it copies from where it is, and is not cut back to the leader's
/// start (which, for an ISR member, would drop it below the high watermark).
#[test]
fn an_empty_follower_above_its_leaders_log_start_copies_from_its_end() {
    let leader: &[common::Batch] = &[(0, 2, 1), (2, 4, 1), (4, 6, 1), (6, 8, 1)];
    let mut c = Cluster::new(config(1), &[leader, &[]]);
    c.nodes[1] = Node::starting_at(1, config(1), 6, &[]);
    c.publish(&state(&[0, 1], 0, 2, 1, &[0]));
    for _ in 0..10 {
        c.advance(100);
    }
    assert!(c.node(1).ops.iter().all(|op| !matches!(op, LogOp::Truncate { .. } | LogOp::StartOver { .. })));
    let log = &c.nodes[1].log;
    assert_eq!((log.start, log.batches.as_slice()), (6, &[(6, 8, 1)][..]));
}

/// An empty follower below its leader's log start starts over there.
#[test]
fn an_empty_follower_below_its_leaders_log_start_starts_over_there() {
    let mut c = leader_past_retention(&[]);
    let log = &c.node(1).log;
    assert_eq!((log.start, log.batches.as_slice()), (4, &[(4, 6, 3)][..]));
}

/// Found by the simulator (seed 65281): a replica elected while an append of batches fetched
/// from the old leader was under way answered a fetch from its log as it was, then the append
/// landed: the follower was sent to cut batches its new leader held (and exposed). A leader
/// answers fetches only once its epoch is recorded, after every operation from before.
#[test]
fn a_leader_answers_no_fetch_before_its_epoch_is_recorded() {
    let mut n = Node::new(0, config(1), &[(0, 2, 1)]);
    n.hold = Some(|op| matches!(op, LogOp::BeginEpoch { .. }));
    let incarnation = n.replica.incarnation();
    n.replica.handle_registration(0, incarnation, &state(RF3, 0, 2, 1, RF3));
    n.run_log(0);
    assert_eq!(n.held, Some(LogOp::BeginEpoch { epoch: 2 }));
    let early = n.replica.handle_fetch(0, &fetch(1, 2, 2));
    assert_eq!(early.body, FetchBody::Refused(FetchRefusal::LeaderNotReady));
    n.release(0);
    let ready = n.replica.handle_fetch(0, &fetch(1, 2, 2));
    assert_eq!(ready.body, FetchBody::Records { fetch_offset: 2 });
}

/// A follower learns where its leader's log starts (a DeleteRecords there moved it) from the
/// answers to its fetches, and is asked to start there too, never past its own high watermark.
#[test]
fn a_follower_follows_its_leaders_log_start_up_to_its_high_watermark() {
    let mut c = three_in_sync(2);
    for produce in 1..=4 {
        c.produce(0, produce, Acks::All).unwrap();
        c.advance(100);
    }
    c.advance(100);
    assert_eq!((c.node(0).hw(), c.node(1).hw()), (4, 4));
    assert_eq!(c.node(1).replica.log_start_to_follow(), None, "the leader starts at 0");
    c.node(0).replica.handle_log_start(3);
    c.produce(0, 5, Acks::All).unwrap();
    c.advance(100);
    assert_eq!(c.node(1).replica.log_start_to_follow(), Some(3));
    c.node(1).replica.handle_log_start(3);
    assert_eq!(c.node(1).replica.log_start_to_follow(), None, "followed");
    // A leader's start at its log end is followed, never past the follower's high watermark.
    let leader_hw = c.node(0).hw();
    c.node(0).replica.handle_log_start(leader_hw);
    for produce in 6..=8 {
        c.produce(0, produce, Acks::All).unwrap();
        c.advance(100);
        let (to_follow, hw) = (c.node(2).replica.log_start_to_follow(), c.node(2).hw());
        assert!(to_follow.is_some_and(|s| s <= hw), "{to_follow:?} within {hw}");
    }
    assert_eq!(c.node(2).replica.log_start_to_follow(), Some(leader_hw));
    assert_eq!(c.node(0).replica.log_start_to_follow(), None, "a leader follows no one");
}
