//! Starting one shard on its executor: the direct-I/O probe, the mesh, the shard's core, service
//! and bus, its partitions, its listeners (the shared address and its own, each a QUIC endpoint
//! and a TCP listener on the same port number), then upkeep until the node stops, then an
//! orderly shutdown.

use crate::bus::{Mesh, MeshBus};
use crate::config::NodeConfig;
use crate::connection::{Limits, NativeProtocol, accept_loop, serve_connection};
use crate::core::{CoreConfig, ShardCore};
use crate::disk::{DataDir, Disk};
use crate::metadata::TopicTable;
use crate::request_memory::ShardMemory;
use crate::runtime::GlommioRuntime;
use crate::server::ServeError;
use crate::service::PartitionService;
use crate::shard::Shard;
use crate::stats::NodeCounters;
use glommio::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir_log::storage::dma::DmaStorage;
use weir_replication::ShardId;

/// Everything a shard starts from, handed from the node's main thread to the shard's own.
#[derive(Debug)]
pub struct ShardStart {
    pub id: usize,
    pub config: NodeConfig,
    pub mesh: Mesh,
    pub table: TopicTable,
    pub stop: Arc<AtomicBool>,
    /// Where the shard says it listens (its id), or why it could not start.
    pub ready: std::sync::mpsc::Sender<Result<usize, ServeError>>,
    pub counters: Arc<NodeCounters>,
    /// Every shard waits here until all have opened their partitions.
    pub loaded: Arc<std::sync::Barrier>,
    pub quic_config: quinn::ServerConfig,
    pub limits: Limits,
    /// The control plane, for a node with peers; `None` for a node alone.
    pub link: Option<std::sync::Arc<dyn crate::control_link::ControlLink>>,
    /// The node's producer ids, shared by its shards.
    pub producer_ids: Arc<crate::producer_ids::ProducerIds>,
    /// The node's access control bindings, shared by its shards.
    pub acls: Arc<crate::acls::Acls>,
}

/// What a shard listens with, kept to stop them at shutdown.
#[derive(Debug, Default)]
struct Listeners {
    accepting: Vec<glommio::task::JoinHandle<()>>,
    endpoints: Vec<Rc<crate::quic_native::Endpoint>>,
}

/// Runs one shard until the node stops. Reports on `start.ready` whether it started.
pub async fn run_shard(start: ShardStart) {
    let ShardStart {
        id,
        config,
        mesh,
        table,
        stop,
        ready,
        counters,
        loaded,
        quic_config,
        limits,
        link,
        producer_ids,
        acls,
    } = start;
    let shard = match build(id, config, mesh, counters, crate::shard::Registries { producer_ids, acls }).await
    {
        Ok(shard) => shard,
        Err(e) => {
            let _ = ready.send(Err(e));
            // The other shards wait for this one there: let them on, to see the node stop and
            // end in order.
            loaded.wait();
            return;
        }
    };
    match link {
        Some(link) => join_cluster(&shard, link).await,
        None => {
            shard.core().apply_topics(table).await;
        }
    }
    shard.core().check_space().await;
    // No shard takes requests before every shard has opened its partitions: a request forwarded
    // to a shard still loading would find no topic. Blocking is fine here: nothing crosses the
    // mesh before the listeners open.
    loaded.wait();
    let listeners = match listen(&shard, quic_config, &limits) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(id));
    let running = || !stop.load(Ordering::SeqCst);
    // The cleaner runs beside upkeep, not in it: a step's I/O must not hold back flushes and
    // replica timers. Both end their current step before returning.
    futures::join!(shard.core().upkeep_while(running), shard.core().clean_while(running));
    shut_down(&shard, listeners).await;
}

/// Runs the shard under a control plane: its replicas follow the cluster metadata, its
/// followers fetch from their leaders, its leaders' ISR changes go to the controller.
/// The metadata published when the shard starts is applied before it takes requests.
async fn join_cluster(shard: &Rc<Shard>, link: std::sync::Arc<dyn crate::control_link::ControlLink>) {
    let core = shard.core().clone();
    core.join_cluster(link.node_id(), link.incarnation());
    *core.link.borrow_mut() = Some(link.clone());
    let fetcher = crate::replication::fetcher::Fetcher::new(shard.clone(), link.clone());
    *core.outbox_wake.borrow_mut() = Some(fetcher.wake.clone());
    glommio::spawn_local(fetcher.run()).detach();
    let mut meta = link.meta();
    apply_newest(&core, &mut meta).await;
    glommio::spawn_local(async move {
        while meta.changed().await.is_ok() {
            apply_newest(&core, &mut meta).await;
        }
    })
    .detach();
}

async fn apply_newest(
    core: &ShardCore<DataDir, GlommioRuntime>,
    meta: &mut tokio_rt::sync::watch::Receiver<std::sync::Arc<weir_cluster::ClusterMeta>>,
) {
    let newest = meta.borrow_and_update().clone();
    let failures = core.apply_meta(newest).await;
    if !failures.is_empty() {
        tracing::error!(
            ?failures,
            "partitions of the cluster metadata could not be opened; upkeep retries them"
        );
    }
}

/// The shard's core, bus and service, with the mesh's receivers served.
async fn build(
    id: usize,
    config: NodeConfig,
    mesh: Mesh,
    counters: Arc<NodeCounters>,
    registries: crate::shard::Registries,
) -> Result<Rc<Shard>, ServeError> {
    // The mesh first: every shard joins it, even one that then fails, so none waits for ever.
    let (senders, mut receivers) =
        mesh.join().await.map_err(|_| ServeError::Shard { shard: id, reason: "mesh join failed".into() })?;
    let allocator = DmaStorage::probe(&config.data_dir)
        .await
        .map_err(|source| ServeError::DataDir { path: config.data_dir.display().to_string(), source })?;
    let config = Rc::new(config);
    let shard_id = ShardId(id as u16);
    let open_files_max = config.open_files_max.expect("resolved at start") as usize / config.shards;
    let disk = DataDir::new(config.data_dir.clone(), open_files_max, allocator);
    let core = ShardCore::new(shard_id, CoreConfig::from(&*config), disk, GlommioRuntime::new());
    if let Some(cache) = &core.batch_cache {
        counters.shard(id).set_batch_cache(cache.counters());
    }
    let bus = Rc::new(MeshBus::new(shard_id, senders, config.shards, counters.clone()));
    let service = PartitionService::new(core, bus.clone());
    for (_, rx) in receivers.streams() {
        glommio::spawn_local(crate::bus::mesh_loop(bus.clone(), service.clone(), rx)).detach();
    }
    let shard = Shard::new(config, service.clone(), counters, registries);
    // Weak: the service is the shard's, and must not keep it alive.
    let weak = Rc::downgrade(&shard);
    service.set_group_handler(Rc::new(move |call| {
        let shard = weak.upgrade();
        Box::pin(async move {
            match shard {
                Some(shard) => crate::groups::call::run(&shard, call).await,
                None => {
                    let f = crate::service::types::Failure::new(
                        weir_net::ErrorCode::NotCoordinator,
                        "shard stopped",
                    );
                    crate::groups::call::answer_error(&call, f.into())
                }
            }
        })
    }));
    glommio::spawn_local(crate::groups::tick_loop(shard.clone())).detach();
    Ok(shard)
}

/// Binds the shared address and the shard's own: a QUIC endpoint and a TCP listener on each.
fn listen(
    shard: &Rc<Shard>,
    quic_config: quinn::ServerConfig,
    limits: &Limits,
) -> Result<Listeners, ServeError> {
    let config = &shard.config;
    let own_addr = std::net::SocketAddr::new(config.listen.ip(), config.shard_port(shard.id));
    let memory = ShardMemory::new(limits.memory.clone());
    let mut listeners = Listeners::default();
    for (addr, shared) in [(config.listen, true), (own_addr, false)] {
        let (served, memory_q) = (shard.clone(), memory.clone());
        let busy_poll = Duration::from_micros(config.quic_busy_poll_us);
        let endpoint =
            crate::quic_native::Endpoint::bind(addr, shared, quic_config.clone(), busy_poll, move |stream| {
                served.connection_opened();
                let peer = crate::peer::Peer::Quic { chain: stream.peer_chain().map(std::rc::Rc::new) };
                let serve =
                    serve_connection::<NativeProtocol, _>(served.clone(), memory_q.clone(), stream, peer);
                glommio::spawn_local(serve).detach();
            })
            .map_err(|source| ServeError::Listen { addr: format!("udp {addr}"), source })?;
        let connections = limits.connections.clone();
        endpoint.admit_with(move |remote| match connections.admit(remote.ip()) {
            Ok(guard) => Ok(Box::new(guard) as Box<dyn std::any::Any>),
            Err(refused) => Err(refused.to_string()),
        });
        listeners.endpoints.push(endpoint);
        let listener = TcpListener::bind(addr).map_err(|e| ServeError::Listen {
            addr: addr.to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let accept = accept_loop::<NativeProtocol>(
            shard.clone(),
            memory.clone(),
            limits.connections.clone(),
            listener,
        );
        listeners.accepting.push(glommio::spawn_local(accept).detach());
    }
    if let Some(addr) = config.kafka_listen_addr() {
        // Every shard accepts on the Kafka port too (SO_REUSEPORT): the kernel spreads the
        // connections, and a request for another shard's partition crosses the bus.
        let listener = TcpListener::bind(addr).map_err(|e| ServeError::Listen {
            addr: addr.to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let accept = accept_loop::<crate::frontend::kafka::KafkaProtocol>(
            shard.clone(),
            memory.clone(),
            limits.connections.clone(),
            listener,
        );
        listeners.accepting.push(glommio::spawn_local(accept).detach());
    }
    Ok(listeners)
}

/// Takes no new connections, lets the requests in flight finish (for a while), makes every
/// partition durable, then tells QUIC clients the node is gone. Connections still open are
/// dropped with the executor.
async fn shut_down(shard: &Shard, listeners: Listeners) {
    for task in &listeners.accepting {
        task.cancel();
    }
    for endpoint in &listeners.endpoints {
        // New QUIC connections are refused; those open keep their streams until the end.
        endpoint.stop_accepting();
    }
    shard.groups.drop_held();
    let deadline = std::time::Instant::now() + Duration::from_millis(shard.config.shutdown_timeout_ms);
    while shard.requests_in_flight() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if shard.requests_in_flight() > 0 {
        tracing::warn!(
            shard = shard.id,
            requests = shard.requests_in_flight(),
            "shutdown with requests unfinished"
        );
    }
    shard.core().flush_all().await;
    shard.core().disk.close_files().await;
    // TCP clients see their connections close with the process; the QUIC closes are sent
    // before `close` returns.
    for endpoint in &listeners.endpoints {
        endpoint.close();
    }
}
