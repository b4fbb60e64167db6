//! `[settings]`: what elbd needs before it opens the store (region, account, DNS domain,
//! zones, credentials, where logs go and functions are invoked, how identity providers are
//! reached), read once at first start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use elb_model::limits::Quotas;
use elb_model::names::is_region_name;
use elb_model::network::DEFAULT_EIP_CIDR;
use elb_model::{Scope, Topology, ZoneSpec};
use ipnet::Ipv4Net;
use serde::Deserialize;

// === the file as written ===

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    region: Option<String>,
    account: Option<String>,
    dns_domain: Option<String>,
    #[serde(default)]
    zone: Vec<FileZone>,
    /// The home region's Elastic IP pool (default 127.100.0.0/16).
    eip_cidr: Option<Ipv4Net>,
    /// Other regions' zones, `[[settings.regions]]` (`[[settings.region]]` would clash with
    /// the `region` key); a region not named opens on the loopback rule.
    #[serde(default)]
    regions: Vec<FileRegion>,
    /// Access key id → secret access key. When any are given, API requests must be signed
    /// with one of them.
    #[serde(default)]
    credentials: BTreeMap<String, String>,
    /// How often access logs are delivered (AWS: every five minutes).
    access_log_interval_seconds: Option<u64>,
    /// An S3-compatible server logs are delivered to, instead of `<data-dir>/s3`.
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    /// The Lambda Invoke API `lambda` groups' functions are invoked at, and the credentials
    /// its requests are signed with.
    lambda_endpoint: Option<String>,
    lambda_access_key_id: Option<String>,
    lambda_secret_access_key: Option<String>,
    /// CA certificates (PEM) identity providers' certificates may chain to, besides the
    /// machine's roots.
    oidc_ca_file: Option<PathBuf>,
    /// Where `authenticate-cognito` actions find Cognito, and its app clients' secrets.
    cognito_endpoint: Option<String>,
    #[serde(default)]
    cognito_client_secrets: BTreeMap<String, String>,
    /// The home region's quotas, raised from AWS's defaults (`[settings.quotas]`).
    quotas: Option<FileQuotas>,
}

/// `[settings.quotas]`: each quota left out keeps AWS's default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileQuotas {
    load_balancers_per_region: Option<usize>,
    gateway_load_balancers_per_region: Option<usize>,
    listeners_per_load_balancer: Option<usize>,
    target_groups_per_region: Option<usize>,
    targets_per_target_group: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRegion {
    name: String,
    zone: Vec<FileZone>,
    /// Its Elastic IP pool; none: AllocateAddress is refused there.
    eip_cidr: Option<Ipv4Net>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileZone {
    name: String,
    cidr: Ipv4Net,
    public_cidr: Option<Ipv4Net>,
}

// === the checked settings ===

/// What elbd needs before it opens the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub scope: Scope,
    /// Region → the zones its default VPC is seeded with when the region is first opened
    /// (the home region from `[[settings.zone]]`, others from `[[settings.regions]]`); regions
    /// not named here get [`Topology::loopback`]'s.
    pub topologies: BTreeMap<String, Topology>,
    /// API credentials (access key id → secret); empty means signatures are not checked.
    pub credentials: BTreeMap<String, String>,
    pub logs: LogSettings,
    /// The home region's quotas, when the file declares them (else the region keeps what it
    /// has: another API process may have raised them).
    pub quotas: Option<Quotas>,
    /// Where functions of `lambda` groups are invoked; `None`: their requests fail (502).
    pub lambda: Option<LambdaEndpoint>,
    pub providers: ProviderSettings,
}

/// How authenticate actions reach identity providers.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    /// CA certificates (PEM, read from `oidc_ca_file`) trusted besides the machine's roots.
    pub oidc_ca_pem: Option<String>,
    /// `https://…`: Cognito's endpoints in its layout; without it `authenticate-cognito`
    /// actions answer 500.
    pub cognito_endpoint: Option<String>,
    /// App client id → secret (Cognito's API, which ALB asks for them, is not here).
    pub cognito_client_secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("oidc_ca", &self.oidc_ca_pem.is_some())
            .field("cognito_endpoint", &self.cognito_endpoint)
            .field("cognito_clients", &self.cognito_client_secrets.keys())
            .finish()
    }
}

/// The Lambda Invoke API's URL, and (access key id, secret access key) to sign with;
/// unsigned requests without.
#[derive(Clone, PartialEq, Eq)]
pub struct LambdaEndpoint {
    pub url: String,
    pub credentials: Option<(String, String)>,
}

/// Without the secret.
impl std::fmt::Debug for LambdaEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaEndpoint")
            .field("url", &self.url)
            .field(
                "access_key_id",
                &self.credentials.as_ref().map(|(id, _)| id),
            )
            .finish_non_exhaustive()
    }
}

/// Where and how often load balancer logs are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub interval: std::time::Duration,
    /// `None`: elbd's S3 stand-in, `<data-dir>/s3`.
    pub s3: Option<S3Endpoint>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Endpoint {
    pub url: String,
    pub region: String,
    /// (access key id, secret access key); unsigned requests without.
    pub credentials: Option<(String, String)>,
}

/// Without the secret.
impl std::fmt::Debug for S3Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Endpoint")
            .field("url", &self.url)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.credentials.as_ref().map(|(id, _)| id),
            )
            .finish_non_exhaustive()
    }
}

/// AWS delivers access logs every five minutes.
const DEFAULT_LOG_INTERVAL_SECONDS: u64 = 300;

impl Settings {
    /// The embedded defaults: us-east-1, account 123456789012, three loopback zones.
    pub fn embedded() -> Self {
        Self {
            scope: Scope::default(),
            topologies: BTreeMap::new(),
            credentials: BTreeMap::new(),
            logs: LogSettings {
                interval: std::time::Duration::from_secs(DEFAULT_LOG_INTERVAL_SECONDS),
                s3: None,
            },
            quotas: None,
            lambda: None,
            providers: ProviderSettings::default(),
        }
    }
}

impl FileSettings {
    /// `base` is the directory relative paths start from.
    pub(crate) fn check(self, base: &Path) -> Result<Option<Settings>, String> {
        let untouched = self.region.is_none()
            && self.account.is_none()
            && self.dns_domain.is_none()
            && self.zone.is_empty()
            && self.eip_cidr.is_none()
            && self.regions.is_empty()
            && self.credentials.is_empty()
            && self.access_log_interval_seconds.is_none()
            && self.s3_endpoint.is_none()
            && self.s3_region.is_none()
            && self.s3_access_key_id.is_none()
            && self.s3_secret_access_key.is_none()
            && self.lambda_endpoint.is_none()
            && self.lambda_access_key_id.is_none()
            && self.lambda_secret_access_key.is_none()
            && self.oidc_ca_file.is_none()
            && self.cognito_endpoint.is_none()
            && self.cognito_client_secrets.is_empty()
            && self.quotas.is_none();
        if untouched {
            return Ok(None);
        }
        let mut settings = Settings::embedded();
        if let Some(file) = self.quotas {
            let aws = Quotas::default();
            let quotas = Quotas {
                load_balancers_per_region: file
                    .load_balancers_per_region
                    .unwrap_or(aws.load_balancers_per_region),
                gateway_load_balancers_per_region: file
                    .gateway_load_balancers_per_region
                    .unwrap_or(aws.gateway_load_balancers_per_region),
                listeners_per_load_balancer: file
                    .listeners_per_load_balancer
                    .unwrap_or(aws.listeners_per_load_balancer),
                target_groups_per_region: file
                    .target_groups_per_region
                    .unwrap_or(aws.target_groups_per_region),
                targets_per_target_group: file
                    .targets_per_target_group
                    .unwrap_or(aws.targets_per_target_group),
            };
            let all = [
                (
                    "load_balancers_per_region",
                    quotas.load_balancers_per_region,
                ),
                (
                    "gateway_load_balancers_per_region",
                    quotas.gateway_load_balancers_per_region,
                ),
                (
                    "listeners_per_load_balancer",
                    quotas.listeners_per_load_balancer,
                ),
                ("target_groups_per_region", quotas.target_groups_per_region),
                ("targets_per_target_group", quotas.targets_per_target_group),
            ];
            if let Some((name, _)) = all.iter().find(|(_, n)| *n == 0) {
                return Err(format!("settings.quotas.{name}: a quota is at least 1"));
            }
            settings.quotas = Some(quotas);
        }
        if let Some(seconds) = self.access_log_interval_seconds {
            if !(1..=3600).contains(&seconds) {
                return Err(format!(
                    "settings.access_log_interval_seconds: {seconds} is not between 1 and 3600"
                ));
            }
            settings.logs.interval = std::time::Duration::from_secs(seconds);
        }
        let credentials = match (self.s3_access_key_id, self.s3_secret_access_key) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => {
                return Err(
                    "settings.s3_access_key_id and settings.s3_secret_access_key go together"
                        .to_owned(),
                );
            }
        };
        match self.s3_endpoint {
            Some(url) => {
                settings.logs.s3 = Some(S3Endpoint {
                    url,
                    region: self.s3_region.unwrap_or_else(|| "us-east-1".to_owned()),
                    credentials,
                });
            }
            None if credentials.is_some() || self.s3_region.is_some() => {
                return Err(
                    "settings.s3_region and S3 credentials need settings.s3_endpoint".to_owned(),
                );
            }
            None => {}
        }
        let lambda_credentials = match (self.lambda_access_key_id, self.lambda_secret_access_key) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => {
                return Err(
                    "settings.lambda_access_key_id and settings.lambda_secret_access_key go together"
                        .to_owned(),
                );
            }
        };
        match self.lambda_endpoint {
            Some(url) => {
                settings.lambda = Some(LambdaEndpoint {
                    url,
                    credentials: lambda_credentials,
                });
            }
            None if lambda_credentials.is_some() => {
                return Err(
                    "settings.lambda_access_key_id needs settings.lambda_endpoint".to_owned(),
                );
            }
            None => {}
        }
        if let Some(url) = &self.cognito_endpoint
            && !url.starts_with("https://")
        {
            return Err(format!(
                "settings.cognito_endpoint '{url}' must be an https:// URL"
            ));
        }
        if self.cognito_endpoint.is_none() && !self.cognito_client_secrets.is_empty() {
            return Err(
                "settings.cognito_client_secrets needs settings.cognito_endpoint".to_owned(),
            );
        }
        let oidc_ca_pem = match &self.oidc_ca_file {
            Some(file) => {
                let pem = std::fs::read_to_string(base.join(file)).map_err(|e| {
                    format!("settings.oidc_ca_file: cannot read {}: {e}", file.display())
                })?;
                elb_tls::mtls::read_bundle(&pem)
                    .map_err(|e| format!("settings.oidc_ca_file {}: {e}", file.display()))?;
                Some(pem)
            }
            None => None,
        };
        settings.providers = ProviderSettings {
            oidc_ca_pem,
            cognito_endpoint: self.cognito_endpoint,
            cognito_client_secrets: self.cognito_client_secrets,
        };
        if let Some(region) = self.region {
            settings.scope.region = region;
        }
        if let Some(account) = self.account {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "settings.account: '{account}' is not a 12-digit account id"
                ));
            }
            settings.scope.account = account;
        }
        settings.credentials = self.credentials;
        if let Some(domain) = self.dns_domain {
            settings.scope.dns_domain = domain;
        }
        if !is_region_name(&settings.scope.region) {
            return Err(format!(
                "settings.region: '{}' is not a region name like us-east-1",
                settings.scope.region
            ));
        }
        if !self.zone.is_empty() || self.eip_cidr.is_some() {
            let home = settings.scope.region.clone();
            let eip_cidr = Some(self.eip_cidr.unwrap_or(DEFAULT_EIP_CIDR));
            let topology = if self.zone.is_empty() {
                let zones = Topology::loopback(&home, 0).expect("slot 0").zones;
                checked(Topology { zones, eip_cidr }, "settings")?
            } else {
                topology(self.zone, eip_cidr, "settings.zone")?
            };
            settings.topologies.insert(home, topology);
        }
        for (i, region) in self.regions.into_iter().enumerate() {
            let path = format!("settings.regions[{i}]");
            if !is_region_name(&region.name) {
                return Err(format!(
                    "{path}.name: '{}' is not a region name like us-east-1",
                    region.name
                ));
            }
            let topology = topology(region.zone, region.eip_cidr, &format!("{path}.zone"))?;
            for (other, theirs) in &settings.topologies {
                let clash = topology.ranges().find(|r| {
                    theirs
                        .ranges()
                        .any(|t| r.contains(&t.network()) || t.contains(&r.network()))
                });
                if let Some(range) = clash {
                    return Err(format!(
                        "{path}.zone: the range {range} overlaps a zone of {other}"
                    ));
                }
            }
            if settings
                .topologies
                .insert(region.name.clone(), topology)
                .is_some()
            {
                return Err(format!(
                    "{path}.name: the zones of {} are given twice",
                    region.name
                ));
            }
        }
        Ok(Some(settings))
    }
}

/// A region's zones and Elastic IP pool from the file, checked (names unique, ranges
/// disjoint).
fn topology(
    zones: Vec<FileZone>,
    eip_cidr: Option<Ipv4Net>,
    path: &str,
) -> Result<Topology, String> {
    let zones = zones
        .into_iter()
        .map(|z| ZoneSpec {
            name: z.name,
            cidr: z.cidr,
            public_cidr: z.public_cidr,
        })
        .collect();
    checked(Topology { zones, eip_cidr }, path)
}

fn checked(topology: Topology, path: &str) -> Result<Topology, String> {
    topology
        .validate()
        .map_err(|e| format!("{path}: {}", e.message))?;
    Ok(topology)
}
