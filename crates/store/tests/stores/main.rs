//! Integration tests of edgecap-store against real servers the tests start: moto_server (S3,
//! with the real 5 MiB part minimum and, in a second instance, IAM-checked credentials),
//! Azurite (Azure Blob), and the local file system. Every capture file fetched back is opened
//! with tshark. GCS has no emulator of the XML multipart API: see gcs.rs for what is tested.
#![allow(clippy::unwrap_used)]

mod azure;
mod endpoints;
mod gcs;
mod local;
mod s3;
mod s3_failures;
