//! Instances: records with a private address in a subnet. No machine is started; an
//! instance target routes to the address while the instance is running.

use elb_model::state::RunInstances;
use elb_model::{Command, Instance, InstanceOptions, InstanceState, Outcome, Region, Tenancy};

use super::filters::Filters;
use super::{create_tagged, next_token, not_built, page, tag_set, tag_specifications, wanted};
use crate::ApiCall;
use crate::clock;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

/// `SecurityGroup.N`: groups of the default VPC by name, as EC2 takes them.
fn group_ids_by_name(api: &ApiCall<'_>, names: &[String]) -> Result<Vec<String>, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let vpc = state.default_vpc().map(|v| v.id.as_str());
    names
        .iter()
        .map(|name| {
            state
                .security_groups
                .values()
                .find(|g| &g.name == name && Some(g.vpc_id.as_str()) == vpc)
                .map(|g| g.id.clone())
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "InvalidGroup.NotFound",
                        format!("The security group '{name}' does not exist in default VPC"),
                    )
                })
        })
        .collect()
}

/// RunInstances' members that only a machine would act on. With no machine, they change
/// nothing and AWS echoes them nowhere DescribeInstances shows; those that would forbid a later
/// call (termination or stop protection) are refused when set.
fn machine_only(params: &Params) -> Result<(), ApiError> {
    for accepted in ["UserData", "AdditionalInfo"] {
        params.optional(accepted);
    }
    params.one_of("InstanceInitiatedShutdownBehavior", &["stop", "terminate"])?;
    for protection in ["DisableApiTermination", "DisableApiStop"] {
        if params.bool(protection)? == Some(true) {
            return Err(not_built(protection, "instance protection"));
        }
    }
    Ok(())
}

fn instance(x: &mut Xml, state: &Region, i: &Instance) {
    x.leaf("instanceId", &i.id)
        .leaf("imageId", &i.image_id)
        .node("instanceState", |x| {
            x.leaf("code", i.state.code().to_string())
                .leaf("name", i.state.as_str());
        })
        .leaf(
            "privateDnsName",
            format!(
                "ip-{}.ec2.internal",
                i.private_ip.to_string().replace('.', "-")
            ),
        )
        .leaf("dnsName", "")
        .leaf("instanceType", &i.instance_type)
        .leaf_opt("keyName", i.options.key_name.as_deref())
        .leaf("launchTime", clock::iso8601(i.launched_ms))
        .node("placement", |x| {
            // A dedicated VPC's instances are dedicated, whatever the launch asked.
            let vpc = state.vpcs.get(&i.vpc_id).map(|v| v.instance_tenancy);
            let tenancy = match (vpc, i.options.tenancy) {
                (Some(Tenancy::Dedicated), _) => Tenancy::Dedicated,
                (_, asked) => asked.unwrap_or_default(),
            };
            x.leaf("availabilityZone", &i.availability_zone)
                .leaf("tenancy", tenancy.as_str());
        })
        .leaf("sourceDestCheck", "true")
        .leaf_opt("clientToken", i.client_token.as_deref())
        .leaf("subnetId", &i.subnet_id)
        .leaf("vpcId", &i.vpc_id)
        .leaf("privateIpAddress", i.private_ip.to_string())
        .leaf("ebsOptimized", i.options.ebs_optimized.to_string())
        .node("monitoring", |x| {
            let state = if i.options.monitoring {
                "enabled"
            } else {
                "disabled"
            };
            x.leaf("state", state);
        })
        .items("groupSet", &i.security_groups, |x, g| {
            let name = state.security_groups.get(g).map_or("", |g| g.name.as_str());
            x.leaf("groupId", g).leaf("groupName", name);
        });
    tag_set(x, state, &i.id);
}

pub(super) fn run(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let image_id = params.required("ImageId")?.to_owned();
    let min = params
        .int("MinCount", 1, 100)?
        .ok_or_else(|| ApiError::missing("MinCount"))?;
    let max = params
        .int("MaxCount", 1, 100)?
        .ok_or_else(|| ApiError::missing("MaxCount"))?;
    if min > max {
        return Err(ApiError::new(
            400,
            "InvalidParameterValue",
            "MinCount cannot exceed MaxCount",
        ));
    }
    let private_ip = params
        .optional("PrivateIpAddress")
        .map(|ip| {
            ip.parse().map_err(|_| {
                ApiError::new(
                    400,
                    "InvalidParameterValue",
                    format!("Invalid private IP address '{ip}'"),
                )
            })
        })
        .transpose()?;
    let tenancy = match params.one_of("Placement.Tenancy", &["default", "dedicated", "host"])? {
        None => None,
        Some("default") => Some(Tenancy::Default),
        Some("dedicated") => Some(Tenancy::Dedicated),
        Some(_) => return Err(not_built("Placement.Tenancy", "dedicated hosts")),
    };
    let mut security_groups = params.list("SecurityGroupId")?;
    for id in group_ids_by_name(api, &params.list("SecurityGroup")?)? {
        if !security_groups.contains(&id) {
            security_groups.push(id);
        }
    }
    let run = RunInstances {
        subnet_id: params.optional("SubnetId").map(str::to_owned),
        availability_zone: params
            .optional("Placement.AvailabilityZone")
            .map(str::to_owned),
        private_ip,
        count: max as u32,
        security_groups,
        image_id,
        instance_type: params
            .optional("InstanceType")
            .unwrap_or("m1.small")
            .to_owned(),
        client_token: params.optional("ClientToken").map(str::to_owned),
        options: InstanceOptions {
            key_name: params.optional("KeyName").map(str::to_owned),
            tenancy,
            monitoring: params.bool("Monitoring.Enabled")? == Some(true),
            ebs_optimized: params.bool("EbsOptimized")? == Some(true),
        },
    };
    machine_only(params)?;
    let tags = tag_specifications(params, "instance")?;
    let Outcome::CreatedAll(ids) = create_tagged(api, Command::RunInstances(run), tags)? else {
        return Err(ApiError::internal("RunInstances created nothing"));
    };
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let mut x = Xml::new();
    x.leaf("reservationId", format!("r-{}", &ids[0][2..]))
        .leaf("ownerId", &state.scope.account)
        .node("groupSet", |_| {})
        .items("instancesSet", &ids, |x, id| {
            instance(x, state, &state.instances[id])
        });
    Ok(x)
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let ids = wanted(
        params,
        "InstanceId",
        |id| state.instances.contains_key(id),
        "InvalidInstanceID.NotFound",
    )?;
    // Managed instances (EKS Auto Mode's, …) do not exist here: there is none to include.
    params.bool("IncludeManagedResources")?;
    let filters = Filters::parse(
        params,
        &[
            "instance-id",
            "instance-state-name",
            "instance-state-code",
            "vpc-id",
            "subnet-id",
            "private-ip-address",
            "availability-zone",
            "image-id",
            "instance-type",
            "instance.group-id",
            "client-token",
        ],
        true,
    )?;
    let found = state
        .instances
        .values()
        .filter(|i| ids.is_empty() || ids.contains(&i.id))
        .filter(|i| {
            filters.matches(Some(&i.tags), |name| match name {
                "instance-id" => vec![i.id.clone()],
                "instance-state-name" => vec![i.state.as_str().into()],
                "instance-state-code" => vec![i.state.code().to_string()],
                "vpc-id" => vec![i.vpc_id.clone()],
                "subnet-id" => vec![i.subnet_id.clone()],
                "private-ip-address" => vec![i.private_ip.to_string()],
                "availability-zone" => vec![i.availability_zone.clone()],
                "image-id" => vec![i.image_id.clone()],
                "instance-type" => vec![i.instance_type.clone()],
                "instance.group-id" => i.security_groups.clone(),
                _ => i.client_token.clone().into_iter().collect(),
            })
        });
    let (found, next) = page(params, found, |i| &i.id)?;
    let mut x = Xml::new();
    next_token(&mut x, next);
    // One reservation per instance: elbd does not keep launch batches.
    x.items("reservationSet", found, |x, i| {
        x.leaf("reservationId", format!("r-{}", &i.id[2..]))
            .leaf("ownerId", &state.scope.account)
            .node("groupSet", |_| {})
            .items("instancesSet", [i], |x, i| instance(x, state, i));
    });
    Ok(x)
}

pub(super) fn set_state(
    api: &ApiCall<'_>,
    params: &Params,
    to: InstanceState,
) -> Result<Xml, ApiError> {
    let ids = params.list("InstanceId")?;
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceId"));
    }
    // No operating system runs: a stop or termination skips nothing, and starting needs no
    // extra information.
    match to {
        InstanceState::Running => {
            params.optional("AdditionalInfo");
        }
        InstanceState::Stopped | InstanceState::Terminated => {
            params.bool("Force")?;
            params.bool("SkipOsShutdown")?;
        }
    }
    if to == InstanceState::Stopped && params.bool("Hibernate")? == Some(true) {
        return Err(not_built("Hibernate", "hibernation"));
    }
    let before = api.snapshot();
    let (after, _) = api.update(|state, cx| {
        state.apply(
            Command::SetInstanceState {
                ids: ids.clone(),
                state: to,
            },
            cx,
        )
    })?;
    let mut x = Xml::new();
    x.items("instancesSet", &ids, |x, id| {
        let was = before.state().instances[id].state;
        let now = after.state().instances[id].state;
        x.leaf("instanceId", id)
            .node("currentState", |x| {
                x.leaf("code", now.code().to_string())
                    .leaf("name", now.as_str());
            })
            .node("previousState", |x| {
                x.leaf("code", was.code().to_string())
                    .leaf("name", was.as_str());
            });
    });
    Ok(x)
}
