//! Time in a classic group: sessions that end, given member ids never used, and rebalances
//! whose timeout passed.

use crate::classic::state::{Answers, Phase};
use crate::error::GroupError;
use crate::group::Group;

impl Group {
    /// Applies the passing of time up to `now_ms`: removes members whose session ended and
    /// forgets given member ids never joined with; completes a rebalance whose timeout passed,
    /// removing the members that did not join again; and if the leader did not send its
    /// assignment in time, removes it and the other members that did not sync, and rebalances
    /// (held syncs are answered `RebalanceInProgress`). Returns the next time something is due.
    pub fn tick_classic(&mut self, now_ms: u64, initial_delay_ms: u32, out: &mut Answers) -> Option<u64> {
        // One step may make another due at once (a removal ends a rebalance, which removes
        // members): steps run until nothing is due. Each step that leaves something due
        // removes a member or ends a phase, so this ends; the bound only makes that plain.
        let mut due = None;
        for _ in 0..self.classic.members.len() + 4 {
            due = self.tick_step(now_ms, initial_delay_ms, out);
            if due.is_none_or(|d| d > now_ms) {
                break;
            }
        }
        due
    }

    fn tick_step(&mut self, now_ms: u64, initial_delay_ms: u32, out: &mut Answers) -> Option<u64> {
        let pending = self.classic.pending.len();
        self.classic.pending.retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = self
            .classic
            .members
            .iter()
            .filter(|(_, m)| m.session_deadline_ms().is_some_and(|d| d <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        let late_sync =
            self.classic.phase == Phase::Completing && self.classic.deadline_ms.is_some_and(|d| d <= now_ms);
        let unsynced: Vec<String> = if late_sync {
            self.classic
                .members
                .iter()
                .filter(|(_, m)| m.sync_token.is_none())
                .map(|(id, _)| id.clone())
                .collect()
        } else {
            Vec::new()
        };
        let gone: Vec<&String> = expired.iter().chain(&unsynced).collect();
        for id in &gone {
            self.remove_classic_member(id, GroupError::UnknownMemberId { member_id: id.to_string() }, out);
        }
        if !gone.is_empty() {
            self.after_removal(now_ms, initial_delay_ms, out);
        } else if pending != self.classic.pending.len() {
            self.try_complete_join(now_ms, out);
        }
        if self.classic.phase == Phase::Preparing {
            if self.classic.deadline_ms.is_some_and(|d| d <= now_ms) {
                self.complete_join(now_ms, out);
            } else {
                self.try_complete_join(now_ms, out);
            }
        }
        self.classic_deadline_ms(now_ms)
    }

    fn classic_deadline_ms(&self, now_ms: u64) -> Option<u64> {
        let c = &self.classic;
        let delayed = (c.phase == Phase::Preparing && c.not_before_ms > now_ms).then_some(c.not_before_ms);
        c.pending
            .values()
            .copied()
            .chain(c.members.values().filter_map(|m| m.session_deadline_ms()))
            .chain(c.deadline_ms)
            .chain(delayed)
            .min()
    }
}
