//! The connection to a consumer group's coordinator: found with FindCoordinator through any
//! node of the target, then talked to directly (the shard that leads the group's partition of
//! `__consumer_offsets`). A coordinator that moved (`NotCoordinator`), is loading
//! (`CoordinatorLoadInProgress`) or cannot be reached is looked for again, a bounded number of
//! times, `retry_backoff_ms` apart.

use super::connection::{Connection, Target};
use super::error::{ClientError, Result};
use crate::ErrorCode;
use crate::api::{Request, Response};
use crate::groups::{GroupRequest, GroupResponse};
use std::time::Duration;

/// Attempts at one group request through coordinator moves and loads, at most: at the default
/// backoff of 100 ms, ten seconds, time for a failover.
pub const COORDINATOR_ATTEMPTS_MAX: u32 = 100;

/// A group's coordinator, as a client reaches it. Not shared: one per consumer or admin call.
#[derive(Debug)]
pub struct CoordinatorLink {
    target: Target,
    group: String,
    conn: Option<Connection>,
    retry_backoff_ms: u64,
}

impl CoordinatorLink {
    pub fn new(target: &Target, group: &str, retry_backoff_ms: u64) -> Self {
        Self { target: target.clone(), group: group.to_owned(), conn: None, retry_backoff_ms }
    }

    /// Sends `req` to the coordinator and returns its answer; an error answer the caller
    /// should act on is returned as the answer (check it with [`GroupResponse::error`]), while
    /// moves, loads and lost connections are retried here.
    pub async fn call(&mut self, req: &GroupRequest) -> Result<GroupResponse> {
        let mut last = None;
        for attempt in 0..COORDINATOR_ATTEMPTS_MAX {
            if attempt > 0 {
                tokio_rt::time::sleep(Duration::from_millis(self.retry_backoff_ms)).await;
            }
            match self.try_call(req).await {
                Ok(resp) => match resp.error().0 {
                    ErrorCode::NotCoordinator | ErrorCode::CoordinatorLoadInProgress => {
                        let (code, message) = resp.error();
                        last = Some(ClientError::Server { code, message: message.to_owned() });
                        self.conn = None;
                    }
                    _ => return Ok(resp),
                },
                Err(e) if e.is_retriable() || matches!(e, ClientError::Decode(_)) => {
                    self.conn = None;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("an attempt was made"))
    }

    async fn try_call(&mut self, req: &GroupRequest) -> Result<GroupResponse> {
        if self.conn.is_none() {
            let addr = self.find().await?;
            self.conn = Some(Connection::connect(&self.target.with_addr(addr)).await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let frame = conn.call(&Request::Group(req.clone())).await?;
        match frame.response()? {
            Response::Group(g) if g.api_key() == req.api_key() => Ok(g),
            other => Err(super::admin::unexpected(&other)),
        }
    }

    /// The coordinator's address, asked of the target.
    async fn find(&mut self) -> Result<String> {
        let mut conn = Connection::connect(&self.target).await?;
        let req = Request::Group(GroupRequest::FindCoordinator { group: self.group.clone() });
        let frame = conn.call(&req).await?;
        match frame.response()? {
            Response::Group(GroupResponse::FindCoordinator { error, message, host, port, .. }) => {
                ClientError::check(error, message)?;
                Ok(format!("{host}:{port}"))
            }
            other => Err(super::admin::unexpected(&other)),
        }
    }
}
