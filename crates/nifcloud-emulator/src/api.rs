//! The operation table and the pure request pipeline: settle -> look up -> inject faults -> run -> envelope.

use crate::error::ApiError;
use crate::faults;
use crate::state::{self, State};
use crate::wire::Params;
use crate::xml::{self, Style, Xml};

/// An operation handler: validates, mutates, writes the reply body.
pub type Handler = fn(&mut State, &Params, &mut Xml, i64) -> Result<(), ApiError>;

/// One emulated operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The `Action` form value that selects it, e.g. `DescribeVolumes`.
    pub name: &'static str,
    /// Envelope style of its reply.
    pub style: Style,
    /// Whether it changes state (persisted to the state file after success).
    pub mutating: bool,
    /// Reads the parameters, changes the state and writes the reply's inner elements (the envelope and
    /// `requestId` are added around them).
    pub handler: Handler,
}

const fn op(name: &'static str, style: Style, mutating: bool, handler: Handler) -> Operation {
    Operation {
        name,
        style,
        mutating,
        handler,
    }
}

use Style::{Ec2, Elb, ElbMetadataOnly as ElbMeta};
use state::{elb, instances as inst, lb, sg, volumes as vol};

/// Every emulated operation.
pub const OPERATIONS: &[Operation] = &[
    op("DescribeInstances", Ec2, false, inst::describe_instances),
    op(
        "DescribeInstanceAttribute",
        Ec2,
        false,
        inst::describe_instance_attribute,
    ),
    op("StopInstances", Ec2, true, inst::stop_instances),
    op("StartInstances", Ec2, true, inst::start_instances),
    op("DescribeRegions", Ec2, false, inst::describe_regions),
    op(
        "DescribeAvailabilityZones",
        Ec2,
        false,
        inst::describe_availability_zones,
    ),
    op("CreateVolume", Ec2, true, vol::create_volume),
    op("AttachVolume", Ec2, true, vol::attach_volume),
    op("DetachVolume", Ec2, true, vol::detach_volume),
    op("DeleteVolume", Ec2, true, vol::delete_volume),
    op("ExtendVolumeSize", Ec2, true, vol::extend_volume_size),
    op("ModifyVolumeAttribute", Ec2, true, vol::modify_volume_attribute),
    op("DescribeVolumes", Ec2, false, vol::describe_volumes),
    op("CreateLoadBalancer", Elb, true, lb::create_load_balancer),
    op("RegisterPortWithLoadBalancer", Elb, true, lb::register_port),
    op("DeleteLoadBalancer", Elb, true, lb::delete_load_balancer),
    op("ConfigureHealthCheck", Elb, true, lb::configure_health_check),
    op("RegisterInstancesWithLoadBalancer", Elb, true, lb::register_instances),
    op(
        "DeregisterInstancesFromLoadBalancer",
        Elb,
        true,
        lb::deregister_instances,
    ),
    op("SetFilterForLoadBalancer", Elb, true, lb::set_filter),
    op("UpdateLoadBalancer", ElbMeta, true, lb::update_load_balancer),
    op(
        "UpdateLoadBalancerOption",
        ElbMeta,
        true,
        lb::update_load_balancer_option,
    ),
    op("ClearLoadBalancerSession", Elb, true, lb::clear_session),
    op("DescribeLoadBalancers", Elb, false, lb::describe_load_balancers),
    op("DescribeInstanceHealth", Elb, false, lb::describe_instance_health),
    op("NiftyCreateElasticLoadBalancer", Elb, true, elb::create),
    op("NiftyDeleteElasticLoadBalancer", Elb, true, elb::delete),
    op(
        "NiftyRegisterPortWithElasticLoadBalancer",
        Elb,
        true,
        elb::register_port,
    ),
    op(
        "NiftyRegisterInstancesWithElasticLoadBalancer",
        Elb,
        true,
        elb::register_instances,
    ),
    op(
        "NiftyDeregisterInstancesFromElasticLoadBalancer",
        Elb,
        true,
        elb::deregister_instances,
    ),
    op(
        "NiftyConfigureElasticLoadBalancerHealthCheck",
        Elb,
        true,
        elb::configure_health_check,
    ),
    op(
        "NiftyModifyElasticLoadBalancerAttributes",
        ElbMeta,
        true,
        elb::modify_attributes,
    ),
    op("NiftyUpdateElasticLoadBalancer", ElbMeta, true, elb::update),
    op("NiftyDescribeElasticLoadBalancers", Elb, false, elb::describe),
    op(
        "NiftyDescribeInstanceElasticLoadBalancerHealth",
        Elb,
        false,
        elb::describe_instance_health,
    ),
    op("CreateSecurityGroup", Ec2, true, sg::create),
    op("DeleteSecurityGroup", Ec2, true, sg::delete),
    op("DescribeSecurityGroups", Ec2, false, sg::describe),
    op("AuthorizeSecurityGroupIngress", Ec2, true, sg::authorize),
    op("RevokeSecurityGroupIngress", Ec2, true, sg::revoke),
    op("RegisterInstancesWithSecurityGroup", Ec2, true, sg::register_instances),
];

/// The operation named `action`.
pub fn find(action: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == action)
}

/// Names of every emulated operation.
pub fn action_names() -> Vec<&'static str> {
    OPERATIONS.iter().map(|o| o.name).collect()
}

/// The outcome of one authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status: 200, or the error's ([`ApiError::status`]).
    pub status: u16,
    /// The XML document sent: the operation's response envelope, or an error document.
    pub body: String,
    /// Error code, if the reply is an error.
    pub error_code: Option<String>,
    /// Whether state changed (a successful mutating operation).
    pub mutated: bool,
}

impl Reply {
    /// The error document of `e` with `request_id`, sent with `e`'s HTTP status.
    pub fn error(e: &ApiError, request_id: &str) -> Self {
        Self {
            status: e.status,
            body: xml::error_document(&e.code, &e.message, request_id),
            error_code: Some(e.code.clone()),
            mutated: false,
        }
    }
}

/// Runs one authenticated request against the state.
pub fn process(st: &mut State, params: &Params, now: i64) -> Reply {
    st.settle(now);
    let request_id = st.request_id();
    let action = params.get("Action").unwrap_or("");
    let Some(op) = find(action) else {
        let e = ApiError::new(
            "Client.InvalidAction",
            format!("The action {action:?} is not valid (or not emulated)."),
        );
        return Reply::error(&e, &request_id);
    };
    if let Some(e) = faults::evaluate(&mut st.faults, action, &mut st.rng) {
        return Reply::error(&e, &request_id);
    }
    let mut x = Xml::new();
    match (op.handler)(st, params, &mut x, now) {
        Ok(()) => Reply {
            status: 200,
            body: x.into_response(op.name, op.style, &request_id),
            error_code: None,
            mutated: op.mutating,
        },
        Err(e) => Reply::error(&e, &request_id),
    }
}
