//! Where objects are put: elbd's S3 stand-in, a directory per bucket under
//! `<data-dir>/s3` (a bucket is made by making its directory, as trust stores' bundles are
//! read from it), or an S3-compatible server, each object one presigned `PUT`.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long a presigned request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(300);
/// A put that has not finished by then is given up, and tried again later.
const PUT_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Buckets {
    /// `<root>/BUCKET/KEY`.
    Local(PathBuf),
    Remote(Box<Remote>),
}

pub struct Remote {
    endpoint: url::Url,
    region: String,
    credentials: Option<rusty_s3::Credentials>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Why an object could not be put.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("the bucket '{0}' does not exist")]
    NoSuchBucket(String),
    #[error("S3 refused the object: {0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the S3 endpoint could not be reached: {0}")]
    Unreachable(String),
}

impl Buckets {
    /// An S3-compatible server at `endpoint` (`http://` or `https://`, the machine's roots
    /// trusted), addressed path-style, requests signed for `region` when credentials are
    /// given (`(access key id, secret access key)`).
    pub fn remote(
        endpoint: &str,
        region: &str,
        credentials: Option<(String, String)>,
    ) -> Result<Self, String> {
        let endpoint = url::Url::parse(endpoint)
            .map_err(|e| format!("s3_endpoint '{endpoint}' is not a URL: {e}"))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(format!(
                "s3_endpoint '{endpoint}' must be an http:// or https:// URL"
            ));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("the machine's TLS roots could not be read: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self::Remote(Box::new(Remote {
            endpoint,
            region: region.to_owned(),
            credentials: credentials.map(|(id, secret)| rusty_s3::Credentials::new(id, secret)),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })))
    }

    /// Puts `body` as `bucket`'s object `key`.
    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), PutError> {
        match self {
            Self::Local(root) => {
                // Off the runtime's threads: with one, they carry the traffic too.
                let (root, bucket, key) = (root.clone(), bucket.to_owned(), key.to_owned());
                tokio::task::spawn_blocking(move || put_local(&root, &bucket, &key, &body))
                    .await
                    .map_err(|e| PutError::Io(std::io::Error::other(e)))?
            }
            Self::Remote(remote) => remote.put(bucket, key, body).await,
        }
    }
}

fn put_local(root: &Path, bucket: &str, key: &str, body: &[u8]) -> Result<(), PutError> {
    let dir = root.join(bucket);
    let plain = |p: &Path| p.components().all(|c| matches!(c, Component::Normal(_)));
    if bucket.contains('/') || !plain(Path::new(bucket)) || !dir.is_dir() {
        return Err(PutError::NoSuchBucket(bucket.to_owned()));
    }
    if !plain(Path::new(key)) {
        return Err(PutError::Refused(format!(
            "the key '{key}' is not a plain path"
        )));
    }
    let path = dir.join(key);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Whole or not at all: readers never see half an object.
    let partial = path.with_extension(format!("partial-{}", fastrand::u32(..)));
    std::fs::write(&partial, body)?;
    std::fs::rename(&partial, &path)?;
    Ok(())
}

impl Remote {
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), PutError> {
        let named = rusty_s3::Bucket::new(
            self.endpoint.clone(),
            rusty_s3::UrlStyle::Path,
            bucket.to_owned(),
            self.region.clone(),
        )
        .map_err(|e| PutError::Refused(format!("bucket '{bucket}': {e}")))?;
        let url = rusty_s3::S3Action::sign(
            &named.put_object(self.credentials.as_ref(), key),
            SIGNED_FOR,
        );
        let request = hyper::Request::put(url.as_str())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PutError::Refused(e.to_string()))?;
        let response = tokio::time::timeout(PUT_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| PutError::Unreachable("timed out".into()))?
            .map_err(|e| PutError::Unreachable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        if body.contains("<Code>NoSuchBucket</Code>") {
            return Err(PutError::NoSuchBucket(bucket.to_owned()));
        }
        Err(PutError::Refused(format!("{status}: {}", body.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_stand_in_takes_objects_in_buckets_that_exist() {
        let root = std::env::temp_dir().join(format!("elb-logs-buckets-{}", fastrand::u64(..)));
        std::fs::create_dir_all(root.join("logs")).unwrap();
        let buckets = Buckets::Local(root.clone());
        buckets
            .put("logs", "a/b/object.gz", b"bytes".to_vec())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(root.join("logs/a/b/object.gz")).unwrap(),
            b"bytes"
        );
        for (bucket, key) in [("missing", "k"), ("..", "k"), ("logs", "../escape")] {
            assert!(
                buckets.put(bucket, key, Vec::new()).await.is_err(),
                "{bucket} {key}"
            );
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}
