//! `--store`: where the state lives. `sqlite:PATH` (the embedded default, in the data dir) or
//! `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`, a state several elbd processes share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use elb_store::{Backend, EtcdBackend, EtcdOptions, EtcdTls, SqliteBackend};

/// The prefix of elbd's keys in etcd when the URL names none.
const DEFAULT_PREFIX: &str = "elbd";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    Sqlite(PathBuf),
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
    },
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("sqlite: needs a path (sqlite:PATH)".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let Some(rest) = url.strip_prefix("etcd://") else {
            return Err(format!(
                "'{url}' is not a store: use sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]"
            ));
        };
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, DEFAULT_PREFIX));
        let prefix = prefix.trim_matches('/');
        let endpoints: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        if let Some(bad) = endpoints.iter().find(|e| !is_host_port(e)) {
            return Err(format!(
                "'{bad}' in {url} is not HOST:PORT (etcd://HOST:PORT[,HOST:PORT...][/PREFIX])"
            ));
        }
        Ok(Self::Etcd {
            endpoints,
            prefix: if prefix.is_empty() {
                DEFAULT_PREFIX.into()
            } else {
                prefix.into()
            },
        })
    }
}

fn is_host_port(endpoint: &str) -> bool {
    endpoint
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// How to reach etcd when it asks for authentication or TLS, as etcd's own clients take them.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct EtcdArgs {
    /// etcd user (etcd's authentication); the password is read from ELBD_ETCD_PASSWORD, so
    /// that no process listing shows it.
    #[arg(long, value_name = "USER")]
    etcd_user: Option<String>,
    /// CA certificate (PEM) that signs etcd's servers: connect with TLS.
    #[arg(long, value_name = "FILE")]
    etcd_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's mutual TLS, with --etcd-key-file.
    #[arg(long, value_name = "FILE", requires_all = ["etcd_key_file", "etcd_ca_file"])]
    etcd_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cert_file")]
    etcd_key_file: Option<PathBuf>,
}

impl EtcdArgs {
    fn given(&self) -> bool {
        self.etcd_user.is_some() || self.etcd_ca_file.is_some()
    }

    fn options(&self) -> anyhow::Result<EtcdOptions> {
        let read = |path: &Path| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        let tls = match &self.etcd_ca_file {
            Some(ca) => Some(EtcdTls {
                ca_pem: read(ca)?,
                client: match (&self.etcd_cert_file, &self.etcd_key_file) {
                    (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                    _ => None,
                },
            }),
            None => None,
        };
        let user = match &self.etcd_user {
            Some(user) => {
                let password = std::env::var("ELBD_ETCD_PASSWORD")
                    .context("--etcd-user needs the password in ELBD_ETCD_PASSWORD")?;
                Some((user.clone(), password))
            }
            None => None,
        };
        Ok(EtcdOptions { user, tls })
    }
}

/// A backend opened, and etcd's own handle where it is etcd (leases, live keys).
pub(crate) struct Opened {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) etcd: Option<Arc<EtcdBackend>>,
}

impl StoreUrl {
    /// The backend this URL names, connected (etcd) or opened (SQLite).
    pub(crate) fn open(&self, etcd: &EtcdArgs) -> anyhow::Result<Opened> {
        Ok(match self {
            Self::Sqlite(path) => {
                anyhow::ensure!(
                    !etcd.given(),
                    "--etcd-* flags apply to --store etcd://, not to {self}"
                );
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let backend = SqliteBackend::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                Opened {
                    backend: Box::new(backend),
                    etcd: None,
                }
            }
            Self::Etcd { endpoints, prefix } => {
                let backend = Arc::new(EtcdBackend::connect(endpoints, prefix, etcd.options()?)?);
                Opened {
                    backend: Box::new(backend.clone()),
                    etcd: Some(backend),
                }
            }
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Etcd { endpoints, prefix } => {
                write!(f, "etcd://{}/{prefix}", endpoints.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_sqlite_or_etcd_endpoints_and_a_prefix() {
        let parse = |s: &str| s.parse::<StoreUrl>();
        assert_eq!(
            parse("sqlite:/var/lib/elbd/state.db"),
            Ok(StoreUrl::Sqlite("/var/lib/elbd/state.db".into()))
        );
        assert_eq!(
            parse("etcd://10.0.0.1:2379,10.0.0.2:2379/prod"),
            Ok(StoreUrl::Etcd {
                endpoints: vec!["10.0.0.1:2379".into(), "10.0.0.2:2379".into()],
                prefix: "prod".into()
            })
        );
        let default = parse("etcd://127.0.0.1:2379").unwrap();
        assert_eq!(default.to_string(), "etcd://127.0.0.1:2379/elbd");
        for bad in [
            "sqlite:",
            "etcd://host",
            "etcd://:2379",
            "postgres://x",
            "etcd://a:1,b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
