//! Access control bindings: CreateAcls, DescribeAcls, DeleteAcls over the node's
//! [`Acls`](crate::acls::Acls). Stored and listed as Kafka does; not enforced until clients
//! authenticate (see `weir_cluster::acl`).

use crate::service::types::Failure;
use crate::shard::Shard;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_request::{AclCreation, CreateAclsRequest};
use kafka_protocol::messages::create_acls_response::{AclCreationResult, CreateAclsResponse};
use kafka_protocol::messages::delete_acls_request::DeleteAclsRequest;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl, DeleteAclsResponse,
};
use kafka_protocol::messages::describe_acls_request::DescribeAclsRequest;
use kafka_protocol::messages::describe_acls_response::{
    AclDescription, DescribeAclsResource, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::rc::Rc;
use weir_cluster::acl::{self, AclBinding, AclFilter, Matched, RawAcl};
use weir_kafka::codes::kafka_code;
use weir_net::ErrorCode;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn owned(s: &StrBytes) -> String {
    s.as_str().to_owned()
}

/// The filter of a DescribeAcls request or of a DeleteAcls filter: the same fields by the same
/// names in two generated types.
macro_rules! raw_filter {
    ($f:expr) => {
        RawAcl {
            resource_type: $f.resource_type_filter,
            resource_name: $f.resource_name_filter.as_ref().map(owned),
            pattern_type: $f.pattern_type_filter,
            principal: $f.principal_filter.as_ref().map(owned),
            host: $f.host_filter.as_ref().map(owned),
            operation: $f.operation,
            permission: $f.permission_type,
        }
    };
}

pub async fn create_acls(shard: &Rc<Shard>, req: CreateAclsRequest) -> CreateAclsResponse {
    if let Err(e) = acl::check_count("creations", req.creations.len(), acl::ACL_CREATIONS_MAX) {
        let result = AclCreationResult::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(text(&e.to_string())));
        return CreateAclsResponse::default().with_results(vec![result; req.creations.len()]);
    }
    let checked: Vec<_> = req.creations.into_iter().map(|c| AclBinding::new(raw_creation(c))).collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    // The valid ones are added together; each creation gets its own answer.
    let added = if valid.is_empty() { Ok(()) } else { shard.acls.create(valid).await };
    let results = checked
        .into_iter()
        .map(|c| {
            let (code, message) = match (&c, &added) {
                (Err(e), _) => (ResponseError::InvalidRequest.code(), Some(e.to_string())),
                (Ok(_), Err(f)) => (kafka_code(f.code), Some(f.message.clone())),
                (Ok(_), Ok(())) => (0, None),
            };
            AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(message.as_deref().map(text))
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn raw_creation(c: AclCreation) -> RawAcl {
    RawAcl {
        resource_type: c.resource_type,
        resource_name: Some(owned(&c.resource_name)),
        pattern_type: c.resource_pattern_type,
        principal: Some(owned(&c.principal)),
        host: Some(owned(&c.host)),
        operation: c.operation,
        permission: c.permission_type,
    }
}

pub fn describe_acls(shard: &Rc<Shard>, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let filter = match AclFilter::new(raw_filter!(req)) {
        Ok(f) => f,
        Err(e) => {
            return DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(text(&e.to_string())));
        }
    };
    // Kafka answers resource by resource, each with its entries.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in shard.acls.describe(&filter) {
        let entry = AclDescription::default()
            .with_principal(text(&b.principal))
            .with_host(text(&b.host))
            .with_operation(b.operation as i8)
            .with_permission_type(b.permission as i8);
        let same = |r: &DescribeAclsResource| {
            r.resource_type == b.resource_type as i8
                && r.resource_name.as_str() == b.resource_name
                && r.pattern_type == b.pattern_type as i8
        };
        match resources.iter_mut().find(|r| same(r)) {
            Some(r) => r.acls.push(entry),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type as i8)
                    .with_resource_name(text(&b.resource_name))
                    .with_pattern_type(b.pattern_type as i8)
                    .with_acls(vec![entry]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete_acls(shard: &Rc<Shard>, req: DeleteAclsRequest) -> DeleteAclsResponse {
    if let Err(e) = acl::check_count("filters", req.filters.len(), acl::ACL_FILTERS_MAX) {
        let refused = error_result(ResponseError::InvalidRequest.code(), e.to_string());
        return DeleteAclsResponse::default().with_filter_results(vec![refused; req.filters.len()]);
    }
    let checked: Vec<_> = req.filters.iter().map(|f| AclFilter::new(raw_filter!(f))).collect();
    let valid: Vec<AclFilter> = checked.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
    let deleted = match valid.is_empty() {
        true => Ok(Matched::default()),
        false => {
            shard.acls.delete(valid.clone()).await.and_then(|m| match m.per_filter.len() == valid.len() {
                true => Ok(m),
                false => Err(Failure::new(ErrorCode::Unknown, "the controller answered for other filters")),
            })
        }
    };
    let mut per_filter = deleted.as_ref().map(|m| m.per_filter.iter()).ok();
    let results = checked
        .into_iter()
        .map(|f| match (f, &deleted) {
            (Err(e), _) => error_result(ResponseError::InvalidRequest.code(), e.to_string()),
            (Ok(_), Err(f)) => error_result(kafka_code(f.code), f.message.clone()),
            (Ok(_), Ok(m)) => {
                let gone = per_filter.as_mut().and_then(Iterator::next).map_or(&[][..], Vec::as_slice);
                let acls = gone.iter().map(|i| matching_acl(&m.bindings[*i as usize])).collect();
                DeleteAclsFilterResult::default().with_matching_acls(acls)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

fn error_result(code: i16, message: String) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default().with_error_code(code).with_error_message(Some(text(&message)))
}

fn matching_acl(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type as i8)
        .with_resource_name(text(&b.resource_name))
        .with_pattern_type(b.pattern_type as i8)
        .with_principal(text(&b.principal))
        .with_host(text(&b.host))
        .with_operation(b.operation as i8)
        .with_permission_type(b.permission as i8)
}
