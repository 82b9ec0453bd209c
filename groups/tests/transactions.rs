//! The transaction coordinator: producer ids and epochs per transactional id, a transaction's
//! phases, fencing, timeouts, pending offsets; and a replay of its records rebuilding it.

use weir_groups::{CommittedOffset, Coordinator, CoordinatorConfig, TxnError, TxnInit, TxnPhase};

fn parts(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

fn offset(o: u64) -> CommittedOffset {
    CommittedOffset { offset: o, metadata: "m".into(), leader_epoch: Some(3) }
}

/// A coordinator rebuilt from every record `c` emitted so far (appended to `log`).
fn replayed(log: &mut Vec<weir_groups::Record>, c: &mut Coordinator) -> Coordinator {
    log.extend(c.take_records());
    let mut back = Coordinator::new(CoordinatorConfig::default());
    for r in log.iter() {
        back.replay(0, &r.key, r.value.as_deref()).unwrap();
    }
    back
}

#[test]
fn a_transaction_commits_its_partitions_and_offsets_and_fences_older_producers() {
    let mut c = Coordinator::new(CoordinatorConfig::default());
    let mut log = Vec::new();
    let TxnInit::Ready { producer_id: pid, producer_epoch: 0 } = c.txn_init(0, "tx", 60_000, 77).unwrap()
    else {
        panic!("a new id is ready")
    };
    assert_eq!(pid, 77);
    assert!(matches!(
        c.txn_verify("tx", pid, 0, &parts(&[("t", 0)]), None),
        Err(TxnError::InvalidState { .. })
    ));
    c.txn_add(1, "tx", pid, 0, &parts(&[("t", 0), ("t", 1)]), None).unwrap();
    c.txn_add(2, "tx", pid, 0, &[], Some("g")).unwrap();
    c.txn_verify("tx", pid, 0, &parts(&[("t", 1)]), None).unwrap();
    assert!(c.txn_verify("tx", pid, 0, &parts(&[("u", 0)]), None).is_err(), "a partition not added");
    c.txn_verify("tx", pid, 0, &[], Some("g")).unwrap();
    assert!(c.txn_verify("tx", pid, 0, &[], Some("h")).is_err(), "a group not added");
    c.txn_offsets(3, "g", pid, vec![("t".into(), 0, offset(5))]).unwrap();
    assert_eq!(c.fetch_offsets("g", None), vec![], "pending until the transaction ends");
    let end = c.txn_end("tx", pid, 0, true).unwrap().expect("something to end");
    assert_eq!((end.commit, end.partitions.len(), end.groups.clone()), (true, 2, vec!["g".to_string()]));
    assert!(matches!(c.txn_add(4, "tx", pid, 0, &[], None), Err(TxnError::Concurrent)));
    // A coordinator loaded now finds the prepared transaction and its pending offsets.
    let mut back = replayed(&mut log, &mut c);
    assert_eq!(back.txn_due(10), vec![end.clone()]);
    c.txn_offsets_complete(5, "g", pid, true).unwrap();
    c.txn_complete(&end);
    assert_eq!(c.transaction("tx").unwrap().phase, TxnPhase::Empty);
    assert_eq!(c.fetch_offsets("g", None), vec![("t".to_string(), 0, Some(offset(5)))]);
    // A retried end is answered as the first was; the other way is refused.
    assert_eq!(c.txn_end("tx", pid, 0, true), Ok(None));
    assert!(c.txn_end("tx", pid, 0, false).is_err());
    // A new producer of the same id bumps the epoch: the old one is fenced.
    assert!(matches!(
        c.txn_init(6, "tx", 60_000, 78),
        Ok(TxnInit::Ready { producer_id: 77, producer_epoch: 1 })
    ));
    assert!(matches!(c.txn_add(7, "tx", pid, 0, &parts(&[("t", 0)]), None), Err(TxnError::Fenced { .. })));
    back = replayed(&mut log, &mut c);
    // The clock a transaction started at is the coordinator's own, not persisted.
    let clocked =
        |c: &Coordinator| c.transaction("tx").cloned().map(|s| weir_groups::TxnState { started_ms: 0, ..s });
    assert_eq!(clocked(&back), clocked(&c));
    assert_eq!(back.fetch_offsets("g", None), c.fetch_offsets("g", None));
}

#[test]
fn an_open_transaction_is_aborted_by_a_new_producer_or_its_timeout() {
    let mut c = Coordinator::new(CoordinatorConfig::default());
    c.txn_init(0, "tx", 1_000, 5).unwrap();
    c.txn_add(0, "tx", 5, 0, &parts(&[("t", 0)]), None).unwrap();
    c.txn_offsets(0, "g", 5, vec![("t".into(), 0, offset(9))]).unwrap();
    // A new producer: the open transaction is aborted first, at a bumped epoch.
    let Ok(TxnInit::AbortFirst(end)) = c.txn_init(10, "tx", 1_000, 6) else { panic!("abort first") };
    assert_eq!((end.commit, end.producer_epoch), (false, 1));
    assert!(matches!(c.txn_init(11, "tx", 1_000, 6), Err(TxnError::Concurrent)));
    c.txn_offsets_complete(12, "g", 5, false).unwrap();
    c.txn_complete(&end);
    assert_eq!(c.fetch_offsets("g", None), vec![], "aborted offsets go");
    assert!(matches!(c.txn_init(13, "tx", 1_000, 6), Ok(TxnInit::Ready { producer_epoch: 2, .. })));
    // Past its timeout, an open transaction is aborted by the coordinator.
    c.txn_add(20, "tx", 5, 2, &parts(&[("t", 0)]), None).unwrap();
    assert!(c.txn_due(1_000).is_empty());
    let due = c.txn_due(1_021);
    assert_eq!((due.len(), due[0].commit, due[0].producer_epoch), (1, false, 3));
    assert!(c.txn_init(0, "other", 0, 1).is_err(), "a timeout of 0");
}

#[test]
fn a_group_is_bounded_by_its_committed_and_pending_partitions_counted_once() {
    let max = weir_groups::GROUP_OFFSETS_MAX;
    let mut c = Coordinator::new(CoordinatorConfig::default());
    let at = |p: usize| ("t".to_string(), p as u32, offset(1));
    // Within the limit of one commit at a time.
    for chunk in (0..max - 1).collect::<Vec<_>>().chunks(5_000) {
        c.commit(0, "g", "", -1, chunk.iter().map(|p| at(*p)).collect()).unwrap();
    }
    c.txn_init(0, "tx", 60_000, 1).unwrap();
    c.txn_add(0, "tx", 1, 0, &[], Some("g")).unwrap();
    c.txn_offsets(0, "g", 1, vec![at(max - 1)]).unwrap();
    assert!(c.commit(0, "g", "", -1, vec![at(max)]).is_err(), "a partition past the bound");
    c.commit(0, "g", "", -1, vec![at(0), at(max - 1)]).unwrap();
    c.txn_offsets(0, "g", 1, vec![at(0)]).unwrap();
    let end = c.txn_end("tx", 1, 0, true).unwrap().unwrap();
    c.txn_offsets_complete(0, "g", 1, true).unwrap();
    c.txn_complete(&end);
    assert_eq!(c.fetch_offsets("g", None).len(), max);
    c.commit(0, "g", "", -1, vec![at(3)]).unwrap();
}
