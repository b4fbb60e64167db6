//! Name rules for load balancers and target groups, and how DNS names are formed.

use crate::error::{ModelError, Result};

/// `Name` of CreateLoadBalancer: ≤ 32 of `[A-Za-z0-9-]`, no leading or trailing `-`, and not
/// starting with `internal-`.
pub fn check_load_balancer_name(name: &str) -> Result<()> {
    check_name("load balancer", name)?;
    if name.starts_with("internal-") {
        return Err(ModelError::validation(format!(
            "Load balancer name '{name}' cannot begin with 'internal-'"
        )));
    }
    Ok(())
}

/// `Name` of CreateTargetGroup: the load balancer rules minus the `internal-` one.
pub fn check_target_group_name(name: &str) -> Result<()> {
    check_name("target group", name)
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(ModelError::validation(format!(
            "Invalid {what} name '{name}': {why}"
        )))
    };
    if name.is_empty() || name.len() > 32 {
        return bad("must be 1 to 32 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return bad("only alphanumeric characters and hyphens are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("cannot begin or end with a hyphen");
    }
    Ok(())
}

/// Whether `name` has the form of an AWS region: `[a-z]{2}(-gov)?-[a-z]+-\d` (us-east-1,
/// us-gov-west-1, eu-central-2, …).
pub fn is_region_name(name: &str) -> bool {
    let mut parts = name.split('-');
    let country = parts.next().unwrap_or("");
    let mut rest: Vec<&str> = parts.collect();
    if rest.first() == Some(&"gov") {
        rest.remove(0);
    }
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    country.len() == 2
        && lower(country)
        && matches!(rest.as_slice(), [area, n] if lower(area) && n.len() == 1 && n.as_bytes()[0].is_ascii_digit())
}

/// ALB: `[internal-]NAME-DIGITS.REGION.elb.DOMAIN`.
pub fn alb_dns_name(internal: bool, name: &str, digits: u64, region: &str, domain: &str) -> String {
    let prefix = if internal { "internal-" } else { "" };
    format!("{prefix}{name}-{digits}.{region}.elb.{domain}")
}

/// NLB and GWLB: `NAME-HEX16.elb.REGION.DOMAIN` (no `internal-` prefix, as AWS).
pub fn nlb_dns_name(name: &str, hex: &str, region: &str, domain: &str) -> String {
    format!("{name}-{hex}.elb.{region}.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        for good in [
            "us-east-1",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(is_region_name(good), "{good} refused");
        }
        for bad in [
            "",
            "us-east",
            "us-east-12",
            "US-east-1",
            "use-east-1",
            "us--1",
            "us-gov-1",
        ] {
            assert!(!is_region_name(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn load_balancer_names() {
        assert!(check_load_balancer_name("web").is_ok());
        assert!(check_load_balancer_name("a-b-9").is_ok());
        for bad in ["", "-web", "web-", "we_b", "internal-web", &"x".repeat(33)] {
            assert!(check_load_balancer_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_target_group_name("internal-tg").is_ok());
    }

    #[test]
    fn dns_names_as_aws_forms_them() {
        assert_eq!(
            alb_dns_name(false, "web", 424835706, "us-east-1", "localhost"),
            "web-424835706.us-east-1.elb.localhost"
        );
        assert_eq!(
            alb_dns_name(true, "web", 1, "eu-west-1", "example.com"),
            "internal-web-1.eu-west-1.elb.example.com"
        );
        assert_eq!(
            nlb_dns_name("n", "1234567890abcdef", "us-east-2", "amazonaws.com"),
            "n-1234567890abcdef.elb.us-east-2.amazonaws.com"
        );
    }
}
