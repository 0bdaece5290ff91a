//! [`Store`]: one destination's `object_store` client, built from a [`Destination`], with the
//! small-object operations the server needs (challenges, manifests) and the preflight check
//! the agent runs before a capture starts.

use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use crate::credentials::{CredentialSource, Credentials};
use crate::destination::{Destination, Scheme};
use crate::error::{StoreError, describe};
use crate::policy::{Dial, EndpointPolicy};

/// How requests are retried and timed out. `Default` suits agents on real networks.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Retries of one request on transient failures (5xx, 429, connection errors).
    pub max_retries: usize,
    /// Longest one request keeps retrying: the outage an upload rides out before it fails.
    pub retry_timeout: Duration,
    /// First backoff; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (a part of up to tens of MiB must fit).
    pub request_timeout: Duration,
    /// Retry budget of the start-of-capture check, which must fail fast.
    pub preflight_timeout: Duration,
    /// Where a destination's `endpoint=` may point ([`EndpointPolicy`]); `Default` is the
    /// strict rule for destinations users send. `EndpointPolicy::operator()` for URLs the
    /// operator typed.
    pub endpoints: EndpointPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_retries: 8,
            retry_timeout: Duration::from_secs(120),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            preflight_timeout: Duration::from_secs(10),
            endpoints: EndpointPolicy::default(),
        }
    }
}

impl StoreOptions {
    /// The defaults without endpoint checks ([`EndpointPolicy::operator`]): for URLs the
    /// operator typed on their own command line, never for destinations sent through the API.
    pub fn operator() -> StoreOptions {
        StoreOptions {
            endpoints: EndpointPolicy::operator(),
            ..StoreOptions::default()
        }
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }

    fn quick(&self) -> StoreOptions {
        StoreOptions {
            max_retries: 1,
            retry_timeout: self.preflight_timeout,
            ..self.clone()
        }
    }
}

/// A destination's object store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The same store with a short retry budget, for checks that must fail at once.
    quick: Arc<dyn ObjectStore>,
    dest: Destination,
    opts: StoreOptions,
    /// The endpoint's host name, to check again where it resolves (see [`Store::check_endpoint`]).
    dial: Option<Dial>,
    field: String,
    /// For a `file://` destination: its directory, symlinks resolved and checked.
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The destination's Display is secret-free; the inner store's Debug may not be.
        f.debug_struct("Store")
            .field("destination", &self.dest.to_string())
            .finish_non_exhaustive()
    }
}

static TLS: Once = Once::new();

/// reqwest is built without a default TLS provider (to keep aws-lc-sys out); ring serves.
fn install_tls_provider() {
    TLS.call_once(|| {
        // Err means the process already chose a provider, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Store {
    /// Builds the client for `dest`, after `opts.endpoints` checked its endpoint and
    /// credentials. No network traffic; `field` names the destination in errors (e.g.
    /// `destination_conf`).
    pub fn open(dest: &Destination, opts: &StoreOptions, field: &str) -> Result<Store, StoreError> {
        install_tls_provider();
        let dial = opts.endpoints.check(dest, field)?;
        let dir = match dest.scheme {
            Scheme::File => Some(local_dir(dest, opts, field)?),
            _ => None,
        };
        Ok(Store {
            dir,
            inner: build(dest, opts, field)?,
            quick: build(dest, &opts.quick(), field)?,
            dest: dest.clone(),
            opts: opts.clone(),
            dial,
            field: field.to_owned(),
        })
    }

    /// Resolves the endpoint's host name now and checks its addresses against the policy, so
    /// a name that points at a refused address is refused before any request, with an error
    /// naming the field. The client checks them again at every connection; a name that does
    /// not resolve here passes (the connection will say why it fails).
    pub async fn check_endpoint(&self) -> Result<(), StoreError> {
        match &self.dial {
            Some(dial) => check_resolved(&self.opts, dial, &self.field).await,
            None => Ok(()),
        }
    }

    /// Parses and opens a `destination_conf` in one step.
    pub fn from_url(conf: &str, opts: &StoreOptions, field: &str) -> Result<Store, StoreError> {
        Store::open(&Destination::parse(conf, field)?, opts, field)
    }

    /// Opens the store of one object's URL, e.g. `s3://b/dir/id/edge0.pcapng?region=..` or
    /// `file:///srv/x/edge0.pcapng`, and returns it with the object's key (its last segment;
    /// the rest of the path becomes the prefix).
    pub fn open_object(
        url: &str,
        opts: &StoreOptions,
        field: &str,
    ) -> Result<(Store, String), StoreError> {
        let mut dest = Destination::parse(url, field)?;
        let no_name = || {
            StoreError::invalid(
                field,
                format!(
                    "{dest_url} names no object (no file name after the bucket)",
                    dest_url = url.split('?').next().unwrap_or(url)
                ),
            )
        };
        let name = match dest.scheme {
            Scheme::File => {
                let path = dest.dir.take().ok_or_else(no_name)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(no_name)?;
                dest.dir = path.parent().map(std::path::Path::to_path_buf);
                name
            }
            _ => {
                let (dir, name) = match dest.prefix.rsplit_once('/') {
                    Some((d, n)) => (d.to_owned(), n.to_owned()),
                    None => (String::new(), dest.prefix.clone()),
                };
                if name.is_empty() {
                    return Err(no_name());
                }
                dest.prefix = dir;
                name
            }
        };
        Ok((Store::open(&dest, opts, field)?, name))
    }

    pub fn destination(&self) -> &Destination {
        &self.dest
    }

    /// For a `file://` destination: its directory with symlinks resolved, checked against the
    /// operator's roots when the store was opened. Write there, not to the path as written.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// The `object_store` client, for callers that need more than this type offers.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The object path of `rel` under the destination's prefix. `rel` is a `/`-separated key
    /// whose segments are checked like the prefix's.
    pub fn path(&self, rel: &str) -> Result<Path, StoreError> {
        let ok = !rel.is_empty()
            && rel.split('/').all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && !s.contains(['%', '\\', '*'])
                    && !s.chars().any(char::is_control)
            });
        if !ok {
            return Err(StoreError::invalid(
                "key",
                format!("{rel:?} is not a valid object key"),
            ));
        }
        let full = if self.dest.scheme == Scheme::File {
            rel.to_owned()
        } else {
            self.dest.key(rel)
        };
        Path::parse(&full).map_err(|e| {
            StoreError::invalid("key", format!("{rel:?} is not a valid object key: {e}"))
        })
    }

    /// A human name for an object: the destination URL plus the key.
    pub fn describe_key(&self, rel: &str) -> String {
        let d = self.dest.to_string();
        let base = d.split('?').next().unwrap_or(&d).trim_end_matches('/');
        format!("{base}/{rel}")
    }

    /// Writes a small object (a challenge, a manifest) in one request, replacing any object of
    /// that name. Fails fast: this runs while an API caller waits.
    pub async fn put_small(&self, rel: &str, body: impl Into<Bytes>) -> Result<(), StoreError> {
        let path = self.path(rel)?;
        self.quick
            .put(&path, PutPayload::from(body.into()))
            .await
            .map(|_| ())
            .map_err(|e| self.request_error("write", rel, &e))
    }

    /// Reads a small object whole, refusing more than `max` bytes.
    pub async fn get_small(&self, rel: &str, max: usize) -> Result<Bytes, StoreError> {
        let path = self.path(rel)?;
        let got = self
            .quick
            .get(&path)
            .await
            .map_err(|e| self.request_error("read", rel, &e))?;
        if got.meta.size > max as u64 {
            return Err(StoreError::Request {
                op: "read",
                destination: self.dest.to_string(),
                key: rel.to_owned(),
                reason: format!("object is {} bytes, more than {max}", got.meta.size),
            });
        }
        got.bytes()
            .await
            .map_err(|e| self.request_error("read", rel, &e))
    }

    /// The size of an object.
    pub async fn size(&self, rel: &str) -> Result<u64, StoreError> {
        let path = self.path(rel)?;
        self.quick
            .head(&path)
            .await
            .map(|m| m.size)
            .map_err(|e| self.request_error("head", rel, &e))
    }

    /// Checks, before a capture starts, that an upload to `rel` can be written: starts a
    /// multipart upload there, writes one small part and aborts it, which is what the upload
    /// sink does first. Nothing becomes visible in the bucket. An unreachable store, a missing
    /// bucket or denied writes fail here within [`StoreOptions::preflight_timeout`] or so.
    pub async fn preflight(&self, rel: &str) -> Result<(), StoreError> {
        let path = self.path(rel)?;
        let unwritable = |e: &object_store::Error| StoreError::Unwritable {
            destination: self.dest.to_string(),
            key: rel.to_owned(),
            reason: explain(e),
        };
        let mut upload = self
            .quick
            .put_multipart(&path)
            .await
            .map_err(|e| unwritable(&e))?;
        let part = upload
            .put_part(PutPayload::from_static(b"edgecap preflight"))
            .await;
        let aborted = upload.abort().await;
        part.map_err(|e| unwritable(&e))?;
        // An abort that fails after a part was accepted leaves an invisible incomplete upload
        // (the bucket's lifecycle rule removes it); writing works, which is what we check.
        if let Err(e) = aborted {
            tracing::warn!(destination = %self.dest, key = rel, error = %describe(&e), "preflight: aborting the test upload failed");
        }
        Ok(())
    }

    pub(crate) fn request_error(
        &self,
        op: &'static str,
        rel: &str,
        e: &object_store::Error,
    ) -> StoreError {
        StoreError::Request {
            op,
            destination: self.dest.to_string(),
            key: rel.to_owned(),
            reason: explain(e),
        }
    }
}

/// Resolves `dial`'s host now (within `opts.connect_timeout`) and checks its addresses against
/// `opts.endpoints`; errors name `field`. A name that does not resolve passes: the connection
/// will fail and say why, and is checked again then.
pub async fn check_resolved(
    opts: &StoreOptions,
    dial: &Dial,
    field: &str,
) -> Result<(), StoreError> {
    let lookup = tokio::net::lookup_host((dial.host.as_str(), dial.port));
    let Ok(Ok(addrs)) = tokio::time::timeout(opts.connect_timeout, lookup).await else {
        return Ok(());
    };
    let ips: Vec<std::net::IpAddr> = addrs.map(|a| a.ip()).collect();
    opts.endpoints
        .check_addresses(dial, &ips)
        .map_err(|reason| StoreError::invalid(field, reason))
}

/// An object_store error with a hint for the common causes.
pub(crate) fn explain(e: &object_store::Error) -> String {
    let text = describe(e);
    match cause(e) {
        Some(hint) => format!("{text} ({hint})"),
        None => text,
    }
}

/// The common cause of a failed request, from the error's type alone: object_store's variant
/// (which it derives from the HTTP status), the HTTP client's error kind, or the I/O error
/// kind, never from its text, which holds the endpoint's URL, the bucket and the store's
/// answer (a port or bucket name containing "403" must not read as a denial).
pub(crate) fn cause(e: &object_store::Error) -> Option<&'static str> {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => {
            return Some("the bucket, container or key does not exist (HTTP 404)");
        }
        E::PermissionDenied { .. } => {
            return Some(
                "access denied (HTTP 403): the credentials were refused or may not write here",
            );
        }
        E::Unauthenticated { .. } => return Some("the credentials were refused (HTTP 401)"),
        _ => {}
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            match h.kind() {
                K::Connect | K::Request => return Some("the store could not be reached"),
                K::Timeout => return Some("the store could not be reached (timed out)"),
                _ => {}
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::TimedOut
                    | K::NotConnected
            ) {
                return Some("the store could not be reached");
            }
        }
        src = s.source();
    }
    None
}

fn client_options(dest: &Destination, opts: &StoreOptions) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allows_http(dest))
        .with_connect_timeout(opts.connect_timeout)
        .with_timeout(opts.request_timeout)
}

fn allows_http(dest: &Destination) -> bool {
    dest.endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
}

/// The HTTP client of a destination whose user-supplied endpoint the policy checks:
/// redirects are not followed (a redirect could name any address), no proxy from the
/// environment is used (the address checked is the one dialled), and every host name is
/// resolved by [`CheckedResolver`]. Only for explicit credentials, which the policy demands
/// with a custom endpoint: the instance-metadata client of a credential chain never comes
/// here.
#[derive(Debug)]
struct GuardedConnector {
    policy: EndpointPolicy,
    port: u16,
    allow_http: bool,
    connect_timeout: Duration,
    timeout: Duration,
}

impl object_store::client::HttpConnector for GuardedConnector {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<object_store::client::HttpClient> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("edgecap/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .https_only(!self.allow_http)
            .dns_resolver(Arc::new(CheckedResolver {
                policy: self.policy.clone(),
                port: self.port,
            }))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "edgecap",
                source: Box::new(e),
            })?;
        Ok(object_store::client::HttpClient::new(client))
    }
}

/// Resolves a host name and refuses it when any of its addresses is one the policy refuses:
/// the check at connect time, so DNS cannot lead a request where the URL could not.
struct CheckedResolver {
    policy: EndpointPolicy,
    port: u16,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dial = Dial::new(name.as_str(), self.port);
        let policy = self.policy.clone();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((dial.host.as_str(), dial.port))
                    .await?
                    .collect();
            let ips: Vec<std::net::IpAddr> = addrs.iter().map(|a| a.ip()).collect();
            policy.check_addresses(&dial, &ips).map_err(|reason| {
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, reason)
            })?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The guarded connector for `dest`, when its endpoint is user-supplied and checked.
fn guard(dest: &Destination, opts: &StoreOptions) -> Option<GuardedConnector> {
    if !opts.endpoints.is_checked() {
        return None;
    }
    let url = url::Url::parse(dest.endpoint.as_deref()?).ok()?;
    Some(GuardedConnector {
        policy: opts.endpoints.clone(),
        port: url.port_or_known_default()?,
        allow_http: allows_http(dest),
        connect_timeout: opts.connect_timeout,
        timeout: opts.request_timeout,
    })
}

fn build(
    dest: &Destination,
    opts: &StoreOptions,
    field: &str,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match dest.scheme {
        Scheme::S3 | Scheme::R2 => s3(dest, opts, field)?.build().map(|s| Arc::new(s) as _),
        Scheme::Gcs => gcs(dest, opts).build().map(|s| Arc::new(s) as _),
        Scheme::Azure => azure(dest, opts).build().map(|s| Arc::new(s) as _),
        Scheme::File => {
            return local(&local_dir(dest, opts, field)?, field);
        }
    };
    built.map_err(|e| {
        StoreError::invalid(
            field,
            format!("cannot configure a client for {dest}: {}", describe(&e)),
        )
    })
}

fn s3(dest: &Destination, opts: &StoreOptions, field: &str) -> Result<AmazonS3Builder, StoreError> {
    let mut b = match &dest.credentials {
        // R2 has no instance identity: its keys come from the request or the environment.
        CredentialSource::Chain if dest.scheme == Scheme::R2 => {
            let id = std::env::var("AWS_ACCESS_KEY_ID").ok();
            let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
            let (Some(id), Some(secret)) = (id, secret) else {
                return Err(StoreError::MissingCredentials {
                    field: field.to_owned(),
                    reason: format!(
                        "{dest} has no credentials: give access-key-id and secret-access-key \
                         (in the URL or through the API), or set AWS_ACCESS_KEY_ID and \
                         AWS_SECRET_ACCESS_KEY on the host that writes"
                    ),
                });
            };
            AmazonS3Builder::new()
                .with_access_key_id(id)
                .with_secret_access_key(secret)
        }
        CredentialSource::Chain => AmazonS3Builder::from_env(),
        CredentialSource::Explicit(Credentials::AccessKey {
            access_key_id,
            secret_access_key,
            session_token,
        }) => {
            let b = AmazonS3Builder::new()
                .with_access_key_id(access_key_id)
                .with_secret_access_key(secret_access_key.expose());
            match session_token {
                Some(t) => b.with_token(t.expose()),
                None => b,
            }
        }
        CredentialSource::Explicit(other) => {
            return Err(StoreError::invalid(
                field,
                format!("{} credentials do not fit {dest}", other.kind()),
            ));
        }
    };
    b = b
        .with_bucket_name(&dest.bucket)
        .with_retry(opts.retry())
        .with_client_options(client_options(dest, opts));
    let region = dest.region.as_deref().unwrap_or("us-east-1");
    b = b.with_region(region);
    let endpoint = match (dest.scheme, dest.account.as_deref()) {
        (Scheme::R2, Some(account)) => Some(format!("https://{account}.r2.cloudflarestorage.com")),
        _ => dest.endpoint.clone(),
    };
    if let Some(e) = endpoint {
        // S3-compatible stores name the bucket in the path; AWS itself picks its own style.
        b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
    }
    b = b.with_http_connector(crate::attempts::connector(
        guard(dest, opts).map(|g| Arc::new(g) as Arc<dyn object_store::client::HttpConnector>),
    ));
    Ok(b)
}

fn gcs(dest: &Destination, opts: &StoreOptions) -> GoogleCloudStorageBuilder {
    let mut b = match &dest.credentials {
        CredentialSource::Explicit(Credentials::GcsServiceAccount { key_json }) => {
            GoogleCloudStorageBuilder::new().with_service_account_key(key_json.expose())
        }
        _ => GoogleCloudStorageBuilder::from_env(),
    };
    b = b
        .with_bucket_name(&dest.bucket)
        .with_retry(opts.retry())
        .with_client_options(client_options(dest, opts));
    if let Some(e) = &dest.endpoint {
        b = b.with_base_url(e);
    }
    b = b.with_http_connector(crate::attempts::connector(
        guard(dest, opts).map(|g| Arc::new(g) as Arc<dyn object_store::client::HttpConnector>),
    ));
    b
}

fn azure(dest: &Destination, opts: &StoreOptions) -> MicrosoftAzureBuilder {
    let mut b = match &dest.credentials {
        CredentialSource::Explicit(Credentials::AzureAccessKey { key }) => {
            MicrosoftAzureBuilder::new().with_access_key(key.expose())
        }
        CredentialSource::Explicit(Credentials::AzureSas { token }) => {
            MicrosoftAzureBuilder::new().with_config(AzureConfigKey::SasKey, token.expose())
        }
        _ => MicrosoftAzureBuilder::from_env(),
    };
    b = b
        .with_container_name(&dest.bucket)
        .with_retry(opts.retry())
        .with_client_options(client_options(dest, opts));
    if let Some(a) = &dest.account {
        b = b.with_account(a);
    }
    if let Some(e) = &dest.endpoint {
        b = b.with_endpoint(e.clone());
    }
    b = b.with_http_connector(crate::attempts::connector(
        guard(dest, opts).map(|g| Arc::new(g) as Arc<dyn object_store::client::HttpConnector>),
    ));
    b
}

/// The directory of a `file://` destination with its symlinks resolved, after the policy's
/// roots (resolved the same way) were checked against it: a link inside a root cannot lead
/// outside it. Errors name `field`.
fn local_dir(dest: &Destination, opts: &StoreOptions, field: &str) -> Result<PathBuf, StoreError> {
    let dir = dest.dir.as_deref().unwrap_or(std::path::Path::new("/"));
    if !dir.is_dir() {
        return Err(StoreError::invalid(
            field,
            format!("{} is not a directory on this host", dir.display()),
        ));
    }
    let resolved = std::fs::canonicalize(dir)
        .map_err(|e| StoreError::invalid(field, format!("{}: {e}", dir.display())))?;
    if opts.endpoints.is_checked() {
        let files = opts.endpoints.file_roots();
        let roots: Vec<PathBuf> = files
            .roots()
            .iter()
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .collect();
        files.check_resolved(&resolved, &roots, dir, field)?;
    }
    Ok(resolved)
}

fn local(dir: &std::path::Path, field: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    LocalFileSystem::new_with_prefix(dir)
        .map(|s| Arc::new(s) as _)
        .map_err(|e| StoreError::invalid(field, format!("{}: {}", dir.display(), describe(&e))))
}
