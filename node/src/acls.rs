//! The node's access control bindings (see `weir_cluster::acl`): stored, listed and deleted;
//! not enforced until clients authenticate. In a cluster they are the replicated metadata's,
//! changed through the controller, so every node lists the same ones. On a node without peers
//! they are the file `acls.json` in the data dir, rewritten durably (a new file renamed over
//! it, then the directory synced) before a change is answered.
//!
//! One per node, shared by its shards (`Send + Sync`). Only the admin APIs touch it; a change
//! on a node alone writes and syncs the file on the calling shard's thread, as taking producer
//! ids does, which is brief and rare (a change that changes nothing writes nothing). Readers
//! take the list behind an `Arc`, so the lock is held only to swap it.

use crate::control_link::ControlLink;
use crate::frontend::cluster::{applied, control_failure};
use crate::service::types::Failure;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use weir_cluster::acl::{self, AclBinding, AclFilter, Matched};
use weir_net::ErrorCode;

/// The file holding a node alone's bindings, in its data dir.
pub const ACLS_FILE: &str = "acls.json";

enum Source {
    /// A node without peers: its file, and the bindings in it.
    File {
        path: PathBuf,
        acls: Mutex<Arc<Vec<AclBinding>>>,
    },
    Cluster(Arc<dyn ControlLink>),
}

/// See the module documentation.
pub struct Acls {
    source: Source,
}

impl std::fmt::Debug for Acls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acls").finish_non_exhaustive()
    }
}

impl Acls {
    /// The cluster's bindings through `link`, or without one those of `data_dir`'s file. A
    /// file that cannot be read or parsed fails the start: serving without the bindings a user
    /// made would lose them at the next change.
    pub fn open(data_dir: &Path, link: Option<Arc<dyn ControlLink>>) -> std::io::Result<Self> {
        let source = match link {
            Some(link) => Source::Cluster(link),
            None => {
                let path = data_dir.join(ACLS_FILE);
                let acls = match std::fs::read(&path) {
                    Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(e),
                };
                Source::File { path, acls: Mutex::new(Arc::new(acls)) }
            }
        };
        Ok(Self { source })
    }

    /// Adds `bindings` (checked already); resolves once they are durable and, in a cluster,
    /// listed by this node.
    pub async fn create(&self, bindings: Vec<AclBinding>) -> Result<(), Failure> {
        match &self.source {
            Source::Cluster(link) => {
                link.create_acls(bindings.clone()).await.map_err(control_failure)?;
                applied(link, |m| {
                    let have: HashSet<&AclBinding> = m.acls.iter().collect();
                    bindings.iter().all(|b| have.contains(b))
                })
                .await;
                Ok(())
            }
            Source::File { path, acls } => {
                let mut acls = acls.lock().expect("not poisoned");
                let mut next = acls.as_ref().clone();
                let added = acl::add(&mut next, &bindings)
                    .map_err(|e| Failure::new(ErrorCode::InvalidArgument, e.to_string()))?;
                if added > 0 {
                    write_file(path, &next)?;
                    *acls = Arc::new(next);
                }
                Ok(())
            }
        }
    }

    /// Removes the bindings the filters select; resolves with them, filter by filter, once
    /// their removal is durable and, in a cluster, applied by this node.
    pub async fn delete(&self, filters: Vec<AclFilter>) -> Result<Matched, Failure> {
        match &self.source {
            Source::Cluster(link) => {
                let matched = link.delete_acls(filters.clone()).await.map_err(control_failure)?;
                applied(link, |m| !m.acls.iter().any(|b| filters.iter().any(|f| f.matches(b)))).await;
                Ok(matched)
            }
            Source::File { path, acls } => {
                let mut acls = acls.lock().expect("not poisoned");
                let matched = acl::matching(&acls, &filters);
                if !matched.bindings.is_empty() {
                    let mut next = acls.as_ref().clone();
                    acl::remove_matching(&mut next, &filters);
                    write_file(path, &next)?;
                    *acls = Arc::new(next);
                }
                Ok(matched)
            }
        }
    }

    /// The bindings `filter` selects, in the order they were added.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        let all = match &self.source {
            Source::Cluster(link) => link.meta().borrow().acls.clone(),
            Source::File { acls, .. } => acls.lock().expect("not poisoned").clone(),
        };
        all.iter().filter(|b| filter.matches(b)).cloned().collect()
    }
}

/// Replaces the file with `acls`, durably.
fn write_file(path: &Path, acls: &[AclBinding]) -> Result<(), Failure> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        let fresh = path.with_extension("new");
        let mut file = std::fs::File::create(&fresh)?;
        file.write_all(&serde_json::to_vec(acls).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&fresh, path)?;
        std::fs::File::open(path.parent().expect("a file in the data dir"))?.sync_all()
    };
    write().map_err(|e| Failure::new(ErrorCode::StorageError, format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_cluster::acl::RawAcl;

    fn raw(name: &str) -> RawAcl {
        RawAcl {
            resource_type: 2,
            resource_name: Some(name.into()),
            pattern_type: 3,
            principal: Some("User:a".into()),
            host: Some("*".into()),
            operation: 3,
            permission: 3,
        }
    }

    #[test]
    fn a_node_alone_keeps_its_bindings_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let acls = Acls::open(dir.path(), None).unwrap();
        let bindings = vec![AclBinding::new(raw("a")).unwrap(), AclBinding::new(raw("b")).unwrap()];
        futures::executor::block_on(acls.create(bindings.clone())).unwrap();
        let all = AclFilter::new(RawAcl {
            resource_type: 1,
            pattern_type: 1,
            operation: 1,
            permission: 1,
            ..raw("")
        })
        .map(|f| AclFilter { resource_name: None, ..f })
        .unwrap();
        let again = Acls::open(dir.path(), None).unwrap();
        assert_eq!(again.describe(&all), bindings);
        let deleted =
            futures::executor::block_on(again.delete(vec![AclFilter::new(raw("a")).unwrap()])).unwrap();
        assert_eq!((deleted.bindings, deleted.per_filter), (vec![bindings[0].clone()], vec![vec![0]]));
        assert_eq!(Acls::open(dir.path(), None).unwrap().describe(&all), bindings[1..]);
        std::fs::write(dir.path().join(ACLS_FILE), b"{").unwrap();
        assert!(Acls::open(dir.path(), None).is_err(), "a damaged file fails the start");
    }
}
