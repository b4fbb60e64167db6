//! What must hold for any config file: the fuzz target (fuzz/) and the corpus regression test
//! (tests/corpus.rs) both run this.

use std::collections::BTreeSet;
use std::path::Path;

use elb_config::Config;

/// Where the fuzzed files' relative certificate paths lead: nowhere (`..` does not climb out
/// of a directory that does not exist), so a declared certificate is refused as unreadable,
/// naming it. Texts with absolute ones are left alone: `/dev/zero` would be read to the end.
const NO_FILES: &str = "/nonexistent/elbd-config-fuzz";

/// Any text is loaded or refused without panicking. A refusal names where the fault is: a
/// line (TOML's syntax and types) or a key path (`settings…`, `load_balancer[i]…`,
/// `target_group[i]…`, `certificate[i]…`). What is loaded holds what the loader promises:
/// names unique per kind, a listener per port, listeners' certificates declared, and regions
/// with valid names and zones whose ranges no other region's overlap.
pub(crate) fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_an_absolute_file(text) {
        return;
    }
    let config = match Config::parse(text, Path::new(NO_FILES)) {
        Ok(config) => config,
        Err(message) => {
            let placed = [
                "settings",
                "load_balancer[",
                "target_group[",
                "certificate[",
            ]
            .iter()
            .any(|key| message.starts_with(key));
            assert!(
                placed || message.contains("line "),
                "a refusal that says not where: {message}"
            );
            return;
        }
    };
    unique(config.load_balancers.iter().map(|lb| &lb.name));
    unique(config.target_groups.iter().map(|tg| &tg.name));
    unique(config.certificates.iter().map(|c| &c.name));
    for lb in &config.load_balancers {
        unique(lb.listeners.iter().map(|l| l.port));
        for name in lb.listeners.iter().flat_map(|l| &l.certificates) {
            assert!(config.certificates.iter().any(|c| &c.name == name));
        }
    }
    let Some(settings) = config.settings else {
        return;
    };
    assert!(elb_model::names::is_region_name(&settings.scope.region));
    let regions: Vec<_> = settings.topologies.iter().collect();
    for (i, (name, topology)) in regions.iter().enumerate() {
        assert!(elb_model::names::is_region_name(name), "{name}");
        topology
            .validate()
            .expect("a loaded region's zones are valid");
        for (other, theirs) in &regions[i + 1..] {
            for range in topology.ranges() {
                assert!(
                    !theirs
                        .ranges()
                        .any(|t| t.contains(&range.network()) || range.contains(&t.network())),
                    "{range} of {name} overlaps {other}"
                );
            }
        }
    }
}

/// Panics when an item repeats.
fn unique<T: std::fmt::Debug>(items: impl Iterator<Item = T>) {
    let mut seen = BTreeSet::new();
    for item in items {
        assert!(seen.insert(format!("{item:?}")), "{item:?} twice");
    }
}

/// Whether a `[[certificate]]` of `text` names a file by an absolute path.
fn names_an_absolute_file(text: &str) -> bool {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return false;
    };
    let Some(toml::Value::Array(certificates)) = table.get("certificate") else {
        return false;
    };
    certificates
        .iter()
        .filter_map(toml::Value::as_table)
        .flat_map(|c| ["certificate", "private_key", "chain"].map(|key| c.get(key)))
        .flatten()
        .filter_map(toml::Value::as_str)
        .any(|path| Path::new(path).is_absolute())
}
