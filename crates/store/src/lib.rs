//! Where capture files go: edgecap's destinations and the transfers to them, built on
//! `object_store` (S3, R2, GCS, Azure, local directories). No packet parsing here; bytes in,
//! bytes out.
//!
//! Modules:
//! - `destination`: `destination_conf` URLs parsed into a typed [`Destination`] (scheme,
//!   bucket, prefix, region, endpoint, account, credential source) with errors naming the
//!   field; its `Display` is the canonical, secret-free form.
//! - `credentials`: [`Credentials`] (explicit per-bucket secrets, API JSON shape) and
//!   [`CredentialSource`] (the cloud's standard chain, or explicit); [`Secret`] never prints.
//! - `seal`: [`SecretsKey`], encryption at rest of credentials (XChaCha20-Poly1305 with a key
//!   file in the server's data directory).
//! - [`policy`]: [`EndpointPolicy`], where a user-supplied `endpoint=` may point (https,
//!   public addresses, written or resolved, unless the operator allows a host; never cloud
//!   metadata) and that it brings its own credentials; `store` applies it to every client.
//! - `store`: [`Store`], one destination's client: small puts and gets (challenges,
//!   manifests), sizes, and [`Store::preflight`] (the check at capture start).
//! - [`upload`]: [`UploadSink`], the streaming bounded multipart upload behind an
//!   `io::Write`, its options, part-size rule and [`UploadReport`].
//! - `read`: [`ObjectReader`], a streaming GET behind an `io::Read`.
//! - [`layout`]: the object keys of a capture (`<capture_id>/<node>.pcapng`, manifests, the
//!   merged file, ownership challenges).
//! - [`manifest`]: the per-node JSON manifest written beside each file.
//! - `error`: the single [`StoreError`].

pub mod attempts;
mod credentials;
mod destination;
mod error;
pub mod layout;
pub mod manifest;
pub mod policy;
mod read;
mod seal;
mod store;
pub mod upload;

pub use credentials::{CredentialSource, Credentials, Secret};
pub use destination::{Destination, Scheme};
pub use error::StoreError;
pub use policy::{EndpointPolicy, FileRoots};
pub use read::ObjectReader;
pub use seal::SecretsKey;
pub use store::{Store, StoreOptions, check_resolved};
pub use upload::{UploadOptions, UploadReport, UploadSink, UploadWatch};
