//! One shard of a node: a glommio executor pinned to a core, its [`PartitionService`] over the
//! partitions it owns (on direct I/O), its end of the channel mesh, and its counters.
//!
//! A request is served by the shard that owns what it touches: the partition's owner (as the
//! topic's placement table says) for produce, fetch and list-offsets, shard 0 for topic changes.
//! A request that arrives elsewhere is decoded there once and sent on over the mesh as a typed
//! [`ShardRequest`](crate::bus::ShardRequest).

use crate::bus::MeshBus;
use crate::config::NodeConfig;
use crate::core::ShardCore;
use crate::disk::DataDir;
use crate::runtime::GlommioRuntime;
use crate::service::PartitionService;
use crate::stats::{NodeCounters, bump};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The service of a node's shard: partitions on direct I/O, glommio's clock, the mesh.
pub type NodeService = PartitionService<DataDir, GlommioRuntime, MeshBus>;

/// State of one shard; lives on its executor's thread.
#[derive(Debug)]
pub struct Shard {
    pub id: usize,
    pub config: Rc<NodeConfig>,
    pub service: Rc<NodeService>,
    /// Counters of every shard; this one writes only its own.
    pub counters: Arc<NodeCounters>,
    /// The node's producer ids, shared by its shards.
    pub producer_ids: Arc<crate::producer_ids::ProducerIds>,
    /// The node's access control bindings, shared by its shards.
    pub acls: Arc<crate::acls::Acls>,
    /// The consumer groups this shard coordinates.
    pub groups: crate::groups::GroupService,
}

/// What the node's shards share beyond the data path, made once at start.
#[derive(Debug, Clone)]
pub struct Registries {
    pub producer_ids: Arc<crate::producer_ids::ProducerIds>,
    pub acls: Arc<crate::acls::Acls>,
}

/// Counts a request as in flight for as long as it lives.
#[derive(Debug)]
pub struct InFlight(Rc<Shard>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.counters.shard(self.0.id).in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shard {
    pub fn new(
        config: Rc<NodeConfig>,
        service: Rc<NodeService>,
        counters: Arc<NodeCounters>,
        registries: Registries,
    ) -> Rc<Self> {
        let groups = crate::groups::GroupService::default();
        let Registries { producer_ids, acls } = registries;
        Rc::new(Self { id: service.shard().index(), config, service, counters, producer_ids, acls, groups })
    }

    /// The data-plane core of this shard's service.
    pub fn core(&self) -> &Rc<ShardCore<DataDir, GlommioRuntime>> {
        &self.service.core
    }

    /// Counts a client request, in flight until the returned guard drops.
    pub fn begin_request(self: &Rc<Self>) -> InFlight {
        let mine = self.counters.shard(self.id);
        mine.in_flight.fetch_add(1, Ordering::SeqCst);
        bump(&mine.requests);
        InFlight(self.clone())
    }

    /// Counts an accepted TCP connection or QUIC stream.
    pub fn connection_opened(&self) {
        bump(&self.counters.shard(self.id).connections);
    }

    /// Requests in flight on the whole node.
    pub fn requests_in_flight(&self) -> usize {
        self.counters.in_flight()
    }
}
