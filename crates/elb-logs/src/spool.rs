//! Entries on disk until they are delivered. Each stream (a load balancer's node) appends
//! gzip members to `spool/STREAM.log`, beside `spool/STREAM.json` naming its [`Destination`].
//! Sealing writes `ready/NAME.json` (bucket and key) and renames the stream's file to
//! `ready/NAME.gz`; delivery removes a ready object once its bucket has it. A process killed
//! anywhere loses nothing already appended but the member it was writing: the next one cuts
//! that off, seals what it finds spooled and delivers what it finds ready. A crash between
//! two steps can deliver an interval twice, never lose it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::{Destination, random_part};

pub struct Spool {
    spool: PathBuf,
    outbox: Outbox,
    /// Streams with a file open, and where their entries go.
    open: HashMap<String, (Destination, File)>,
}

/// The sealed objects waiting for their buckets (`ready/`): what delivery reads, apart from
/// the spool that fills it.
#[derive(Debug, Clone)]
pub struct Outbox(PathBuf);

/// A sealed object waiting for its bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub bucket: String,
    pub key: String,
    /// The gzipped object.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Ready {
    pub fn body(&self) -> io::Result<Vec<u8>> {
        fs::read(&self.path)
    }

    /// Forgets the object: its bucket has it.
    pub fn delivered(self) -> io::Result<()> {
        fs::remove_file(self.path.with_extension("json"))?;
        fs::remove_file(&self.path)
    }
}

impl Spool {
    /// The spool under `root`, made if missing; what an earlier process spooled is sealed
    /// now, as an interval that ended when it stopped.
    pub fn open(root: &Path, now: SystemTime) -> io::Result<Self> {
        let spool = Self {
            spool: root.join("spool"),
            outbox: Outbox(root.join("ready")),
            open: HashMap::new(),
        };
        fs::create_dir_all(&spool.spool)?;
        fs::create_dir_all(&spool.outbox.0)?;
        for entry in fs::read_dir(&spool.spool)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log") {
                let stream = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                let destination = fs::read(path.with_extension("json"))
                    .ok()
                    .and_then(|json| serde_json::from_slice(&json).ok());
                match destination {
                    Some(destination) => {
                        whole_members(&path)?;
                        spool.seal_file(stream, &destination, now)?;
                    }
                    None => tracing::warn!(
                        path = %path.display(),
                        "a spooled log without its destination is left where it is"
                    ),
                }
            }
        }
        Ok(spool)
    }

    /// Appends `entries` to `stream`'s file. `stream` names a file: letters, digits, `.`,
    /// `-` and `_` only. A stream whose destination changed is sealed first, so that each
    /// object holds entries for one destination.
    pub fn append(
        &mut self,
        stream: &str,
        destination: &Destination,
        entries: &[u8],
        now: SystemTime,
    ) -> io::Result<()> {
        if self
            .open
            .get(stream)
            .is_some_and(|(open, _)| open != destination)
        {
            self.seal(stream, now)?;
        }
        if !self.open.contains_key(stream) {
            let path = self.spool.join(format!("{stream}.log"));
            fs::write(
                path.with_extension("json"),
                serde_json::to_vec(destination).map_err(io::Error::other)?,
            )?;
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            self.open
                .insert(stream.to_owned(), (destination.clone(), file));
        }
        // Each append is a gzip member of its own: a file of members is a gzip file (RFC
        // 1952), so sealing is a rename, and the disk takes a tenth of the bytes.
        let mut member = GzEncoder::new(Vec::with_capacity(entries.len() / 4), Compression::fast());
        member.write_all(entries)?;
        let member = member.finish()?;
        let (_, file) = self.open.get_mut(stream).expect("opened above");
        // Half a member in the middle would end every reader there: cut a failed write off.
        let whole = file.metadata()?.len();
        file.write_all(&member).inspect_err(|_| {
            let _ = file.set_len(whole);
        })
    }

    /// Seals every stream, as its interval ends at `end`; one that fails does not keep the
    /// others from it (the first error is returned).
    pub fn seal_all(&mut self, end: SystemTime) -> io::Result<()> {
        let streams: Vec<String> = self.open.keys().cloned().collect();
        let mut first = Ok(());
        for stream in streams {
            let sealed = self.seal(&stream, end);
            if first.is_ok() {
                first = sealed;
            }
        }
        first
    }

    fn seal(&mut self, stream: &str, end: SystemTime) -> io::Result<()> {
        if let Some((destination, file)) = self.open.remove(stream) {
            drop(file);
            self.seal_file(stream, &destination, end)?;
        }
        Ok(())
    }

    /// Gzips `stream`'s spooled file into a ready object, streaming, and removes it.
    fn seal_file(
        &self,
        stream: &str,
        destination: &Destination,
        end: SystemTime,
    ) -> io::Result<()> {
        let path = self.spool.join(format!("{stream}.log"));
        if fs::metadata(&path)?.len() > 0 {
            let random = random_part();
            let name = format!("{stream}_{}_{random}", crate::log_time(end, 6));
            let ready = Ready {
                bucket: destination.bucket.clone(),
                key: destination.key(end, &random),
                path: self.outbox.0.join(format!("{name}.gz")),
            };
            fs::write(
                ready.path.with_extension("json"),
                serde_json::to_vec(&ready).map_err(io::Error::other)?,
            )?;
            fs::rename(&path, &ready.path)?;
        } else {
            fs::remove_file(&path)?;
        }
        fs::remove_file(path.with_extension("json"))
    }

    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }
}

/// Cuts `path` after its last whole gzip member: a process killed during an append may have
/// written part of one.
fn whole_members(path: &Path) -> io::Result<()> {
    let bytes = fs::read(path)?;
    let mut whole = 0;
    while whole < bytes.len() {
        let mut member = flate2::bufread::GzDecoder::new(&bytes[whole..]);
        if io::copy(&mut member, &mut io::sink()).is_err() {
            break;
        }
        whole = bytes.len() - member.into_inner().len();
    }
    if whole < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            cut = bytes.len() - whole,
            "a spooled access log ended in a half-written part, left out"
        );
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(whole as u64)?;
    }
    Ok(())
}

impl Outbox {
    /// The sealed objects not yet delivered, oldest key first.
    pub fn ready(&self) -> io::Result<Vec<Ready>> {
        let mut ready = Vec::new();
        for entry in fs::read_dir(&self.0)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "gz") {
                continue;
            }
            let described = fs::read(path.with_extension("json"))
                .ok()
                .and_then(|json| serde_json::from_slice::<Ready>(&json).ok());
            if let Some(described) = described {
                ready.push(Ready { path, ..described });
            }
        }
        ready.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::Duration;

    use super::*;

    fn destination(bucket: &str) -> Destination {
        Destination {
            kind: crate::LogKind::Access,
            bucket: bucket.into(),
            prefix: String::new(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            load_balancer: "app.web.0123456789abcdef".into(),
            node_ip: "127.1.0.5".parse().unwrap(),
        }
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn entries_survive_a_killed_process_and_are_sealed_by_the_next() {
        let root = std::env::temp_dir().join(format!("elb-logs-spool-{}", fastrand::u64(..)));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut spool = Spool::open(&root, now).unwrap();
        spool
            .append("web_127.1.0.5", &destination("a"), b"one\n", now)
            .unwrap();
        spool
            .append("web_127.1.0.5", &destination("a"), b"two\n", now)
            .unwrap();
        // A change of bucket seals what went to the old one.
        spool
            .append("web_127.1.0.5", &destination("b"), b"three\n", now)
            .unwrap();
        assert_eq!(spool.outbox().ready().unwrap().len(), 1);
        // Killed, and in the middle of an append: the open file is never sealed by this
        // process, and ends in half a member.
        drop(spool);
        let half = {
            let mut member = GzEncoder::new(Vec::new(), Compression::fast());
            member.write_all(b"lost\n").unwrap();
            let member = member.finish().unwrap();
            member[..member.len() / 2].to_vec()
        };
        let mut open = OpenOptions::new()
            .append(true)
            .open(root.join("spool/web_127.1.0.5.log"))
            .unwrap();
        open.write_all(&half).unwrap();
        let spool = Spool::open(&root, now).unwrap();
        let ready = spool.outbox().ready().unwrap();
        let buckets: Vec<_> = ready.iter().map(|r| r.bucket.as_str()).collect();
        assert_eq!(buckets.len(), 2);
        assert!(buckets.contains(&"a") && buckets.contains(&"b"));
        for object in ready {
            let text = gunzip(&object.body().unwrap());
            let expected = if object.bucket == "a" {
                "one\ntwo\n"
            } else {
                "three\n"
            };
            assert_eq!(text, expected);
            assert!(
                object.key.contains("_20231114T2213Z_127.1.0.5_"),
                "{}",
                object.key
            );
            object.delivered().unwrap();
        }
        assert!(spool.outbox().ready().unwrap().is_empty());
        fs::remove_dir_all(root).unwrap();
    }
}
