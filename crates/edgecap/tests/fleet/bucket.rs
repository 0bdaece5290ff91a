//! Buckets for fleet tests: an S3 bucket on a `moto_server` and an Azure container on an
//! Azurite, both started by the test on 127.0.0.1 and removed with it; the ownership flow
//! through the API (the challenge read back from the bucket, as a user would); objects fetched
//! back to local files for tshark.

use std::path::{Path, PathBuf};

use edgecap_testkit::http::{moto_bucket, moto_get, moto_keys};
use edgecap_testkit::servers::{AZURITE_ACCOUNT, AZURITE_KEY, Server};
use serde_json::{Value, json};

use crate::harness::Fleet;

/// A secret that no answer, log line or byte of the server's state may contain.
pub const SECRET: &str = "EDGECAP-FLEET-SECRET-K7MDENG";
/// The key id beside it.
pub const KEY_ID: &str = "AKIDEDGECAPFLEET";

/// A bucket in a store the test started.
pub struct Bucket {
    pub server: Server,
    pub kind: Kind,
    pub name: String,
    /// The directory captures go under.
    pub dir: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    Azure,
}

impl Bucket {
    /// `pcaps` on a fresh moto_server.
    pub fn s3() -> Bucket {
        let server = Server::moto();
        moto_bucket(server.port, "pcaps");
        Bucket {
            server,
            kind: Kind::S3,
            name: "pcaps".into(),
            dir: "edge".into(),
        }
    }

    /// Container `pcaps` on a fresh Azurite.
    pub fn azure() -> Bucket {
        let server = Server::azurite();
        edgecap_testkit::azurite::azurite_container(server.port, "pcaps");
        Bucket {
            server,
            kind: Kind::Azure,
            name: "pcaps".into(),
            dir: "edge".into(),
        }
    }

    /// The `destination_conf` of the bucket's directory (secret-free; the credentials go
    /// through the API).
    pub fn conf(&self) -> String {
        match self.kind {
            Kind::S3 => format!(
                "s3://{}/{}?endpoint={}&region=us-east-1",
                self.name,
                self.dir,
                self.server.endpoint()
            ),
            Kind::Azure => format!(
                "azure://{}/{}?account={AZURITE_ACCOUNT}&endpoint={}/{AZURITE_ACCOUNT}",
                self.name,
                self.dir,
                self.server.endpoint()
            ),
        }
    }

    /// The API's `credentials` for this bucket.
    pub fn credentials(&self) -> Value {
        match self.kind {
            Kind::S3 => json!({"access_key_id": KEY_ID, "secret_access_key": SECRET}),
            Kind::Azure => json!({"azure_access_key": AZURITE_KEY}),
        }
    }

    /// An object's bytes, by its key under the bucket's directory.
    pub fn get(&self, rel: &str) -> Vec<u8> {
        let key = format!("{}/{rel}", self.dir);
        match self.kind {
            Kind::S3 => moto_get(self.server.port, &self.name, &key),
            Kind::Azure => {
                use std::io::Read;
                let store = self.store();
                let mut r = edgecap_store::ObjectReader::open(&store, rel)
                    .unwrap_or_else(|e| panic!("GET {key}: {e}"));
                let mut out = Vec::new();
                r.read_to_end(&mut out).unwrap();
                out
            }
        }
    }

    /// Every key in the bucket.
    pub fn keys(&self) -> Vec<String> {
        match self.kind {
            Kind::S3 => moto_keys(self.server.port, &self.name),
            Kind::Azure => {
                use futures_util::StreamExt;
                let store = self.store();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut keys: Vec<String> = rt.block_on(async {
                    store
                        .object_store()
                        .list(None)
                        .map(|m| m.unwrap().location.to_string())
                        .collect()
                        .await
                });
                keys.sort();
                keys
            }
        }
    }

    /// The object at `rel`, saved to `dir` for tshark.
    pub fn fetch(&self, rel: &str, dir: &Path) -> PathBuf {
        let path = dir.join(rel.replace('/', "_"));
        std::fs::write(&path, self.get(rel)).unwrap();
        path
    }

    /// A client of the bucket for checks where raw HTTP would mean signing (Azure).
    fn store(&self) -> edgecap_store::Store {
        let dest = edgecap_store::Destination::parse(&self.conf(), "test")
            .unwrap()
            .with_credentials(
                edgecap_store::Credentials::from_json(&self.credentials(), "test").unwrap(),
                "test",
            )
            .unwrap();
        edgecap_store::Store::open(&dest, &edgecap_store::StoreOptions::operator(), "test").unwrap()
    }
}

impl Fleet {
    /// The ownership flow, as a user runs it: add the bucket with its credentials, read the
    /// token from the challenge object in the bucket, validate. The ownership record.
    pub fn own(&self, b: &Bucket) -> Value {
        let (s, v) = self.api(
            reqwest::Method::POST,
            "pcaps/ownership",
            Some(json!({"destination_conf": b.conf(), "credentials": b.credentials()})),
        );
        assert_eq!(s, 200, "{v}");
        let filename = v["result"]["filename"].as_str().unwrap().to_owned();
        let token = String::from_utf8(b.get(&filename)).unwrap();
        let (s, v) = self.api(
            reqwest::Method::POST,
            "pcaps/ownership/validate",
            Some(json!({"destination_conf": b.conf(), "ownership_challenge": token})),
        );
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["result"]["status"], "success", "{v}");
        v["result"].clone()
    }
}
