//! The config file: bootstrap settings (region, account, DNS domain, zones) and, optionally,
//! resources to declare (load balancers with their listeners, target groups with their
//! targets and attributes, certificates from PEM files).
//!
//! The pipeline is `TOML → FileConfig (serde, unknown keys refused) → Config (checked)`.
//! Nothing here touches the store; elbd's `reconcile` turns a [`Config`] into commands.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use elb_model::target_group::HealthCheckChanges;
use elb_model::{CertificateMaterial, ProtocolVersion};
use serde::Deserialize;

mod settings;

use settings::FileSettings;
pub use settings::{LambdaEndpoint, LogSettings, ProviderSettings, S3Endpoint, Settings};

/// A config file that cannot be used: the file, and the key or line at fault.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

// === the file as written ===

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    settings: FileSettings,
    #[serde(default)]
    load_balancer: Vec<FileLoadBalancer>,
    #[serde(default)]
    target_group: Vec<FileTargetGroup>,
    #[serde(default)]
    certificate: Vec<FileCertificate>,
}

/// A certificate from PEM files, named for listeners to use. Paths are relative to the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCertificate {
    name: String,
    certificate: PathBuf,
    private_key: PathBuf,
    chain: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLoadBalancer {
    name: String,
    #[serde(rename = "type", default = "default_lb_type")]
    kind: String,
    scheme: Option<String>,
    availability_zones: Vec<String>,
    #[serde(default)]
    attributes: toml::Table,
    #[serde(default)]
    listener: Vec<FileListener>,
}

fn default_lb_type() -> String {
    "application".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListener {
    protocol: String,
    port: u16,
    default_action: FileAction,
    /// HTTPS: AWS's default policy when left out.
    ssl_policy: Option<String>,
    /// HTTPS and TLS: names of `[[certificate]]`s, the default first, then the SNI ones.
    #[serde(default)]
    certificates: Vec<String>,
    /// TLS: AWS's `AlpnPolicy` (`HTTP2Preferred`, ...); `None` when left out.
    alpn_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAction {
    /// The name of the target group to forward to.
    forward: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTargetGroup {
    name: String,
    /// Required but for `lambda` groups, which take neither a protocol nor a port.
    protocol: Option<String>,
    /// `HTTP1` (default), `HTTP2` or `GRPC`.
    protocol_version: Option<String>,
    port: Option<u16>,
    #[serde(default = "default_target_type")]
    target_type: String,
    #[serde(default)]
    attributes: toml::Table,
    #[serde(default)]
    health_check: FileHealthCheck,
    #[serde(default)]
    targets: Vec<FileTarget>,
}

/// AWS's health-check settings; what is left out keeps AWS's default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHealthCheck {
    /// Only `lambda` groups' checks can be off (their default).
    enabled: Option<bool>,
    protocol: Option<String>,
    /// A port number or "traffic-port".
    port: Option<toml::Value>,
    path: Option<String>,
    interval_seconds: Option<u16>,
    timeout_seconds: Option<u16>,
    healthy_threshold: Option<u16>,
    unhealthy_threshold: Option<u16>,
    /// `HttpCode`: "200", "200,202", "200-299".
    matcher: Option<String>,
    /// `GrpcCode` of GRPC target groups: "12", "0-99".
    grpc_matcher: Option<String>,
}

fn default_target_type() -> String {
    "ip".into()
}

/// `"127.1.0.10:9001"`, `"127.1.0.10"` (the group's port), or a table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileTarget {
    Short(String),
    Full {
        id: String,
        port: Option<u16>,
        availability_zone: Option<String>,
    },
}

// === the checked config ===

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub settings: Option<Settings>,
    pub load_balancers: Vec<LoadBalancerSpec>,
    pub target_groups: Vec<TargetGroupSpec>,
    pub certificates: Vec<CertificateSpec>,
}

#[derive(Debug, Clone)]
pub struct CertificateSpec {
    pub path: String,
    pub name: String,
    pub material: CertificateMaterial,
}

#[derive(Debug, Clone)]
pub struct LoadBalancerSpec {
    /// Where it is in the file, e.g. `load_balancer[0]`, for messages.
    pub path: String,
    pub name: String,
    pub kind: String,
    pub scheme: Option<String>,
    pub availability_zones: Vec<String>,
    pub attributes: Vec<(String, String)>,
    pub listeners: Vec<ListenerSpec>,
}

#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub path: String,
    pub protocol: String,
    pub port: u16,
    pub forward: String,
    pub ssl_policy: Option<String>,
    pub certificates: Vec<String>,
    pub alpn_policy: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TargetGroupSpec {
    pub path: String,
    pub name: String,
    /// `None` only for `lambda` groups (as is the port).
    pub protocol: Option<String>,
    pub protocol_version: ProtocolVersion,
    pub port: Option<u16>,
    pub target_type: String,
    pub attributes: Vec<(String, String)>,
    pub health_check: HealthCheckChanges,
    pub targets: Vec<TargetSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub id: String,
    pub port: Option<u16>,
    pub availability_zone: Option<String>,
}

impl Config {
    /// Reads and checks `path`. Errors name the file and the key or line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let fail = |message: String| ConfigError {
            file: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(fail)
    }

    /// Reads and checks a file's text; `base` is the directory its relative paths start from.
    /// Errors name the key or line.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        file.check(base)
    }
}

impl FileConfig {
    /// `base` is the directory relative paths start from.
    fn check(self, base: &Path) -> Result<Config, String> {
        let settings = self.settings.check(base)?;
        let mut names = BTreeSet::new();
        let mut certificates = Vec::new();
        for (i, c) in self.certificate.into_iter().enumerate() {
            let path = format!("certificate[{i}]");
            if !names.insert(c.name.clone()) {
                return Err(format!(
                    "{path}.name: certificate '{}' is declared twice",
                    c.name
                ));
            }
            certificates.push(c.check(path, base)?);
        }
        names.clear();
        let mut load_balancers = Vec::new();
        for (i, lb) in self.load_balancer.into_iter().enumerate() {
            let path = format!("load_balancer[{i}]");
            if !names.insert(lb.name.clone()) {
                return Err(format!(
                    "{path}.name: load balancer '{}' is declared twice",
                    lb.name
                ));
            }
            load_balancers.push(lb.check(path)?);
        }
        names.clear();
        let mut target_groups = Vec::new();
        for (i, tg) in self.target_group.into_iter().enumerate() {
            let path = format!("target_group[{i}]");
            if !names.insert(tg.name.clone()) {
                return Err(format!(
                    "{path}.name: target group '{}' is declared twice",
                    tg.name
                ));
            }
            target_groups.push(tg.check(path)?);
        }
        for lb in &load_balancers {
            for l in &lb.listeners {
                if let Some(missing) = l
                    .certificates
                    .iter()
                    .find(|c| !certificates.iter().any(|d| &d.name == *c))
                {
                    return Err(format!(
                        "{}.certificates: no certificate is named '{missing}'",
                        l.path
                    ));
                }
            }
        }
        Ok(Config {
            settings,
            load_balancers,
            target_groups,
            certificates,
        })
    }
}

impl FileLoadBalancer {
    fn check(self, path: String) -> Result<LoadBalancerSpec, String> {
        // A gateway is wired to its endpoints by ids the file cannot know before they exist.
        if self.kind == "gateway" {
            return Err(format!(
                "{path}.type: gateway load balancers are made through the API, with their \
                 endpoint services and endpoints"
            ));
        }
        let mut ports = BTreeSet::new();
        let mut listeners = Vec::new();
        for (i, l) in self.listener.into_iter().enumerate() {
            let lpath = format!("{path}.listener[{i}]");
            if !ports.insert(l.port) {
                return Err(format!("{lpath}.port: port {} has two listeners", l.port));
            }
            listeners.push(ListenerSpec {
                path: lpath,
                protocol: l.protocol,
                port: l.port,
                forward: l.default_action.forward,
                ssl_policy: l.ssl_policy,
                certificates: l.certificates,
                alpn_policy: l.alpn_policy,
            });
        }
        Ok(LoadBalancerSpec {
            attributes: attributes(&path, self.attributes)?,
            path,
            name: self.name,
            kind: self.kind,
            scheme: self.scheme,
            availability_zones: self.availability_zones,
            listeners,
        })
    }
}

impl FileTargetGroup {
    fn check(self, path: String) -> Result<TargetGroupSpec, String> {
        let targets = self
            .targets
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.check(&format!("{path}.targets[{i}]")))
            .collect::<Result<_, _>>()?;
        let hc = self.health_check;
        let port = match hc.port {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            Some(toml::Value::Integer(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(format!(
                    "{path}.health_check.port: expected a number or \"traffic-port\", found {}",
                    other.type_str()
                ));
            }
        };
        let health_check = HealthCheckChanges {
            enabled: hc.enabled,
            protocol: hc.protocol,
            port,
            path: hc.path,
            interval_seconds: hc.interval_seconds,
            timeout_seconds: hc.timeout_seconds,
            healthy_threshold: hc.healthy_threshold,
            unhealthy_threshold: hc.unhealthy_threshold,
            http_code: hc.matcher,
            grpc_code: hc.grpc_matcher,
        };
        let protocol_version = match &self.protocol_version {
            None => ProtocolVersion::Http1,
            Some(_) if !matches!(self.protocol.as_deref(), Some("HTTP" | "HTTPS")) => {
                return Err(format!(
                    "{path}.protocol_version: only HTTP and HTTPS target groups have one"
                ));
            }
            Some(v) => ProtocolVersion::parse(v)
                .map_err(|e| format!("{path}.protocol_version: {}", e.message))?,
        };
        // An ALB target is named by an ARN the file cannot know before the ALB exists.
        if self.target_type == "alb" {
            return Err(format!(
                "{path}.target_type: 'alb' target groups are made through the API, which can \
                 name the application load balancer by its ARN"
            ));
        }
        if self.target_type != "lambda" {
            if self.protocol.is_none() {
                return Err(format!("{path}.protocol: a target group needs one"));
            }
            if self.port.is_none() {
                return Err(format!("{path}.port: a target group needs one"));
            }
        }
        Ok(TargetGroupSpec {
            health_check,
            attributes: attributes(&path, self.attributes)?,
            path,
            name: self.name,
            protocol: self.protocol,
            protocol_version,
            port: self.port,
            target_type: self.target_type,
            targets,
        })
    }
}

impl FileCertificate {
    fn check(self, path: String, base: &Path) -> Result<CertificateSpec, String> {
        let read = |key: &str, file: &Path| {
            std::fs::read_to_string(base.join(file))
                .map_err(|e| format!("{path}.{key}: cannot read {}: {e}", file.display()))
        };
        let certificate = read("certificate", &self.certificate)?;
        let private_key = read("private_key", &self.private_key)?;
        let chain = match &self.chain {
            Some(chain) => read("chain", chain)?,
            None => String::new(),
        };
        let material = elb_tls::material::read(&certificate, &private_key, &chain)
            .map_err(|e| format!("{path}: {e}"))?;
        Ok(CertificateSpec {
            path,
            name: self.name,
            material,
        })
    }
}

impl FileTarget {
    fn check(self, path: &str) -> Result<TargetSpec, String> {
        match self {
            Self::Full {
                id,
                port,
                availability_zone,
            } => Ok(TargetSpec {
                id,
                port,
                availability_zone,
            }),
            Self::Short(s) => {
                if let Ok(addr) = s.parse::<SocketAddr>() {
                    Ok(TargetSpec {
                        id: addr.ip().to_string(),
                        port: Some(addr.port()),
                        availability_zone: None,
                    })
                } else if s.parse::<IpAddr>().is_ok()
                    || s.starts_with("i-")
                    || s.starts_with("arn:aws:lambda:")
                {
                    Ok(TargetSpec {
                        id: s,
                        port: None,
                        availability_zone: None,
                    })
                } else {
                    Err(format!(
                        "{path}: '{s}' is not an IP, IP:port, instance id or function ARN"
                    ))
                }
            }
        }
    }
}

/// Attribute values are strings on AWS; the file may also write numbers and booleans.
fn attributes(path: &str, table: toml::Table) -> Result<Vec<(String, String)>, String> {
    table
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "{path}.attributes.\"{key}\": expected a string, number or boolean, found {}",
                        other.type_str()
                    ));
                }
            };
            Ok((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use elb_model::limits::Quotas;

    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("."))
    }

    #[test]
    fn the_example_parses() {
        let text = include_str!("../../../examples/two-zones.toml");
        let config = parse(text).unwrap();
        assert_eq!(config.load_balancers[0].name, "web");
        assert_eq!(config.load_balancers[0].listeners[0].port, 8080);
        assert_eq!(config.target_groups[0].targets.len(), 4);
        assert!(config.settings.is_none());
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                "[[load_balancer]]\nname = \"a\"\navailability_zones = []\nbogus = 1\n",
                "bogus",
            ),
            (
                "[[target_group]]\nname = \"t\"\nprotocol = \"HTTP\"\nport = 70000\n",
                "line 4",
            ),
            (
                "[[target_group]]\nname = \"t\"\nprotocol = \"HTTP\"\nport = 1\n\
                 [[target_group]]\nname = \"t\"\nprotocol = \"HTTP\"\nport = 1\n",
                "target_group[1].name",
            ),
            (
                "[[target_group]]\nname = \"t\"\nprotocol = \"HTTP\"\nport = 1\ntargets = [\"x\"]\n",
                "target_group[0].targets[0]",
            ),
            ("[settings]\naccount = \"12\"\n", "settings.account"),
            ("[settings]\nregion = \"local\"\n", "settings.region"),
            (
                "[[settings.regions]]\nname = \"eu-west-1\"\n\
                 zone = [{ name = \"eu-west-1a\", cidr = \"127.200.0.0/16\" }]\n\
                 [[settings.regions]]\nname = \"eu-west-2\"\n\
                 zone = [{ name = \"eu-west-2a\", cidr = \"127.200.128.0/17\" }]\n",
                "settings.regions[1].zone: the range 127.200.128.0/17 overlaps a zone of eu-west-1",
            ),
            (
                "[[settings.regions]]\nname = \"eu\"\nzone = []\n",
                "settings.regions[0].name",
            ),
            (
                "[[load_balancer]]\nname = \"g\"\ntype = \"gateway\"\navailability_zones = []\n",
                "load_balancer[0].type: gateway load balancers are made through the API",
            ),
            (
                "[settings.quotas]\ntargets_per_target_group = 0\n",
                "settings.quotas.targets_per_target_group: a quota is at least 1",
            ),
            (
                "[settings.quotas]\nrules_per_listener = 5\n",
                "rules_per_listener",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{err:?} does not name {expected:?}");
        }
    }

    #[test]
    fn quotas_not_raised_keep_aws_defaults() {
        let config = parse("[settings.quotas]\nload_balancers_per_region = 1000\n").unwrap();
        let quotas = config.settings.unwrap().quotas.unwrap();
        assert_eq!(quotas.load_balancers_per_region, 1000);
        assert_eq!(
            quotas.target_groups_per_region,
            Quotas::default().target_groups_per_region
        );
    }

    #[test]
    fn targets_and_attributes_in_short_forms() {
        let config = parse(
            "[[target_group]]\nname = \"t\"\nprotocol = \"HTTP\"\nport = 80\n\
             targets = [\"127.1.0.1:81\", \"127.1.0.2\", { id = \"10.0.0.1\", availability_zone = \"all\" }]\n\
             attributes = { \"deregistration_delay.timeout_seconds\" = 0 }\n",
        )
        .unwrap();
        let tg = &config.target_groups[0];
        assert_eq!(tg.targets[0].port, Some(81));
        assert_eq!(tg.targets[1].port, None);
        assert_eq!(tg.targets[2].availability_zone.as_deref(), Some("all"));
        assert_eq!(
            tg.attributes,
            [("deregistration_delay.timeout_seconds".into(), "0".into())]
        );
    }
}
