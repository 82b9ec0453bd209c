//! The control plane's transport: QUIC (quinn, on the control plane's tokio runtime) with the
//! cluster's mutual TLS. One connection per peer, reconnected after a failure; one
//! bidirectional stream per call carrying one request frame and one response frame.
//!
//! [`Transport`] is the client side (Raft's network, via [`NetworkFactory`], and node-to-
//! controller calls); [`serve`] is the server side, which refuses a request whose envelope names
//! another node than the peer's certificate. Raft's requests reach openraft through the
//! [`BlankGuard`]: a node whose Raft state began empty refuses votes until it caught up (see
//! [`blank`](crate::blank)).

use crate::blank::BlankGuard;
use crate::controller_host::{HostRequest, HostSender};
use crate::error::ControlError;
use crate::rpc::{ControlCall, Envelope, Request, Response, WireError, read_frame, write_frame};
use crate::tls::{NodeTls, node_dns_name, peer_is_node};
use crate::types::{Raft, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rustls::pki_types::CertificateDer;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_replication::NodeId;

/// How often an idle connection is kept alive, and after how long a silent one is dropped.
const KEEP_ALIVE_MS: u64 = 500;
const IDLE_TIMEOUT_MS: u64 = 3_000;

fn rpc_error(reason: impl std::fmt::Display) -> ControlError {
    ControlError::Rpc { reason: reason.to_string() }
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config.keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_MS)));
    let idle =
        quinn::IdleTimeout::try_from(Duration::from_millis(IDLE_TIMEOUT_MS)).expect("a valid idle timeout");
    config.max_idle_timeout(Some(idle));
    Arc::new(config)
}

/// The client side of the transport, and the endpoint the server accepts on. Runs on the
/// control plane's runtime; shared by its tasks.
#[derive(Debug)]
pub struct Transport {
    me: NodeId,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    peers: BTreeMap<NodeId, SocketAddr>,
    connections: Mutex<HashMap<NodeId, quinn::Connection>>,
}

impl Transport {
    /// Binds `addr` (UDP). Must be called within the tokio runtime that will drive it.
    pub fn bind(
        me: NodeId,
        addr: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        tls: &NodeTls,
    ) -> Result<Arc<Self>, ControlError> {
        let tls_error = |e: &dyn std::fmt::Display| ControlError::Tls { reason: e.to_string() };
        let server_tls = quinn::crypto::rustls::QuicServerConfig::try_from(tls.server_config()?)
            .map_err(|e| tls_error(&e))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
        server.transport_config(transport_config());
        let client_tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls.client_config()?)
            .map_err(|e| tls_error(&e))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_tls));
        client.transport_config(transport_config());
        let endpoint = quinn::Endpoint::server(server, addr)
            .map_err(|source| ControlError::Io { path: format!("udp://{addr}").into(), source })?;
        let connections = Mutex::new(HashMap::new());
        Ok(Arc::new(Self { me, endpoint, client, peers, connections }))
    }

    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// Sends `request` to `to` and waits at most `timeout` for the answer. A failed call drops
    /// the connection, so the next one reconnects.
    pub async fn call(
        &self,
        to: NodeId,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, ControlError> {
        let envelope = Envelope { from: self.me, request };
        let result = tokio::time::timeout(timeout, self.exchange(to, &envelope)).await;
        let result = result.unwrap_or_else(|_| Err(rpc_error(format!("call to {to:?} timed out"))));
        if result.is_err() {
            self.connections.lock().expect("not poisoned").remove(&to);
        }
        result
    }

    async fn exchange(&self, to: NodeId, envelope: &Envelope) -> Result<Response, ControlError> {
        let connection = self.connection(to).await?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(rpc_error)?;
        write_frame(&mut send, envelope).await?;
        send.finish().map_err(rpc_error)?;
        read_frame(&mut recv).await
    }

    async fn connection(&self, to: NodeId) -> Result<quinn::Connection, ControlError> {
        let cached = self.connections.lock().expect("not poisoned").get(&to).cloned();
        if let Some(c) = cached.filter(|c| c.close_reason().is_none()) {
            return Ok(c);
        }
        let addr = *self.peers.get(&to).ok_or_else(|| rpc_error(format!("unknown peer {to:?}")))?;
        let connecting =
            self.endpoint.connect_with(self.client.clone(), addr, &node_dns_name(to)).map_err(rpc_error)?;
        let connection = connecting.await.map_err(rpc_error)?;
        self.connections.lock().expect("not poisoned").insert(to, connection.clone());
        Ok(connection)
    }
}

/// Serves requests: Raft's to the local Raft, control calls to the controller host. Only
/// members (`peers`) are served, and a control call must speak for its sender: a heartbeat's
/// node, a registration's id and an alter-partition's leader are the envelope's `from` (which
/// the peer's certificate names).
#[derive(Clone)]
pub struct Dispatcher {
    pub raft: Raft,
    /// Raft's requests go through it: a blank node refuses votes.
    pub blank: BlankGuard,
    pub host: HostSender,
    pub members: BTreeSet<NodeId>,
    /// How long a control call may wait for the controller.
    pub call_timeout: Duration,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("members", &self.members).finish_non_exhaustive()
    }
}

/// The node a control call speaks for, if it speaks for one.
fn speaks_for(call: &ControlCall) -> Option<NodeId> {
    match call {
        ControlCall::Heartbeat { node, .. } => Some(*node),
        ControlCall::Register(info) => Some(info.id),
        ControlCall::AlterPartition(alter) => Some(alter.leader),
        ControlCall::CreateTopic(_)
        | ControlCall::DeleteTopic { .. }
        | ControlCall::Status
        | ControlCall::AllocateProducerIds { .. }
        | ControlCall::CreateAcls(_)
        | ControlCall::DeleteAcls(_) => None,
    }
}

impl Dispatcher {
    /// Serves `request` from `from` (already checked against the peer's certificate).
    pub async fn dispatch(&self, from: NodeId, request: Request) -> Response {
        if !self.members.contains(&from) {
            return Response::Refused(WireError::NotAMember { node: from });
        }
        match request {
            Request::AppendEntries(rpc) => Response::AppendEntries(self.blank.append_entries(rpc).await),
            Request::Vote(rpc) => match self.blank.refusal(&rpc) {
                Some(refused) => Response::Vote(Ok(refused)),
                None => Response::Vote(self.raft.vote(rpc).await),
            },
            Request::InstallSnapshot(rpc) => {
                Response::InstallSnapshot(self.blank.install_snapshot(rpc).await)
            }
            Request::Control(call) => {
                if let Some(claimed) = speaks_for(&call).filter(|&n| n != from) {
                    return Response::Refused(WireError::WrongPeer { claimed });
                }
                let (request, answered) = HostRequest::new(call);
                let reply = self.host.call(request, answered, self.call_timeout).await;
                Response::Control(reply.map_err(|e| WireError::from(&e)))
            }
        }
    }
}

/// Accepts connections on `endpoint` until it is closed. A request must arrive within
/// `read_timeout` of its stream's opening.
pub async fn serve(endpoint: quinn::Endpoint, dispatcher: Dispatcher, read_timeout: Duration) {
    while let Some(incoming) = endpoint.accept().await {
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else { return };
            let Some(cert) = peer_certificate(&connection) else { return };
            while let Ok((send, recv)) = connection.accept_bi().await {
                tokio::spawn(serve_stream(send, recv, cert.clone(), dispatcher.clone(), read_timeout));
            }
        });
    }
}

fn peer_certificate(connection: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.first().cloned()
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    cert: CertificateDer<'static>,
    dispatcher: Dispatcher,
    read_timeout: Duration,
) {
    // A peer that opens a stream and sends nothing (or a trickle) must not hold it forever.
    let read = tokio::time::timeout(read_timeout, read_frame::<Envelope>(&mut recv)).await;
    let Ok(Ok(envelope)) = read else { return };
    let response = if peer_is_node(&cert, envelope.from) {
        dispatcher.dispatch(envelope.from, envelope.request).await
    } else {
        Response::Refused(WireError::WrongPeer { claimed: envelope.from })
    };
    if write_frame(&mut send, &response).await.is_ok() {
        let _ = send.finish();
        // Wait for the peer to read the answer before the stream is dropped.
        let _ = send.stopped().await;
    }
}

/// Raft's network: a client per peer over the shared [`Transport`].
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    pub transport: Arc<Transport>,
}

/// Raft's client of one peer.
#[derive(Debug)]
pub struct PeerClient {
    transport: Arc<Transport>,
    target: u64,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, _node: &openraft::BasicNode) -> PeerClient {
        PeerClient { transport: self.transport.clone(), target }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, openraft::BasicNode, RaftError<u64, E>>>;

impl PeerClient {
    async fn call(&self, request: Request, option: &RPCOption) -> Result<Response, Unreachable> {
        let to = NodeId(u32::try_from(self.target).expect("node ids are u32"));
        self.transport.call(to, request, option.hard_ttl()).await.map_err(|e| Unreachable::new(&e))
    }

    #[allow(clippy::result_large_err)] // openraft's error type, not ours to box.
    fn answer<T, E: std::error::Error>(&self, result: Result<T, RaftError<u64, E>>) -> RpcResult<T, E> {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn unexpected<E: std::error::Error>(
    response: Response,
) -> RPCError<u64, openraft::BasicNode, RaftError<u64, E>> {
    let e = rpc_error(format!("unexpected answer {response:?}"));
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        match self.call(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(result) => self.answer(result),
            other => Err(unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(result) => self.answer(result),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> RpcResult<VoteResponse<u64>> {
        match self.call(Request::Vote(rpc), &option).await? {
            Response::Vote(result) => self.answer(result),
            other => Err(unexpected(other)),
        }
    }
}
