//! The aws cli pointed at elbd's API, and the resources tests make through it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::venv;

/// The aws cli pointed at an elbd API endpoint, with dummy credentials.
pub(crate) struct Aws {
    pub(crate) endpoint: String,
    pub(crate) key: (&'static str, &'static str),
}

impl Aws {
    pub(crate) fn new(api: SocketAddr) -> Self {
        Self {
            endpoint: format!("http://{api}"),
            key: ("test", "test"),
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(venv().join("bin/aws"))
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", self.key.0)
            .env("AWS_SECRET_ACCESS_KEY", self.key.1)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap()
    }

    /// Runs `aws ARGS`, expecting success; returns its JSON output (null when empty).
    pub(crate) fn ok(&self, args: &[&str]) -> serde_json::Value {
        let out = self.command(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::json(out)
    }

    /// The JSON output of a successful aws command (null when empty).
    pub(crate) fn json(out: std::process::Output) -> serde_json::Value {
        assert!(
            out.status.success(),
            "aws failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `create-target-group`: HTTP on `port` in `vpc`, for targets of `target_type` (`ip` or
    /// `instance`), with `extra` options; returns its ARN.
    pub(crate) fn target_group(
        &self,
        name: &str,
        vpc: &str,
        port: u16,
        target_type: &str,
        extra: &[&str],
    ) -> String {
        self.target_group_of("HTTP", name, vpc, (port, target_type), extra)
    }

    /// `create-target-group` of `protocol`, as [`Aws::target_group`].
    pub(crate) fn target_group_of(
        &self,
        protocol: &str,
        name: &str,
        vpc: &str,
        (port, target_type): (u16, &str),
        extra: &[&str],
    ) -> String {
        let port = port.to_string();
        let mut args = vec![
            "elbv2",
            "create-target-group",
            "--name",
            name,
            "--protocol",
            protocol,
            "--port",
            &port,
            "--vpc-id",
            vpc,
            "--target-type",
            target_type,
        ];
        args.extend_from_slice(extra);
        self.ok(&args)["TargetGroups"][0]["TargetGroupArn"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `modify-load-balancer-attributes` with `Key=K,Value=V` pairs.
    pub(crate) fn set_load_balancer_attributes(
        &self,
        load_balancer_arn: &str,
        attributes: &[&str],
    ) {
        let mut args = vec![
            "elbv2",
            "modify-load-balancer-attributes",
            "--load-balancer-arn",
            load_balancer_arn,
            "--attributes",
        ];
        args.extend_from_slice(attributes);
        self.ok(&args);
    }

    /// `create-listener` of `protocol` on `port` forwarding to `target_group_arn`, as run.
    pub(crate) fn listener_of(
        &self,
        load_balancer_arn: &str,
        (protocol, port): (&str, &str),
        target_group_arn: &str,
    ) -> std::process::Output {
        self.command(&[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            load_balancer_arn,
            "--protocol",
            protocol,
            "--port",
            port,
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={target_group_arn}"),
        ])
    }

    /// `create-load-balancer` over the first two default subnets: its ARN and its VPC.
    pub(crate) fn load_balancer(&self, name: &str) -> (String, String) {
        self.load_balancer_of_type(name, "application")
    }

    /// [`Self::load_balancer`] of a `kind`: `application` or `network`.
    pub(crate) fn load_balancer_of_type(&self, name: &str, kind: &str) -> (String, String) {
        let subnets = self.ok(&["ec2", "describe-subnets"]);
        let subnet = |i: usize| subnets["Subnets"][i]["SubnetId"].as_str().unwrap();
        let lb = self.ok(&[
            "elbv2",
            "create-load-balancer",
            "--name",
            name,
            "--type",
            kind,
            "--subnets",
            subnet(0),
            subnet(1),
        ]);
        let arn = lb["LoadBalancers"][0]["LoadBalancerArn"].as_str().unwrap();
        let vpc = subnets["Subnets"][0]["VpcId"].as_str().unwrap();
        (arn.to_owned(), vpc.to_owned())
    }

    /// `create-listener`: HTTPS on `port` with a default certificate and `extra` options,
    /// forwarding to one target group; returns the listener as described.
    pub(crate) fn https_listener(
        &self,
        load_balancer_arn: &str,
        port: u16,
        certificate_arn: &str,
        target_group_arn: &str,
        extra: &[&str],
    ) -> serde_json::Value {
        let port = port.to_string();
        let certificate = format!("CertificateArn={certificate_arn}");
        let action = format!("Type=forward,TargetGroupArn={target_group_arn}");
        let mut args = vec![
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            load_balancer_arn,
            "--protocol",
            "HTTPS",
            "--port",
            &port,
            "--certificates",
            &certificate,
            "--default-actions",
            &action,
        ];
        args.extend_from_slice(extra);
        self.ok(&args)["Listeners"][0].clone()
    }

    /// Saves the certificate of elbd's local CA (`GET /elbd/ca.pem`) to `path`.
    pub(crate) fn save_ca(&self, path: &Path) {
        let fetched = Command::new("curl")
            .args(["-sf", "-o"])
            .arg(path)
            .arg(format!("{}/elbd/ca.pem", self.endpoint))
            .status()
            .unwrap();
        assert!(fetched.success(), "the CA certificate can be fetched");
    }

    /// `register-targets` of `ids` (IP addresses or instance ids).
    pub(crate) fn register(&self, target_group_arn: &str, ids: &[String]) {
        let targets: Vec<String> = ids.iter().map(|id| format!("Id={id}")).collect();
        let mut args = vec![
            "elbv2",
            "register-targets",
            "--target-group-arn",
            target_group_arn,
            "--targets",
        ];
        args.extend(targets.iter().map(String::as_str));
        self.ok(&args);
    }

    /// `create-listener`: HTTP on `port`, forwarding to one target group; returns its ARN.
    pub(crate) fn forward_listener(
        &self,
        load_balancer_arn: &str,
        port: u16,
        target_group_arn: &str,
    ) -> String {
        let port = port.to_string();
        let created = self.listener_of(load_balancer_arn, ("HTTP", &port), target_group_arn);
        Self::json(created)["Listeners"][0]["ListenerArn"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `authorize-security-group-ingress`: TCP on `port` from `cidr`.
    pub(crate) fn allow(&self, group_id: &str, port: u16, cidr: &str) {
        let port = port.to_string();
        let mut args = vec![
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            group_id,
        ];
        args.extend(["--protocol", "tcp", "--port", &port, "--cidr", cidr]);
        self.ok(&args);
    }

    /// `create-rule` on `listener_arn` at `priority` with the cli's `--conditions` and one
    /// action (`Type=…` shorthand).
    pub(crate) fn rule(
        &self,
        listener_arn: &str,
        priority: u16,
        conditions: &[&str],
        action: &str,
    ) {
        let priority = priority.to_string();
        let mut args = vec!["elbv2", "create-rule", "--listener-arn", listener_arn];
        args.extend(["--priority", &priority, "--conditions"]);
        args.extend_from_slice(conditions);
        args.extend(["--actions", action]);
        self.ok(&args);
    }

    /// Runs `aws ARGS`, expecting failure; returns what it printed.
    pub(crate) fn err(&self, args: &[&str]) -> String {
        let out = self.command(args);
        assert!(!out.status.success(), "aws {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}
