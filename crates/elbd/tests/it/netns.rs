//! Network namespaces a test makes for itself (shared/reference/netlab.md): hosts, links
//! between them, programs inside them. While they exist, the root namespace has an
//! `unreachable` route for the lab's range, so no packet of the test can leave the machine.
//! Everything is removed when the value is dropped, whether the test passed or not.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::harness::Scratch;

/// A TCP target that tells each connection the peer it sees (health checks reset theirs);
/// argv: address (IPv4 or IPv6), port.
pub(crate) const GREETER: &str = "import socket, sys\n\
    family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
    s = socket.create_server((sys.argv[1], int(sys.argv[2])), family=family)\n\
    while True:\n\
    \x20   c, peer = s.accept()\n\
    \x20   try:\n\
    \x20       c.sendall(f'{peer[0]}:{peer[1]}\\n'.encode())\n\
    \x20   except OSError:\n\
    \x20       pass\n\
    \x20   c.close()\n";

/// Runs a command; panics with its output if it fails.
pub(crate) fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh directory for test `name`'s files, with elbd's config file `config` in it: the
/// directory and the file's path.
pub(crate) fn scratch(name: &str, config: &str) -> (Scratch, PathBuf) {
    let dir = Scratch::new(name);
    let file = dir.join("elbd.toml");
    std::fs::write(&file, config).unwrap();
    (dir, file)
}

/// Panics with a clear message unless this process may make namespaces.
pub(crate) fn require_root() {
    let status = Command::new("ip").args(["netns", "list"]).output();
    assert!(
        status.is_ok_and(|s| s.status.success()),
        "this test needs root and iproute2 (ip netns); .ci/run provides both"
    );
}

pub(crate) struct Namespaces {
    prefix: String,
    /// Kept out of the root namespace's routes while the lab lives.
    range: &'static str,
    hosts: Vec<String>,
    children: Vec<Child>,
}

impl Namespaces {
    /// A lab named `tag` (a few letters, unique among tests) over `range`.
    pub(crate) fn new(tag: &str, range: &'static str) -> Self {
        require_root();
        let lab = Self {
            prefix: format!("{tag}{}-", std::process::id() % 100_000),
            range,
            hosts: Vec::new(),
            children: Vec::new(),
        };
        // `replace`: a run killed before it could clean up left it.
        run(&["ip", "route", "replace", "unreachable", range]);
        lab
    }

    /// A lab named `tag` over `range`: a `core` host with bridge `br0`, and `hosts` on it,
    /// each with its addresses on `eth0`; `resolver` = (host, DNS server address) points that
    /// host's resolver at the server.
    pub(crate) fn bridged(
        tag: &str,
        range: &'static str,
        hosts: &[(&str, &[&str])],
        resolver: (&str, &str),
    ) -> Self {
        let mut lab = Self::new(tag, range);
        lab.host("core");
        lab.ip("core", &["link", "add", "br0", "type", "bridge"]);
        lab.ip("core", &["link", "set", "br0", "up"]);
        for (host, addresses) in hosts {
            let peer = format!("{tag}{}{host}", std::process::id() % 100_000);
            lab.host(host);
            lab.link((host, "eth0", ""), ("core", &peer, ""));
            lab.ip("core", &["link", "set", &peer, "master", "br0"]);
            for address in *addresses {
                lab.ip(host, &["addr", "add", address, "dev", "eth0"]);
            }
        }
        let resolv = lab.resolv_dir(resolver.0);
        std::fs::create_dir_all(&resolv).unwrap();
        std::fs::write(
            resolv.join("resolv.conf"),
            format!("nameserver {}\n", resolver.1),
        )
        .unwrap();
        lab
    }

    /// The addresses `host`'s resolver gives for `name`, sorted, each once.
    pub(crate) fn resolve(&self, host: &str, name: &str) -> Vec<String> {
        let (_, out) = self.exec(host, &["getent", "ahostsv4", name]);
        let mut addresses: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// The namespace of `host`.
    pub(crate) fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    /// Adds the host `host`, with its loopback up.
    pub(crate) fn host(&mut self, host: &str) {
        let ns = self.ns(host);
        run(&["ip", "netns", "add", &ns]);
        self.hosts.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    }

    /// A veth pair between hosts: `(host, interface, address)` on each side, up.
    pub(crate) fn link(&self, a: (&str, &str, &str), b: (&str, &str, &str)) {
        let (ns_a, ns_b) = (self.ns(a.0), self.ns(b.0));
        run(&[
            "ip", "link", "add", a.1, "netns", &ns_a, "type", "veth", "peer", "name", b.1, "netns",
            &ns_b,
        ]);
        for (ns, interface, address) in [(&ns_a, a.1, a.2), (&ns_b, b.1, b.2)] {
            if !address.is_empty() {
                run(&["ip", "-n", ns, "addr", "add", address, "dev", interface]);
            }
            run(&["ip", "-n", ns, "link", "set", interface, "up"]);
        }
    }

    /// Runs `ip ARGS` in `host`'s namespace; panics if it fails.
    pub(crate) fn ip(&self, host: &str, args: &[&str]) {
        let ns = self.ns(host);
        run(&[&["ip", "-n", &ns][..], args].concat());
    }

    /// The directory whose `resolv.conf` `ip netns exec` puts in place for `host`.
    pub(crate) fn resolv_dir(&self, host: &str) -> PathBuf {
        PathBuf::from("/etc/netns").join(self.ns(host))
    }

    /// Starts `args` inside `host`, its stderr (and stdout when `stdout` is set) into `log`.
    pub(crate) fn spawn(&mut self, host: &str, args: &[&str], log: &Path) {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Kills (SIGKILL) every process inside `host`, as a host that dies.
    pub(crate) fn kill(&self, host: &str) {
        let pids = run(&["ip", "netns", "pids", &self.ns(host)]);
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }

    /// Runs `args` inside `host` and returns (success, stdout), with stderr logged.
    pub(crate) fn exec(&self, host: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .args(args)
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "{args:?} in {host}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(ns));
        }
        let _ = Command::new("ip")
            .args(["route", "del", "unreachable", self.range])
            .stderr(Stdio::null())
            .status();
    }
}
