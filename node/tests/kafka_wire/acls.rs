//! CreateAcls, DescribeAcls and DeleteAcls on the wire, for the node-alone and cluster tests.

use super::wire::Wire;
use kafka_protocol::messages::create_acls_request::{AclCreation, CreateAclsRequest};
use kafka_protocol::messages::delete_acls_request::{DeleteAclsFilter, DeleteAclsRequest};
use kafka_protocol::messages::describe_acls_request::DescribeAclsRequest;
use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::StrBytes;

/// Kafka's codes: topic, literal, "any", read, allow.
pub const TOPIC: i8 = 2;
pub const LITERAL: i8 = 3;
pub const ANY: i8 = 1;
pub const READ: i8 = 3;
pub const ALLOW: i8 = 3;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// A binding of `principal` reading topic `name`, allowed from any host.
pub fn creation(name: &str, principal: &str) -> AclCreation {
    AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s(name))
        .with_resource_pattern_type(LITERAL)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(READ)
        .with_permission_type(ALLOW)
}

/// Creates `creations`; the error code of each.
pub fn create(w: &mut Wire, v: i16, creations: Vec<AclCreation>) -> Vec<i16> {
    let body = RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(creations));
    let r = kind!(w.call(ApiKey::CreateAcls, v, body), CreateAcls);
    r.results.iter().map(|r| r.error_code).collect()
}

/// Every topic binding, as (resource name, principal), in the order listed.
pub fn describe(w: &mut Wire, v: i16) -> Vec<(String, String)> {
    describe_by_resource(w, v).into_iter().flatten().collect()
}

/// Every topic binding as [`describe`] lists them, resource by resource as the answer groups them.
pub fn describe_by_resource(w: &mut Wire, v: i16) -> Vec<Vec<(String, String)>> {
    let body = DescribeAclsRequest::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let r = kind!(w.call(ApiKey::DescribeAcls, v, RequestKind::DescribeAcls(body)), DescribeAcls);
    assert_eq!(r.error_code, 0, "v{v}: {r:?}");
    let mut all = Vec::new();
    for res in &r.resources {
        assert_eq!((res.resource_type, res.pattern_type), (TOPIC, LITERAL));
        let mut one = Vec::new();
        for a in &res.acls {
            assert_eq!((a.host.as_str(), a.operation, a.permission_type), ("*", READ, ALLOW));
            one.push((res.resource_name.to_string(), a.principal.to_string()));
        }
        all.push(one);
    }
    all
}

/// Deletes what a filter on topic `name` (and `principal`, if given) selects; the error code and
/// the (resource name, principal) of each binding deleted.
pub fn delete(w: &mut Wire, v: i16, name: &str, principal: Option<&str>) -> (i16, Vec<(String, String)>) {
    delete_with(w, v, vec![filter(name, principal)]).remove(0)
}

/// A filter on topic `name` (and `principal`, if given).
pub fn filter(name: &str, principal: Option<&str>) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(s(name)))
        .with_pattern_type_filter(LITERAL)
        .with_principal_filter(principal.map(s))
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

/// Deletes with `filters`; for each, the error code and what it deleted.
pub fn delete_with(
    w: &mut Wire,
    v: i16,
    filters: Vec<DeleteAclsFilter>,
) -> Vec<(i16, Vec<(String, String)>)> {
    let body = RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(filters));
    let r = kind!(w.call(ApiKey::DeleteAcls, v, body), DeleteAcls);
    let one = |f: &kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult| {
        let gone = f.matching_acls.iter().map(|m| (m.resource_name.to_string(), m.principal.to_string()));
        (f.error_code, gone.collect())
    };
    r.filter_results.iter().map(one).collect()
}
