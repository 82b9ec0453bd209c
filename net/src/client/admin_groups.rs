//! Consumer-group administration: list, describe, delete, committed offsets and their reset.
//! Each group's requests go to its coordinator; the list asks every shard of every node.

use super::admin::{Admin, unexpected};
use super::connection::Connection;
use super::coordinator::CoordinatorLink;
use super::error::{ClientError, Result};
use crate::api::{Request, Response};
use crate::groups::{
    CommittedOffsetInfo, GroupInfo, GroupListing, GroupRequest, GroupResponse, OffsetCommitEntry,
};

/// How long between attempts when a group's coordinator moved or is loading.
const RETRY_BACKOFF_MS: u64 = 100;

impl Admin {
    async fn group_call(&self, group: &str, req: GroupRequest) -> Result<GroupResponse> {
        let resp = CoordinatorLink::new(&self.target, group, RETRY_BACKOFF_MS).call(&req).await?;
        let (code, message) = resp.error();
        ClientError::check(code, message.to_owned())?;
        Ok(resp)
    }

    /// Every group of the cluster: each shard lists the groups it coordinates.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        let r = self.conn.call(&Request::Metadata { topics: vec![] }).await?;
        let Response::Metadata { shards, nodes, .. } = r.response()? else {
            return Err(ClientError::InvalidArgument("unexpected answer to metadata".into()));
        };
        let mut addrs: Vec<String> = shards.iter().map(|s| format!("{}:{}", s.host, s.port)).collect();
        addrs.extend(nodes.iter().flat_map(|n| n.shards.iter().map(|s| format!("{}:{}", s.host, s.port))));
        addrs.sort();
        addrs.dedup();
        let mut groups = Vec::new();
        for addr in addrs {
            let mut conn = Connection::connect(&self.target.with_addr(addr)).await?;
            match conn.call(&Request::Group(GroupRequest::ListGroups)).await?.response()? {
                Response::Group(GroupResponse::ListGroups { error, message, groups: more }) => {
                    ClientError::check(error, message)?;
                    groups.extend(more);
                }
                other => return Err(unexpected(&other)),
            }
        }
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        groups.dedup_by(|a, b| a.group == b.group);
        Ok(groups)
    }

    /// A group's members, their assignments and state; `GroupIdNotFound` for no such group.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupInfo> {
        match self.group_call(group, GroupRequest::DescribeGroup { group: group.into() }).await? {
            GroupResponse::DescribeGroup { group: Some(g), .. } => Ok(g),
            _ => Err(ClientError::InvalidArgument("unexpected answer to describe group".into())),
        }
    }

    /// Deletes a group without members, with its committed offsets.
    pub async fn delete_group(&mut self, group: &str) -> Result<()> {
        self.group_call(group, GroupRequest::DeleteGroup { group: group.into() }).await.map(|_| ())
    }

    /// The group's committed offsets: of `partitions`, or all when empty.
    pub async fn committed_offsets(
        &mut self,
        group: &str,
        partitions: Vec<(String, u32)>,
    ) -> Result<Vec<CommittedOffsetInfo>> {
        match self.group_call(group, GroupRequest::OffsetFetch { group: group.into(), partitions }).await? {
            GroupResponse::OffsetFetch { offsets, .. } => Ok(offsets),
            _ => Err(ClientError::InvalidArgument("unexpected answer to an offset fetch".into())),
        }
    }

    /// Sets the group's committed offsets; refused `GroupNotEmpty` while it has members.
    pub async fn reset_offsets(&mut self, group: &str, offsets: Vec<OffsetCommitEntry>) -> Result<()> {
        let req = GroupRequest::OffsetCommit {
            group: group.into(),
            member_id: String::new(),
            member_epoch: -1,
            offsets,
        };
        self.group_call(group, req).await.map(|_| ())
    }
}
