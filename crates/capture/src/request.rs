//! The one builder of a [`CaptureSpec`]: `edgecap capture` and the agent's plan of an
//! assignment both describe what was asked as a [`Request`], and [`Request::build`] applies
//! the rules (`edgecap_filter::request`: filter composition, refusals per point, snaplen) and
//! the format, so a local and a fleet capture of the same input install the same rules.
//! Each caller then names a failing [`RequestField`] in its own words (`--dport`,
//! `filter_v1.destination_port`).

use edgecap_filter::request::{self as rules, ComposeError, PointRuleError, SnaplenError};
use edgecap_filter::{Boundary, BoundaryError, ExprError, FilterError, StructuredFilter};
use edgecap_netfilter::HookNum;
use edgecap_pcap::Format;

use crate::points::PointDef;
use crate::spec::{CaptureSpec, GroupChoice, Limits};

// The filter crate owns the bound; the netfilter crate clamps its socket config to its own.
const _: () = assert!(rules::MAX_SNAPLEN == edgecap_netfilter::nflog::MAX_SNAPLEN);

/// What a capture asks for, in terms every path shares. Points are resolved by the caller
/// (against this node's configuration and devices), since only it knows where they come from.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub id: String,
    pub node: String,
    /// The structured fields, validated (`--src` ..., or `filter_v1`).
    pub structured: &'a StructuredFilter,
    /// A tcpdump-style expression, ANDed with the fields.
    pub expression: Option<&'a str>,
    pub points: Vec<PointDef>,
    pub limits: Limits,
    /// Bytes kept of each packet; None: whole packets.
    pub snaplen: Option<u64>,
    /// Keep one matching packet in N; None or 1: every packet.
    pub sample_one_in: Option<u32>,
    /// `pcapng` or `pcap`, exactly.
    pub format: &'a str,
    /// The account's prefixes on a shared fleet: the filter is ANDed with "source or
    /// destination under one of them" ([`Boundary::apply`]). None: unrestricted.
    pub boundary: Option<&'a Boundary>,
}

/// Which part of a [`Request`] is at fault; callers map it to the flag or field users typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestField {
    /// One structured field (`source_port`, ...), as the filter crate names it.
    Structured(&'static str),
    /// The expression, or the expression with the fields (the rule limit, a point's refusal).
    Expression,
    Snaplen,
    Format,
    /// The account's prefixes (the filter can never match inside them, or too many rules).
    Boundary,
}

/// Why a [`Request`] cannot become a spec. The message does not repeat the field's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Structured(FilterError),
    #[error(transparent)]
    Expression(ExprError),
    #[error(transparent)]
    Point(#[from] PointRuleError),
    #[error(transparent)]
    Snaplen(#[from] SnaplenError),
    #[error("unknown format {0:?} (use pcapng or pcap)")]
    Format(String),
    #[error(transparent)]
    Boundary(#[from] BoundaryError),
}

impl RequestError {
    pub fn field(&self) -> RequestField {
        match self {
            RequestError::Structured(e) => RequestField::Structured(e.field()),
            RequestError::Expression(_) | RequestError::Point(_) => RequestField::Expression,
            RequestError::Snaplen(_) => RequestField::Snaplen,
            RequestError::Format(_) => RequestField::Format,
            RequestError::Boundary(_) => RequestField::Boundary,
        }
    }
}

impl From<ComposeError> for RequestError {
    fn from(e: ComposeError) -> Self {
        match e {
            ComposeError::Structured(e) => RequestError::Structured(e),
            ComposeError::Expression(e) => RequestError::Expression(e),
        }
    }
}

impl Request<'_> {
    /// The engine's spec, with an automatic NFLOG group, the default socket buffer and no
    /// per-batch flush; callers with flags for those set them on the result.
    pub fn build(self) -> Result<CaptureSpec, RequestError> {
        let mut composed = rules::compose(self.structured, self.expression)?;
        if let Some(boundary) = self.boundary {
            composed.rules = boundary.apply(&composed.rules)?;
            composed.text = format!("({}) and account prefixes ({boundary})", composed.text);
        }
        rules::check_points(&composed.rules, at_ingress(&self.points))?;
        let snaplen = rules::snaplen(self.snaplen)?;
        let format = Format::from_name(self.format)
            .ok_or_else(|| RequestError::Format(self.format.into()))?;
        Ok(CaptureSpec {
            id: self.id,
            node: self.node,
            filter: composed.rules,
            filter_text: composed.text,
            points: self.points,
            limits: self.limits,
            snaplen,
            sample_one_in: self.sample_one_in.filter(|n| *n > 1),
            group: GroupChoice::Auto,
            format,
            socket_buffer: None,
            live_output: false,
            sink_buffers: false,
            prelude: None,
            tap: None,
        })
    }
}

/// True when some point hooks at netdev ingress (the built-in `ingress`, or a configured one).
fn at_ingress(points: &[PointDef]) -> bool {
    points
        .iter()
        .any(|p| p.hooks.iter().any(|h| h.hook == HookNum::Ingress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn points(names: &[&str]) -> Vec<PointDef> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        crate::points::resolve(&names, &Config::default(), &["eth0".into()]).unwrap()
    }

    fn request<'a>(structured: &'a StructuredFilter, expression: Option<&'a str>) -> Request<'a> {
        Request {
            id: "1".into(),
            node: "edge0".into(),
            structured,
            expression,
            points: points(&["pre-firewall"]),
            limits: Limits::default(),
            snaplen: None,
            sample_one_in: None,
            format: "pcapng",
            boundary: None,
        }
    }

    #[test]
    fn a_request_becomes_the_spec() {
        let none = StructuredFilter::default();
        let mut r = request(&none, Some("udp port 53"));
        r.snaplen = Some(128);
        r.sample_one_in = Some(4);
        r.format = "pcap";
        let s = r.build().unwrap();
        assert_eq!(s.filter_text, "udp port 53");
        assert_eq!(s.snaplen, 128);
        assert_eq!(s.sample_one_in, Some(4));
        assert_eq!(s.format, Format::Pcap);
        assert_eq!(s.group, GroupChoice::Auto);
        let s = request(&none, None).build().unwrap();
        assert_eq!(s.snaplen, 65_531, "the default applies as documented");
        let mut one = request(&none, None);
        one.sample_one_in = Some(1);
        assert_eq!(one.build().unwrap().sample_one_in, None);
    }

    #[test]
    fn each_refusal_names_its_part() {
        let none = StructuredFilter::default();
        let field = |r: Request| r.build().unwrap_err().field();
        let mut r = request(&none, Some("udp and greater 100"));
        r.points = points(&["ingress"]);
        assert_eq!(field(r.clone()), RequestField::Expression);
        assert!(
            r.build()
                .unwrap_err()
                .to_string()
                .contains("not exact at the ingress point")
        );
        assert_eq!(
            field(request(&none, Some("tcp and"))),
            RequestField::Expression
        );
        let mut r = request(&none, None);
        r.snaplen = Some(65_532);
        assert_eq!(field(r), RequestField::Snaplen);
        let mut r = request(&none, None);
        r.format = "PCAP";
        assert_eq!(field(r), RequestField::Format);
        // Past the rule limit only when compiled (20 x 20 port pairs).
        let ports: Vec<_> = (1..=20).map(edgecap_filter::PortRange::single).collect();
        let wide = StructuredFilter {
            source_port: ports.clone(),
            destination_port: ports,
            protocol: vec![edgecap_filter::Protocol(6)],
            ..StructuredFilter::default()
        };
        assert_eq!(
            field(request(&wide, None)),
            RequestField::Structured("source_port")
        );
    }
}
