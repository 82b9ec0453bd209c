//! How a classic group shows in `describe` and `list`, in Kafka's terms.

use crate::api::{GroupDescription, GroupKind, GroupState, MemberDescription};
use crate::classic::state::Phase;
use crate::group::Group;

impl Group {
    /// A group is classic while it has classic members (or given member ids), and, with no
    /// members at all, once it has been classic.
    pub fn kind(&self) -> GroupKind {
        let was_classic = self.members.is_empty() && self.meta.classic.is_some();
        if self.has_classic() || was_classic { GroupKind::Classic } else { GroupKind::Native }
    }

    pub fn protocol_type(&self) -> String {
        match self.kind() {
            GroupKind::Native => "consumer".to_owned(),
            GroupKind::Classic => {
                self.meta.classic.as_ref().and_then(|c| c.protocol_type.clone()).unwrap_or_default()
            }
        }
    }

    pub fn classic_state(&self) -> GroupState {
        match self.classic.phase {
            Phase::Empty => GroupState::Empty,
            Phase::Preparing => GroupState::PreparingRebalance,
            Phase::Completing => GroupState::CompletingRebalance,
            Phase::Stable => GroupState::Stable,
        }
    }

    pub fn describe_classic(&self, group: &str) -> GroupDescription {
        let protocol_name =
            self.meta.classic.as_ref().and_then(|c| c.protocol_name.clone()).unwrap_or_default();
        let members = self
            .classic
            .members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                member_epoch: self.generation(),
                topics: Vec::new(),
                assignment: Vec::new(),
                revoking: Vec::new(),
                target: Vec::new(),
                departed: false,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata(&protocol_name),
                classic_assignment: m.assignment.clone(),
            })
            .collect();
        GroupDescription {
            group: group.to_owned(),
            state: self.classic_state(),
            group_epoch: self.generation(),
            assignor: self.meta.assignor,
            members,
            kind: crate::api::GroupKind::Classic,
            protocol_type: self.protocol_type(),
            protocol_name,
        }
    }
}
