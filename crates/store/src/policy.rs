//! Where a user-supplied `endpoint=` may point: the one rule the server (ownership challenges,
//! merges) and the agents (uploads, manifests) apply before any request to a
//! `destination_conf`'s endpoint, and again, at connect time, to the addresses a host name
//! resolves to (the guarded client in `store.rs` calls [`EndpointPolicy::check_addresses`]).
//! Pure: no I/O.
//!
//! With [`EndpointPolicy::default`] (the server's and the agents'):
//! - the endpoint must be `https`; plain `http` only for a host the operator allows
//!   (`--allow-endpoint HOST[:PORT]`);
//! - its address, written or resolved, must be a public unicast address: loopback,
//!   unspecified, link-local, private (RFC 1918, unique-local), shared (100.64/10),
//!   multicast, documentation, benchmarking and other reserved ranges are refused unless the
//!   operator allows that host; IPv4 written inside IPv6 (`::ffff:a.b.c.d`, NAT64, 6to4) is
//!   judged as the IPv4 address;
//! - cloud metadata addresses and names (169.254.169.254, fd00:ec2::254,
//!   metadata.google.internal, ...) are refused always: no object store lives there;
//! - the credentials must come with the request: a custom endpoint never receives the
//!   credentials of the host that writes (environment, instance metadata, files).
//!
//! [`EndpointPolicy::operator`] checks nothing: for URLs the operator typed on their own
//! command line (`edgecap merge`, benchmarks, tests of the store itself).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::credentials::CredentialSource;
use crate::destination::{Destination, shorten};
use crate::error::StoreError;

mod roots;
pub use roots::FileRoots;

/// Cloud instance-metadata services: never an object store, refused even when allowed.
const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task credentials
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS pod identity
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (legacy)
];
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), // AWS (IPv6 IMDS)
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),  // AWS EKS pod identity
];
const METADATA_NAMES: [&str; 6] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
];

/// Why an address may not be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Metadata,
    Unspecified,
    Loopback,
    LinkLocal,
    Private,
    Shared,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    Reserved,
}

impl Refusal {
    /// Whether `--allow-endpoint` can lift it (everything but metadata).
    pub fn allowable(self) -> bool {
        self != Refusal::Metadata
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Metadata => "a cloud metadata address",
            Refusal::Unspecified => "an unspecified address",
            Refusal::Loopback => "a loopback address",
            Refusal::LinkLocal => "a link-local address",
            Refusal::Private => "a private address",
            Refusal::Shared => "a shared (carrier-grade NAT) address",
            Refusal::Multicast => "a multicast address",
            Refusal::Broadcast => "the broadcast address",
            Refusal::Documentation => "a documentation address",
            Refusal::Benchmarking => "a benchmarking address",
            Refusal::Reserved => "a reserved address",
        })
    }
}

/// Why `ip` may not be dialled without the operator's leave, or `None` for a public unicast
/// address.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<Refusal> {
    if METADATA_V4.contains(&ip) {
        return Some(Refusal::Metadata);
    }
    Some(match ip.octets() {
        [0, ..] => Refusal::Unspecified,
        [127, ..] => Refusal::Loopback,
        [169, 254, ..] => Refusal::LinkLocal,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Refusal::Private,
        [100, 64..=127, ..] => Refusal::Shared,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Refusal::Documentation,
        [198, 18..=19, ..] => Refusal::Benchmarking,
        [224..=239, ..] => Refusal::Multicast,
        [255, 255, 255, 255] => Refusal::Broadcast,
        // IETF protocol assignments, 6to4 relay anycast, 240/4.
        [192, 0, 0, _] | [192, 88, 99, _] | [240..=255, ..] => Refusal::Reserved,
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<Refusal> {
    if METADATA_V6.contains(&ip) {
        return Some(Refusal::Metadata);
    }
    if ip.is_unspecified() {
        return Some(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Refusal::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        x if x & 0xffc0 == 0xfe80 => Refusal::LinkLocal,
        // Unique-local fc00::/7 and the deprecated site-local fec0::/10.
        x if x & 0xfe00 == 0xfc00 || x & 0xffc0 == 0xfec0 => Refusal::Private,
        x if x & 0xff00 == 0xff00 => Refusal::Multicast,
        0x2001 if s[1] == 0x0db8 => Refusal::Documentation,
        0x3fff if s[1] & 0xf000 == 0 => Refusal::Documentation,
        0x2001 if s[1] == 0x0002 && s[2] == 0 => Refusal::Benchmarking,
        // Teredo (2001::/32) hides an IPv4 address; other 2001:0::/23 are special-purpose.
        0x2001 if s[1] < 0x0200 => Refusal::Reserved,
        // Discard-only 100::/64, the local-use NAT64 prefix 64:ff9b:1::/48.
        0x0100 if s[1..4] == [0, 0, 0] => Refusal::Reserved,
        0x0064 if s[1] == 0xff9b && s[2] == 1 => Refusal::Private,
        // Anything else outside global unicast 2000::/3 is reserved.
        x if x & 0xe000 != 0x2000 => Refusal::Reserved,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address carries and is delivered to: mapped (`::ffff:a.b.c.d`),
/// translated (`::ffff:0:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and
/// 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0xffff, 0, ..] | [0, 0, 0, 0, 0, 0, ..] => {
            Some(low)
        }
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// A host as written in an endpoint or an allowlist entry: an address, or a lower-case name
/// without trailing dots.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    fn name(n: &str) -> Host {
        Host::Name(n.trim_end_matches('.').to_ascii_lowercase())
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// One `--allow-endpoint HOST[:PORT]` entry: plain `http` and non-public addresses are
/// allowed for this host (on this port, if one is given). A name allows what it resolves
/// to; an address allows itself, written or resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedEndpoint {
    host: Host,
    port: Option<u16>,
}

impl AllowedEndpoint {
    /// Parses `HOST[:PORT]` (`[v6]:PORT` for an IPv6 address with a port); `flag` names the
    /// flag in errors.
    pub fn parse(s: &str, flag: &str) -> Result<AllowedEndpoint, StoreError> {
        let s = s.trim();
        let bad = |why: &str| {
            StoreError::invalid(
                flag,
                format!(
                    "{:?} {why}; expected HOST[:PORT], e.g. minio.internal:9000, 10.0.0.5 or [fd00::5]:9000",
                    shorten(s)
                ),
            )
        };
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        if s.contains("://") || s.contains(['/', '@', '?', '#']) {
            return Err(bad("is not a host"));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or_else(|| bad("has no ']'"))?;
            let ip: Ipv6Addr = v6.parse().map_err(|_| bad("is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("has text after ']'"))?,
                ),
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else if let Ok(ip) = s.parse::<IpAddr>() {
            (Host::Ip(ip), None)
        } else {
            let (h, p) = match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            };
            if h.contains(':') {
                return Err(bad(
                    "is not a host (write an IPv6 address with a port as [v6]:PORT)",
                ));
            }
            let host = match h.parse::<Ipv4Addr>() {
                Ok(v4) => Host::Ip(IpAddr::V4(v4)),
                Err(_) => {
                    let name = h.trim_end_matches('.');
                    let ok = (1..=253).contains(&name.len())
                        && name.split('.').all(|l| {
                            (1..=63).contains(&l.len())
                                && l.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        });
                    if !ok {
                        return Err(bad("is not a host name or address"));
                    }
                    Host::name(name)
                }
            };
            (host, p)
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad("has no valid port (1-65535) after ':'")),
            },
        };
        if let Host::Ip(ip) = &host
            && refusal(*ip) == Some(Refusal::Metadata)
        {
            return Err(StoreError::invalid(
                flag,
                format!("{ip} is a cloud metadata address, which is never allowed"),
            ));
        }
        if let Host::Name(n) = &host
            && METADATA_NAMES.contains(&n.as_str())
        {
            return Err(StoreError::invalid(
                flag,
                format!("{n} is a cloud metadata name, which is never allowed"),
            ));
        }
        Ok(AllowedEndpoint { host, port })
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

impl fmt::Display for AllowedEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (h, Some(p)) => write!(f, "{h}:{p}"),
            (Host::Ip(ip), None) => write!(f, "{ip}"),
            (h, None) => write!(f, "{h}"),
        }
    }
}

/// The endpoint rule a process applies to the destinations it is handed (see the module).
/// `Default` is the strict rule with nothing allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPolicy {
    checked: bool,
    allow: Vec<AllowedEndpoint>,
    /// Where a `file://` destination may write ([`FileRoots`]).
    files: FileRoots,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        EndpointPolicy::strict(Vec::new())
    }
}

/// Where a checked destination connects, for the check of resolved addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// The host name, lower-case, without trailing dots.
    pub host: String,
    pub port: u16,
}

impl Dial {
    /// `host` (as a resolver is asked for it) on `port`.
    pub fn new(host: &str, port: u16) -> Dial {
        Dial {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port,
        }
    }
}

impl EndpointPolicy {
    /// The rule for destinations users send (server, agents), with the operator's allowlist.
    pub fn strict(allow: Vec<AllowedEndpoint>) -> EndpointPolicy {
        EndpointPolicy {
            checked: true,
            allow,
            files: FileRoots::default(),
        }
    }

    /// The strict rule with the allowlist of repeated (or comma-separated) `HOST[:PORT]`
    /// values of `flag`.
    pub fn from_flags(values: &[String], flag: &str) -> Result<EndpointPolicy, StoreError> {
        let allow = values
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|v| !v.trim().is_empty())
            .map(|v| AllowedEndpoint::parse(v, flag))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EndpointPolicy::strict(allow))
    }

    /// No checks: for URLs the operator typed themselves (`edgecap merge`, benchmarks, the
    /// store's own tests). Never for a destination that came through the API.
    pub fn operator() -> EndpointPolicy {
        EndpointPolicy {
            checked: false,
            allow: Vec::new(),
            files: FileRoots::default(),
        }
    }

    /// This policy with `roots` as the directories `file://` destinations may name.
    pub fn with_file_roots(mut self, roots: FileRoots) -> EndpointPolicy {
        self.files = roots;
        self
    }

    /// The directories `file://` destinations may name (when checked).
    pub fn file_roots(&self) -> &FileRoots {
        &self.files
    }

    /// Whether destinations are checked at all.
    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// The operator's allowlist.
    pub fn allowed(&self) -> &[AllowedEndpoint] {
        &self.allow
    }

    fn allows(&self, host: &Host, port: u16) -> bool {
        let canon = |h: &Host| match h {
            Host::Ip(ip) => Host::Ip(ip.to_canonical()),
            n => n.clone(),
        };
        let host = canon(host);
        self.allow
            .iter()
            .any(|a| a.port_matches(port) && canon(&a.host) == host)
    }

    /// Checks `dest` before any request: its endpoint (if any, [`Self::check_endpoint`]) and
    /// where its credentials come from (with a custom endpoint, with the request). Returns the
    /// host name to check again when it resolves. Errors name `field`.
    pub fn check(&self, dest: &Destination, field: &str) -> Result<Option<Dial>, StoreError> {
        let dial = self.check_endpoint(dest, field)?;
        if self.checked
            && let Some(endpoint) = dest.endpoint.as_deref()
            && dest.credentials == CredentialSource::Chain
        {
            return Err(StoreError::MissingCredentials {
                field: field.to_owned(),
                reason: format!(
                    "endpoint {:?} needs credentials with the request (access-key-id and \
                     secret-access-key in the URL, or `credentials` when the bucket is added): \
                     the credentials of the server and of the nodes are never sent to a \
                     user-supplied endpoint",
                    shorten(endpoint)
                ),
            });
        }
        Ok(dial)
    }

    /// Checks `dest`'s endpoint alone (scheme and written address), whatever its credentials.
    /// Returns the host name to check again when it resolves (`None`: an address, an allowed
    /// host, no custom endpoint, or an unchecked policy). Errors name `field`.
    pub fn check_endpoint(
        &self,
        dest: &Destination,
        field: &str,
    ) -> Result<Option<Dial>, StoreError> {
        if !self.checked {
            return Ok(None);
        }
        if dest.scheme == crate::Scheme::File {
            let dir = dest.dir.as_deref().unwrap_or(std::path::Path::new("/"));
            self.files.check(dir, field)?;
            return Ok(None);
        }
        let Some(endpoint) = dest.endpoint.as_deref() else {
            return Ok(None);
        };
        let refused = |why: String| {
            StoreError::invalid(
                field,
                format!("endpoint {:?} is refused: {why}", shorten(endpoint)),
            )
        };
        let url =
            url::Url::parse(endpoint).map_err(|e| refused(format!("it is not a URL ({e})")))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| refused("it has no port".into()))?;
        let host = match url.host() {
            Some(url::Host::Ipv4(v4)) => Host::Ip(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Host::Ip(IpAddr::V6(v6)),
            Some(url::Host::Domain(d)) => Host::name(d),
            None => return Err(refused("it names no host".into())),
        };
        let allowed = self.allows(&host, port);
        let hint = |host: &Host| {
            format!(
                "the operator may allow it with --allow-endpoint {host}:{port} on the server \
                 and the agents"
            )
        };
        match &host {
            Host::Ip(ip) => {
                if let Some(r) = refusal(*ip) {
                    if !r.allowable() {
                        return Err(refused(format!("{ip} is {r}, never allowed")));
                    }
                    if !allowed {
                        return Err(refused(format!(
                            "{ip} is {r}; user-supplied endpoints must be public ({})",
                            hint(&host)
                        )));
                    }
                }
            }
            Host::Name(n) if METADATA_NAMES.contains(&n.as_str()) => {
                return Err(refused(format!(
                    "{n} is a cloud metadata name, never allowed"
                )));
            }
            Host::Name(_) => {}
        }
        if url.scheme() != "https" && !allowed {
            return Err(refused(format!(
                "user-supplied endpoints must use https, not {} ({})",
                url.scheme(),
                hint(&host)
            )));
        }
        Ok(match host {
            Host::Name(host) if !allowed => Some(Dial { host, port }),
            _ => None,
        })
    }

    /// Checks what `dial`'s host resolved to, when a connection is made: every address must
    /// be public (or allowed); a metadata address never passes. The error is the reason.
    pub fn check_addresses(&self, dial: &Dial, addrs: &[IpAddr]) -> Result<(), String> {
        if !self.checked || self.allows(&Host::name(&dial.host), dial.port) {
            return Ok(());
        }
        if addrs.is_empty() {
            return Err(format!(
                "endpoint host {} resolves to no address",
                dial.host
            ));
        }
        for ip in addrs {
            let Some(r) = refusal(*ip) else { continue };
            if r.allowable() && self.allows(&Host::Ip(*ip), dial.port) {
                continue;
            }
            let tail = if r.allowable() {
                "; user-supplied endpoints must resolve to public addresses only"
            } else {
                ", never allowed"
            };
            return Err(format!(
                "endpoint host {} resolves to {ip}, {r}{tail}",
                dial.host
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
