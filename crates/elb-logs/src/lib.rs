//! Load balancer logs on their way to S3, as AWS delivers them: entries are spooled under the
//! data dir as they come ([`Spool`]), sealed every interval into gzipped objects named by
//! AWS's keys ([`Destination::key`]), and delivered ([`Buckets`]) to elbd's S3 stand-in
//! (`<data-dir>/s3/BUCKET/KEY`) or to an S3-compatible server. Objects not yet delivered stay
//! on disk and go after a restart, a `kill -9` included.

mod buckets;
mod spool;

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use buckets::{Buckets, PutError};
pub use spool::{Outbox, Ready, Spool};

/// Which of a load balancer's logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogKind {
    /// A line per request (`access_logs.s3.*`).
    #[default]
    Access,
    /// A line per client connection (`connection_logs.s3.*`).
    Connection,
}

impl LogKind {
    pub const ALL: [Self; 2] = [Self::Access, Self::Connection];

    /// The attributes' prefix: `access_logs` or `connection_logs`.
    pub fn attributes(self) -> &'static str {
        match self {
            Self::Access => "access_logs",
            Self::Connection => "connection_logs",
        }
    }

    /// What the files' names start with: connection logs' with `conn_log_`, as AWS's keys
    /// do (AWS's documentation writes `conn_log.`, its buckets hold `conn_log_`).
    fn file_prefix(self) -> &'static str {
        match self {
            Self::Access => "",
            Self::Connection => "conn_log_",
        }
    }
}

/// Where one node's logs of one kind of one load balancer go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    #[serde(default)]
    pub kind: LogKind,
    pub bucket: String,
    /// `access_logs.s3.prefix` (or `connection_logs.…`): may be empty.
    pub prefix: String,
    pub account: String,
    pub region: String,
    /// `app.NAME.ID` (or `net.…`): the load balancer's ARN suffix with its slashes as dots.
    pub load_balancer: String,
    pub node_ip: IpAddr,
}

impl Destination {
    /// AWS's key of the file of an interval ending at `end`, whose `random` part tells
    /// files of the same interval apart: `PREFIX/AWSLogs/ACCOUNT/elasticloadbalancing/
    /// REGION/YYYY/MM/DD/[conn_log_]ACCOUNT_elasticloadbalancing_REGION_app.NAME.ID_YYYYMMDDTHHMMZ_IP_RANDOM.log.gz`.
    pub fn key(&self, end: SystemTime, random: &str) -> String {
        let t = OffsetDateTime::from(end);
        let (year, month, day) = (t.year(), u8::from(t.month()), t.day());
        format!(
            "{}AWSLogs/{account}/elasticloadbalancing/{region}/{year:04}/{month:02}/{day:02}/\
             {file}{account}_elasticloadbalancing_{region}_{lb}_{year:04}{month:02}{day:02}T{:02}{:02}Z_{ip}_{random}.log.gz",
            prefix_path(&self.prefix),
            t.hour(),
            t.minute(),
            account = self.account,
            region = self.region,
            lb = self.load_balancer,
            ip = self.node_ip,
            file = self.kind.file_prefix(),
        )
    }
}

/// The key of the file AWS writes when logs are turned on, to show that it can:
/// `PREFIX/AWSLogs/ACCOUNT/ELBAccessLogTestFile`.
pub fn test_file_key(prefix: &str, account: &str) -> String {
    format!(
        "{}AWSLogs/{account}/ELBAccessLogTestFile",
        prefix_path(prefix)
    )
}

/// The test file's text (no log records): `Enable AccessLog for ELB: app/NAME/ID at TIME`.
pub fn test_file_body(load_balancer: &str, now: SystemTime) -> String {
    format!(
        "Enable AccessLog for ELB: {load_balancer} at {}",
        log_time(now, 6)
    )
}

/// `2018-07-02T22:23:00.186641Z`, as access logs write times, with `digits` (1 to 6) of the
/// second's fraction kept and the rest zero: `request_creation_time` keeps milliseconds.
pub fn log_time(at: SystemTime, digits: u32) -> String {
    let t = OffsetDateTime::from(at);
    let unit = 10u32.pow(6 - digits.clamp(1, 6));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond() / unit * unit
    )
}

fn prefix_path(prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

/// Eight lowercase letters and digits, as AWS's keys end.
pub fn random_part() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn keys_are_aws_s() {
        let destination = Destination {
            kind: LogKind::Access,
            bucket: "logs".into(),
            prefix: "team/".into(),
            account: "123456789012".into(),
            region: "us-east-2".into(),
            load_balancer: "app.my-lb.50dc6c495c0c9188".into(),
            node_ip: "127.1.0.5".parse().unwrap(),
        };
        // 2014-02-15T23:40:00Z.
        assert_eq!(
            destination.key(at(1_392_507_600), "20sg8hgm"),
            "team/AWSLogs/123456789012/elasticloadbalancing/us-east-2/2014/02/15/\
             123456789012_elasticloadbalancing_us-east-2_app.my-lb.50dc6c495c0c9188_\
             20140215T2340Z_127.1.0.5_20sg8hgm.log.gz"
        );
        let bare = Destination {
            prefix: String::new(),
            kind: LogKind::Connection,
            ..destination
        };
        let key = bare.key(at(0), "x");
        assert!(key.starts_with("AWSLogs/123456789012/"), "{key}");
        assert!(
            key.contains("/01/conn_log_123456789012_elasticloadbalancing_"),
            "{key}"
        );
        assert_eq!(
            test_file_key("", "123456789012"),
            "AWSLogs/123456789012/ELBAccessLogTestFile"
        );
        assert_eq!(
            test_file_key("a/b", "1"),
            "a/b/AWSLogs/1/ELBAccessLogTestFile"
        );
    }

    #[test]
    fn times_have_microseconds() {
        let t = at(1_530_570_180) + Duration::from_micros(186_641);
        assert_eq!(log_time(t, 6), "2018-07-02T22:23:00.186641Z");
        assert_eq!(log_time(t, 3), "2018-07-02T22:23:00.186000Z");
        assert_eq!(random_part().len(), 8);
    }
}
