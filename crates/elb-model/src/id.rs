//! Identifiers as AWS forms them, and the injected sources of entropy and time.

use serde::{Deserialize, Serialize};

/// Where the fresh parts of identifiers come from. The store passes real randomness; tests
/// pass a counter so that ARNs are predictable.
pub trait IdSource {
    fn next_u64(&mut self) -> u64;
}

/// Everything a command may need from outside the state: identifiers and the current time.
pub struct Context<'a> {
    pub ids: &'a mut dyn IdSource,
    /// Milliseconds since the Unix epoch, as the caller sees it.
    pub now_ms: u64,
}

impl Context<'_> {
    /// 16 lowercase hex digits, the random tail of LB, listener and target-group ARNs.
    pub fn hex16(&mut self) -> String {
        format!("{:016x}", self.ids.next_u64())
    }

    /// `len` lowercase hex digits, as in `subnet-0a1b2c3d4e5f60718` (17) or `sg-…`.
    pub fn hex(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len);
        while out.len() < len {
            out.push_str(&format!("{:016x}", self.ids.next_u64()));
        }
        out.truncate(len);
        out
    }

    /// A random UUID-shaped id, as in ACM certificate ARNs.
    pub fn uuid(&mut self) -> String {
        uuid_text(u128::from(self.ids.next_u64()) << 64 | u128::from(self.ids.next_u64()))
    }

    /// The decimal id in ALB DNS names (`my-lb-424835706.…`): 9 or 10 digits as AWS's are.
    pub fn dns_digits(&mut self) -> u64 {
        100_000_000 + self.ids.next_u64() % 1_900_000_000
    }
}

/// `8-4-4-4-12` lowercase hex digits of `n`: the form of AWS request ids and ACM ARNs.
pub fn uuid_text(n: u128) -> String {
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The account and region a state belongs to, and the domain its DNS names end in. Every key
/// in the store is scoped by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub region: String,
    pub account: String,
    /// DNS names end in `.elb.<dns_domain>` (ALB) or `.elb.<region>.<dns_domain>` (NLB, GWLB).
    pub dns_domain: String,
}

impl Scope {
    pub fn arn(&self, resource: &str) -> String {
        self.service_arn("elasticloadbalancing", resource)
    }

    /// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
    pub fn service_arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition(),
            self.region,
            self.account
        )
    }

    /// AWS's partition of the region: `aws-us-gov` for GovCloud, `aws-cn` for China.
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else if self.region.starts_with("cn-") {
            "aws-cn"
        } else {
            "aws"
        }
    }

    /// `ACCOUNT/REGION`: where a store written before regions kept this scope's state.
    pub fn key(&self) -> String {
        format!("{}/{}", self.account, self.region)
    }
}

impl Default for Scope {
    /// us-east-1, account 123456789012, and names under `internal`, the top-level domain
    /// reserved for private use (not `localhost`, which resolvers answer with 127.0.0.1 on
    /// their own).
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "123456789012".into(),
            dns_domain: "internal".into(),
        }
    }
}

/// A counter, for tests and reproducible runs.
#[derive(Debug, Default)]
pub struct SequentialIds(pub u64);

impl IdSource for SequentialIds {
    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}
