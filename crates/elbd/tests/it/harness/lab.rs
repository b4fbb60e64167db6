//! Labs: each test's own loopback addresses (a slot of them) and scratch directory, and the
//! elbd settings that put them in the topology.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::Etcd;
/// The highest lab slot: zone b of slot 72 is 127.155/16, below the third zones (127.161+).
const MAX_SLOT: u8 = 72;
/// Slots whose zones would be the default topology's public pools and Elastic IP pool
/// (127.100-103), which the example's lab (slot 0) serves on.
const RESERVED_SLOTS: [u8; 2] = [45, 46];

/// Which test holds each lab slot.
static SLOTS: Mutex<BTreeMap<u8, &'static str>> = Mutex::new(BTreeMap::new());

/// Takes `slot` for the test `name`: a slot another test holds is a bug in the tests (every
/// test of the suite runs in one process, so a full run finds any such pair).
fn claim(name: &'static str, slot: u8) {
    assert!(
        (1..=MAX_SLOT).contains(&slot) && !RESERVED_SLOTS.contains(&slot),
        "lab slot {slot} ({name}) is not one of 1..={MAX_SLOT} less {RESERVED_SLOTS:?}"
    );
    let mut slots = SLOTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let holder = *slots.entry(slot).or_insert(name);
    assert_eq!(holder, name, "lab slot {slot} is taken by another test");
}

/// A directory of a test's own files, made empty and removed when the test passes: a failed
/// test's files stay for reading (a full suite writes about 1 GB, which would fill CI's disk
/// over runs).
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// `TMPDIR/elbd-it-NAME-PID`, empty.
    pub(crate) fn new(name: &str) -> Self {
        Self::at(std::env::temp_dir().join(format!("elbd-it-{name}-{}", std::process::id())))
    }

    fn at(dir: PathBuf) -> Self {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A test's own corner of loopback: zones `a` and `b` on 127.(N).0.0/16 and 127.(N+1).0.0/16,
/// and a scratch directory.
pub(crate) struct Lab {
    pub(crate) dir: PathBuf,
    slot: u8,
    first_octet: u8,
    /// 127.(this).0.0/16 is zone c, for labs that have one.
    third_zone: Option<u8>,
    /// elbd's RUST_LOG.
    pub(super) log_filter: &'static str,
    /// The etcd that elbd keeps its state in, for labs [`Lab::on_etcd`].
    etcd: Option<Arc<Etcd>>,
    /// `dir` and any [`Lab::named`] ones; last, so etcd has stopped before they go.
    scratch: Vec<Scratch>,
}

impl Lab {
    /// `slot` picks the lab's addresses, which no other lab shares: zones a and b on
    /// 127.(10 + 2 slot) and 127.(11 + 2 slot), their public pools and the Elastic IP pool
    /// on 127.240-242.slot.0/24. One test's slot (its `name`'s), 1..=[`MAX_SLOT`] but the
    /// [`RESERVED_SLOTS`]: two tests on one slot would share listening addresses (elbd binds
    /// with SO_REUSEPORT, so both would bind, and each would get the other's connections).
    pub(crate) fn new(name: &'static str, slot: u8) -> Self {
        claim(name, slot);
        let scratch = Scratch::new(name);
        Self {
            dir: scratch.to_path_buf(),
            slot,
            first_octet: 10 + 2 * slot,
            third_zone: None,
            log_filter: "info",
            etcd: None,
            scratch: vec![scratch],
        }
    }

    /// A lab with a third zone, us-east-1c, on 127.(160 + slot).0.0/16 (no public pool).
    pub(crate) fn with_three_zones(name: &'static str, slot: u8) -> Self {
        Self {
            third_zone: Some(160 + slot),
            ..Self::new(name, slot)
        }
    }

    /// The same lab, with elbd logging by `filter` (RUST_LOG's syntax).
    pub(crate) fn logging(self, filter: &'static str) -> Self {
        Self {
            log_filter: filter,
            ..self
        }
    }

    /// The same lab in a scratch directory of its own (a second run of a test on the same
    /// addresses).
    pub(crate) fn named(self, suffix: &str) -> Self {
        let scratch = Scratch::at(PathBuf::from(format!("{}-{suffix}", self.dir.display())));
        let mut named = Self {
            dir: scratch.to_path_buf(),
            ..self
        };
        named.scratch.push(scratch);
        named
    }

    /// The same lab, with elbd's state in an etcd of its own (on zone a's 255.1).
    pub(crate) fn on_etcd(self) -> Self {
        let etcd = Etcd::start(
            &self.dir.join("etcd"),
            Ipv4Addr::new(127, self.octet('a'), 255, 1),
        );
        Self {
            etcd: Some(Arc::new(etcd)),
            ..self
        }
    }

    /// This lab's etcd ([`Lab::on_etcd`]).
    pub(crate) fn etcd(&self) -> &Etcd {
        self.etcd.as_ref().expect("a lab on etcd")
    }

    /// `--store` for elbd: this lab's etcd, or the embedded default.
    pub(super) fn store_flags(&self) -> Vec<String> {
        match &self.etcd {
            Some(etcd) => vec!["--store".into(), format!("etcd://{}/elbd", etcd.endpoint)],
            None => vec![],
        }
    }

    /// The zones of the example file: us-east-1a = 127.1/16 and us-east-1b = 127.2/16.
    pub(crate) fn with_default_zones(name: &'static str) -> Self {
        let scratch = Scratch::new(name);
        Self {
            dir: scratch.to_path_buf(),
            slot: 0,
            first_octet: 1,
            third_zone: None,
            log_filter: "info",
            etcd: None,
            scratch: vec![scratch],
        }
    }

    fn octet(&self, zone: char) -> u8 {
        match zone {
            'c' => self.third_zone.expect("this lab has no zone c"),
            'b' => self.first_octet + 1,
            _ => self.first_octet,
        }
    }

    /// The `[settings]` block that puts this lab's zones in the topology: zones a and b with
    /// their public pools, zone c (without one) if the lab has it, and the Elastic IP pool.
    pub(crate) fn settings(&self) -> String {
        assert_ne!(
            self.slot, 0,
            "the example's lab keeps the example's settings"
        );
        let mut zones = vec!['a', 'b'];
        if self.third_zone.is_some() {
            zones.push('c');
        }
        let mut out = format!("[settings]\neip_cidr = \"{}.0/24\"\n", self.eip_prefix());
        for zone in zones {
            out.push_str(&format!(
                "[[settings.zone]]\nname = \"us-east-1{zone}\"\ncidr = \"127.{}.0.0/16\"\n",
                self.octet(zone)
            ));
            if let Some(pool) = self.public_pool(zone) {
                out.push_str(&format!("public_cidr = \"{pool}.0/24\"\n"));
            }
        }
        out
    }

    /// The first three octets of zone `zone`'s public pool (a /24), if it has one.
    fn public_pool(&self, zone: char) -> Option<String> {
        if self.slot == 0 {
            // The default topology's: 127.(100 + the zone's octet)/16, its top /24 255.
            return Some(format!("127.{}.255", self.octet(zone) + 100));
        }
        let pool = match zone {
            'a' => 240,
            'b' => 241,
            _ => return None,
        };
        Some(format!("127.{pool}.{}", self.slot))
    }

    /// The first three octets of this lab's Elastic IP pool (a /24).
    pub(crate) fn eip_prefix(&self) -> String {
        assert_ne!(self.slot, 0, "the example's Elastic IPs are not in one /24");
        format!("127.242.{}", self.slot)
    }

    /// The address of host `n` in zone `zone`.
    pub(crate) fn ip(&self, zone: char, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.octet(zone), 0, n)
    }

    /// The first node address of a zone: the top of its subnet.
    pub(crate) fn node(&self, zone: char, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(127, self.octet(zone), 255, 254), port))
    }

    /// The public address of the first internet-facing node of a zone: the top of its pool.
    pub(crate) fn public_node(&self, zone: char, port: u16) -> SocketAddr {
        let pool = self
            .public_pool(zone)
            .expect("zones a and b have public pools");
        format!("{pool}.254:{port}").parse().unwrap()
    }

    pub(crate) fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `elbd.toml` for an ALB `name` with `attributes` and two HTTP listeners on `target`:
    /// 8080 through the relay, 8081 (a sticky group's) on the general path from the first
    /// byte; `extra` is more of the file (more listeners of it, more groups).
    pub(crate) fn both_roads(
        &self,
        name: &str,
        attributes: &str,
        target: SocketAddr,
        extra: &str,
    ) -> PathBuf {
        let text = format!(
            "{}\n\
             [[load_balancer]]\nname = \"{name}\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
             attributes = {{ {attributes} }}\n\
             [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"plain\" }}\n\
             [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8081\ndefault_action = {{ forward = \"sticky\" }}\n\
             [[target_group]]\nname = \"plain\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n\
             [[target_group]]\nname = \"sticky\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n\
             attributes = {{ \"stickiness.enabled\" = \"true\" }}\n{extra}",
            self.settings()
        );
        self.write("elbd.toml", &text)
    }
}
