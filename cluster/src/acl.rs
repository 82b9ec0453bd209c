//! Access control lists: bindings of a principal, host, operation and permission to a resource
//! pattern, with Kafka's filters to list and delete them. They are part of the cluster metadata
//! (a node alone keeps them in its data dir), so every node lists the same ones.
//!
//! Weir stores, lists and deletes bindings; it does not enforce them yet. Every client of a
//! plaintext listener is `User:ANONYMOUS`, and a list that cannot tell clients apart protects
//! nothing: enforcement comes with authentication (SASL, mutual TLS), as Redpanda enforces ACLs
//! only where clients authenticate.
//!
//! The numeric codes are Kafka's (`org.apache.kafka.common.acl` and `.resource`), so that a
//! binding goes to and from the wire unchanged.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Bindings kept at most: each is up to about 1.6 KB of every node's metadata.
pub const ACLS_MAX: usize = 10_000;
/// The longest principal, host or resource name taken, in bytes.
pub const ACL_FIELD_BYTES_MAX: usize = 512;
/// Bindings one request may create: the command that adds them stays well within a metadata
/// log entry (`rpc::COMMAND_BYTES_MAX`).
pub const ACL_CREATIONS_MAX: usize = 1_000;
/// Filters one request may delete or list with: each lists up to every binding in the answer.
pub const ACL_FILTERS_MAX: usize = 16;

/// Kafka's codes for "any" in a filter and for a value it does not know.
const CODE_UNKNOWN: i8 = 0;
const CODE_ANY: i8 = 1;
/// Kafka's pattern-type code that a filter uses to ask for every binding applying to a name.
const CODE_MATCH: i8 = 2;

/// The kind of resource a binding protects (Kafka's `ResourceType` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

/// How a binding's resource name applies (Kafka's `PatternType` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// The name itself; `*` names every resource of its type.
    Literal = 3,
    /// Every resource whose name starts with the name.
    Prefixed = 4,
}

/// What a binding allows or denies (Kafka's `AclOperation` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
    TwoPhaseCommit = 15,
}

/// Kafka's `AclPermissionType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny = 2,
    Allow = 3,
}

/// One access control entry on one resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, as `User:alice`; `User:*` is every user.
    pub principal: String,
    /// A client address, or `*` for any.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// How a filter selects by resource pattern type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    /// Bindings of any pattern type whose name is the filter's.
    Any,
    /// Bindings that apply to a resource of the filter's name: literally, through the `*`
    /// wildcard, or through a prefix of it.
    Match,
    /// Bindings of this pattern type whose name is the filter's.
    Exactly(PatternType),
}

/// A selection of bindings; each `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

/// Why a binding or a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AclError {
    /// A code that names no value, or "any"/"unknown" where a binding needs one value.
    #[error("invalid {field} code {code}")]
    InvalidCode { field: &'static str, code: i8 },
    #[error("invalid principal {principal:?}: expected Type:name, such as User:alice")]
    InvalidPrincipal { principal: String },
    #[error("{requested} {what} in one request, above the limit of {max}")]
    TooManyInRequest { what: &'static str, requested: usize, max: usize },
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} of {bytes} bytes, above the limit of {max}")]
    TooLong { field: &'static str, bytes: usize, max: usize },
    /// A cluster binding must name the cluster resource, `kafka-cluster`.
    #[error("a cluster binding must name the resource \"kafka-cluster\", not {name:?}")]
    InvalidClusterResource { name: String },
    #[error("{requested} bindings, above the limit of {max}")]
    TooMany { requested: usize, max: usize },
}

/// The one name of the cluster resource, as Kafka names it.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

impl ResourceType {
    /// The type with Kafka code `code`, or `None` for "any" (in a filter only).
    fn from_code(code: i8, any_allowed: bool) -> Result<Option<Self>, AclError> {
        Ok(Some(match code {
            CODE_ANY if any_allowed => return Ok(None),
            2 => Self::Topic,
            3 => Self::Group,
            4 => Self::Cluster,
            5 => Self::TransactionalId,
            6 => Self::DelegationToken,
            7 => Self::User,
            _ => return Err(AclError::InvalidCode { field: "resource type", code }),
        }))
    }
}

impl Operation {
    fn from_code(code: i8, any_allowed: bool) -> Result<Option<Self>, AclError> {
        use Operation::*;
        const ALL: [Operation; 14] = [
            All,
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            CreateTokens,
            DescribeTokens,
            TwoPhaseCommit,
        ];
        if code == CODE_ANY && any_allowed {
            return Ok(None);
        }
        match ALL.iter().find(|o| **o as i8 == code) {
            Some(o) => Ok(Some(*o)),
            None => Err(AclError::InvalidCode { field: "operation", code }),
        }
    }
}

impl Permission {
    fn from_code(code: i8, any_allowed: bool) -> Result<Option<Self>, AclError> {
        match code {
            CODE_ANY if any_allowed => Ok(None),
            2 => Ok(Some(Self::Deny)),
            3 => Ok(Some(Self::Allow)),
            _ => Err(AclError::InvalidCode { field: "permission type", code }),
        }
    }
}

impl PatternType {
    fn from_code(code: i8) -> Result<Self, AclError> {
        match code {
            3 => Ok(Self::Literal),
            4 => Ok(Self::Prefixed),
            _ => Err(AclError::InvalidCode { field: "pattern type", code }),
        }
    }
}

/// The raw fields of a binding or a filter as they come off the wire.
#[derive(Debug, Clone, Default)]
pub struct RawAcl {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

fn checked_field(field: &'static str, value: &str) -> Result<(), AclError> {
    if value.is_empty() {
        return Err(AclError::Empty { field });
    }
    if value.len() > ACL_FIELD_BYTES_MAX {
        return Err(AclError::TooLong { field, bytes: value.len(), max: ACL_FIELD_BYTES_MAX });
    }
    Ok(())
}

impl AclBinding {
    /// A binding to create, checked as Kafka checks one: every code names one value, the
    /// principal is `Type:name`, and a cluster binding names the cluster.
    pub fn new(raw: RawAcl) -> Result<Self, AclError> {
        let resource_type = ResourceType::from_code(raw.resource_type, false)?.expect("any refused");
        let pattern_type = PatternType::from_code(raw.pattern_type)?;
        let operation = Operation::from_code(raw.operation, false)?.expect("any refused");
        let permission = Permission::from_code(raw.permission, false)?.expect("any refused");
        let resource_name = raw.resource_name.unwrap_or_default();
        let principal = raw.principal.unwrap_or_default();
        let host = raw.host.unwrap_or_default();
        checked_field("resource name", &resource_name)?;
        checked_field("principal", &principal)?;
        if host.len() > ACL_FIELD_BYTES_MAX {
            return Err(AclError::TooLong { field: "host", bytes: host.len(), max: ACL_FIELD_BYTES_MAX });
        }
        if principal.split_once(':').is_none_or(|(kind, _)| kind.is_empty()) {
            return Err(AclError::InvalidPrincipal { principal });
        }
        if resource_type == ResourceType::Cluster && resource_name != CLUSTER_RESOURCE_NAME {
            return Err(AclError::InvalidClusterResource { name: resource_name });
        }
        Ok(Self { resource_type, resource_name, pattern_type, principal, host, operation, permission })
    }
}

impl AclFilter {
    /// A filter from the wire: "any" (code 1) and null match anything; pattern type 2 is
    /// Kafka's MATCH.
    pub fn new(raw: RawAcl) -> Result<Self, AclError> {
        let pattern = match raw.pattern_type {
            CODE_ANY => PatternFilter::Any,
            CODE_MATCH => PatternFilter::Match,
            code => PatternFilter::Exactly(PatternType::from_code(code)?),
        };
        if raw.resource_type == CODE_UNKNOWN {
            return Err(AclError::InvalidCode { field: "resource type", code: raw.resource_type });
        }
        for value in [&raw.resource_name, &raw.principal, &raw.host].into_iter().flatten() {
            if value.len() > ACL_FIELD_BYTES_MAX {
                return Err(AclError::TooLong {
                    field: "filter",
                    bytes: value.len(),
                    max: ACL_FIELD_BYTES_MAX,
                });
            }
        }
        Ok(Self {
            resource_type: ResourceType::from_code(raw.resource_type, true)?,
            resource_name: raw.resource_name,
            pattern,
            principal: raw.principal,
            host: raw.host,
            operation: Operation::from_code(raw.operation, true)?,
            permission: Permission::from_code(raw.permission, true)?,
        })
    }

    /// Whether `b` is one of the bindings this filter selects, as Kafka's
    /// `AclBindingFilter.matches`.
    pub fn matches(&self, b: &AclBinding) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.resource_type.is_none_or(|t| t == b.resource_type)
            && self.matches_pattern(b)
            && is(&self.principal, &b.principal)
            && is(&self.host, &b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }

    fn matches_pattern(&self, b: &AclBinding) -> bool {
        let Some(name) = &self.resource_name else {
            return match self.pattern {
                PatternFilter::Exactly(t) => t == b.pattern_type,
                PatternFilter::Any | PatternFilter::Match => true,
            };
        };
        match self.pattern {
            PatternFilter::Any => *name == b.resource_name,
            PatternFilter::Exactly(t) => t == b.pattern_type && *name == b.resource_name,
            PatternFilter::Match => match b.pattern_type {
                PatternType::Literal => *name == b.resource_name || b.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&b.resource_name),
            },
        }
    }
}

/// Adds `new` to `acls`, skipping those already there (creating a binding twice is not an
/// error, as in Kafka). Refuses all of them if the list would grow past [`ACLS_MAX`]; returns
/// how many were added.
pub fn add(acls: &mut Vec<AclBinding>, new: &[AclBinding]) -> Result<usize, AclError> {
    let have: HashSet<&AclBinding> = acls.iter().collect();
    let mut fresh: Vec<&AclBinding> = new.iter().filter(|b| !have.contains(b)).collect();
    fresh.sort();
    fresh.dedup();
    if acls.len() + fresh.len() > ACLS_MAX {
        return Err(AclError::TooMany { requested: acls.len() + fresh.len(), max: ACLS_MAX });
    }
    let added = fresh.len();
    let fresh: Vec<AclBinding> = fresh.into_iter().cloned().collect();
    acls.extend(fresh);
    Ok(added)
}

/// The bindings some filter selects, each once, and which of them each filter selects (as
/// indexes into `bindings`): a binding selected by several filters is listed under each, as
/// Kafka lists it, without being copied for each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matched {
    pub bindings: Vec<AclBinding>,
    pub per_filter: Vec<Vec<u32>>,
}

/// What `filters` select of `acls`.
pub fn matching(acls: &[AclBinding], filters: &[AclFilter]) -> Matched {
    let mut m = Matched { bindings: Vec::new(), per_filter: vec![Vec::new(); filters.len()] };
    for b in acls {
        let mut index = None;
        for (i, _) in filters.iter().enumerate().filter(|(_, f)| f.matches(b)) {
            let at = *index.get_or_insert_with(|| {
                m.bindings.push(b.clone());
                (m.bindings.len() - 1) as u32
            });
            m.per_filter[i].push(at);
        }
    }
    m
}

/// Removes every binding some filter selects.
pub fn remove_matching(acls: &mut Vec<AclBinding>, filters: &[AclFilter]) {
    acls.retain(|b| !filters.iter().any(|f| f.matches(b)));
}

/// Refuses a request with more than `max` items.
pub fn check_count(what: &'static str, requested: usize, max: usize) -> Result<(), AclError> {
    match requested > max {
        true => Err(AclError::TooManyInRequest { what, requested, max }),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(resource_type: i8, name: &str, pattern: i8, principal: &str, op: i8, perm: i8) -> RawAcl {
        RawAcl {
            resource_type,
            resource_name: Some(name.into()),
            pattern_type: pattern,
            principal: Some(principal.into()),
            host: Some("*".into()),
            operation: op,
            permission: perm,
        }
    }

    fn binding(name: &str, pattern: i8, principal: &str) -> AclBinding {
        AclBinding::new(raw(2, name, pattern, principal, 3, 3)).unwrap()
    }

    #[test]
    fn bindings_need_one_value_of_each_field() {
        assert!(AclBinding::new(raw(1, "t", 3, "User:a", 3, 3)).is_err(), "any resource type");
        assert!(AclBinding::new(raw(2, "t", 2, "User:a", 3, 3)).is_err(), "match pattern");
        assert!(AclBinding::new(raw(2, "t", 3, "User:a", 1, 3)).is_err(), "any operation");
        assert!(AclBinding::new(raw(2, "t", 3, "User:a", 3, 1)).is_err(), "any permission");
        assert!(AclBinding::new(raw(2, "t", 3, "alice", 3, 3)).is_err(), "principal without type");
        assert!(AclBinding::new(raw(2, "", 3, "User:a", 3, 3)).is_err(), "empty name");
        assert!(AclBinding::new(raw(4, "c", 3, "User:a", 3, 3)).is_err(), "cluster named otherwise");
        assert!(AclBinding::new(raw(2, "t", 3, ":a", 3, 3)).is_err(), "principal without type");
        assert!(AclBinding::new(raw(2, "t", 3, "User:a", 15, 3)).is_ok(), "two-phase commit");
        assert!(AclBinding::new(raw(4, "kafka-cluster", 3, "User:a", 9, 3)).is_ok());
        assert!(AclBinding::new(raw(2, "t", 3, "User:a", 99, 3)).is_err(), "unknown operation");
    }

    #[test]
    fn filters_select_as_kafka_does() {
        let acls =
            vec![binding("orders", 3, "User:a"), binding("*", 3, "User:b"), binding("ord", 4, "User:c")];
        let filter = |name: Option<&str>, pattern: i8, principal: Option<&str>| {
            AclFilter::new(RawAcl {
                resource_type: 1,
                resource_name: name.map(Into::into),
                pattern_type: pattern,
                principal: principal.map(Into::into),
                host: None,
                operation: 1,
                permission: 1,
            })
            .unwrap()
        };
        let names = |f: AclFilter| -> Vec<String> {
            let m = matching(&acls, &[f]);
            m.per_filter[0].iter().map(|i| m.bindings[*i as usize].principal.clone()).collect()
        };
        assert_eq!(names(filter(None, 1, None)).len(), 3);
        assert_eq!(names(filter(Some("orders"), 3, None)), ["User:a"]);
        assert_eq!(names(filter(Some("orders"), 1, None)), ["User:a"]);
        assert_eq!(names(filter(Some("orders"), 2, None)), ["User:a", "User:b", "User:c"]);
        assert_eq!(names(filter(Some("other"), 2, None)), ["User:b"]);
        assert_eq!(names(filter(None, 4, None)), ["User:c"]);
        assert_eq!(names(filter(None, 1, Some("User:b"))), ["User:b"]);
        assert_eq!(names(filter(Some("ord"), 4, None)), ["User:c"]);
        assert!(names(filter(Some("orders"), 4, None)).is_empty(), "prefixed names exactly");
        // Two filters selecting one binding list it under each, held once.
        let m = matching(&acls, &[filter(Some("orders"), 3, None), filter(None, 1, Some("User:a"))]);
        assert_eq!((m.bindings.len(), m.per_filter), (1, vec![vec![0], vec![0]]));
    }

    #[test]
    fn adding_is_idempotent_and_bounded() {
        let mut acls = Vec::new();
        assert_eq!(add(&mut acls, &[binding("t", 3, "User:a"), binding("t", 3, "User:a")]), Ok(1));
        assert_eq!(add(&mut acls, &[binding("t", 3, "User:a")]), Ok(0));
        assert_eq!(acls.len(), 1);
        let many: Vec<_> = (0..ACLS_MAX).map(|i| binding(&format!("t{i}"), 3, "User:a")).collect();
        assert!(matches!(add(&mut acls, &many), Err(AclError::TooMany { .. })));
        assert_eq!(acls.len(), 1, "all or nothing");
        let all = AclFilter::new(RawAcl {
            resource_type: 1,
            pattern_type: 1,
            operation: 1,
            permission: 1,
            ..RawAcl::default()
        })
        .unwrap();
        remove_matching(&mut acls, &[all]);
        assert!(acls.is_empty());
    }
}
