//! UPnP IGD (Internet Gateway Device) port mapping, sans-IO: the SSDP
//! M-SEARCH request and its answer, the device description's WAN
//! connection service, and the three SOAP actions Moss uses
//! (`GetExternalIPAddress`, `AddPortMapping`, `DeletePortMapping`) with
//! their HTTP framing. Parsing is strict and bounded: a gateway answer
//! longer than [`MAX_HTTP`] or [`MAX_SSDP`] bytes is refused, URLs must be
//! `http://` with an IPv4 literal host, and nothing is interpreted beyond
//! the elements named here.

use std::net::{Ipv4Addr, SocketAddrV4};

/// The SSDP multicast group and port.
pub const SSDP_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
/// Largest SSDP answer accepted.
pub const MAX_SSDP: usize = 2048;
/// Largest HTTP response (description or SOAP) accepted.
pub const MAX_HTTP: usize = 64 * 1024;
/// Longest URL path kept.
const MAX_PATH: usize = 512;
/// The device type searched for.
pub const IGD_DEVICE: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/// WAN connection services that carry the port-mapping actions, preferred first.
pub const WAN_SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/// Why a gateway answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpnpError {
    /// Larger than the bound for its kind.
    #[error("answer of {0} bytes is too long")]
    TooLong(usize),
    /// Not UTF-8 text.
    #[error("answer is not UTF-8")]
    NotText,
    /// No status line, or not `HTTP/1.x NNN`.
    #[error("malformed HTTP status line")]
    BadStatusLine,
    /// The header block does not end (no blank line).
    #[error("HTTP headers do not end")]
    HeadersUnterminated,
    /// An SSDP answer with a status other than 200.
    #[error("SSDP status {0}")]
    SsdpStatus(u16),
    /// A required header is missing.
    #[error("header {0} missing")]
    MissingHeader(&'static str),
    /// A URL that is not `http://a.b.c.d[:port]/path`.
    #[error("unsupported URL {0:?}")]
    BadUrl(String),
    /// A body shorter than its Content-Length, or a Content-Length that is not a number.
    #[error("body does not match Content-Length")]
    BadLength,
    /// Chunked transfer coding (not spoken here).
    #[error("chunked transfer coding")]
    Chunked,
    /// The description names none of [`WAN_SERVICES`] with a control URL.
    #[error("no WAN connection service in the description")]
    NoWanService,
    /// A SOAP fault: the UPnP error code (or 0 when none was given) and the HTTP status.
    #[error("SOAP fault {code} (HTTP {status})")]
    Fault {
        /// The `errorCode` element (0 when absent).
        code: u16,
        /// The HTTP status.
        status: u16,
    },
    /// A success response without the expected element, or with a bad value.
    #[error("SOAP response lacks a valid {0}")]
    BadResponse(&'static str),
}

/// An `http://` location on an IPv4 host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Host and port (80 when not given).
    pub addr: SocketAddrV4,
    /// The path, starting with `/`.
    pub path: String,
}

/// Parses `http://a.b.c.d[:port][/path]` (nothing else).
pub fn parse_url(url: &str) -> Result<Location, UpnpError> {
    let bad = || UpnpError::BadUrl(url.chars().take(80).collect());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (ip, port) = match host.split_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (host, 80),
    };
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    if port == 0 || path.len() > MAX_PATH || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Location {
        addr: SocketAddrV4::new(ip, port),
        path: path.to_string(),
    })
}

/// The M-SEARCH request for an Internet Gateway Device (send to [`SSDP_ADDR`]
/// or the gateway's port 1900).
pub fn search_request() -> Vec<u8> {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: {IGD_DEVICE}\r\n\r\n"
    )
    .into_bytes()
}

/// A parsed HTTP response head and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (by Content-Length, else everything after the head).
    pub body: String,
}

impl HttpResponse {
    /// The first header of this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a complete HTTP/1.x response of at most `max` bytes (the peer
/// closed the connection, or it is one SSDP datagram).
pub fn parse_http(d: &[u8], max: usize) -> Result<HttpResponse, UpnpError> {
    if d.len() > max {
        return Err(UpnpError::TooLong(d.len()));
    }
    let text = std::str::from_utf8(d).map_err(|_| UpnpError::NotText)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(UpnpError::HeadersUnterminated)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(UpnpError::BadStatusLine)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !(version == "HTTP/1.1" || version == "HTTP/1.0") || code.len() != 3 {
        return Err(UpnpError::BadStatusLine);
    }
    let status: u16 = code.parse().map_err(|_| UpnpError::BadStatusLine)?;
    let mut headers = Vec::new();
    for line in lines {
        // A header line without a colon is malformed; it is skipped, not fatal.
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut r = HttpResponse {
        status,
        headers,
        body: String::new(),
    };
    if r.header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        return Err(UpnpError::Chunked);
    }
    r.body = match r.header("content-length") {
        Some(v) => {
            let n: usize = v.parse().map_err(|_| UpnpError::BadLength)?;
            body.get(..n).ok_or(UpnpError::BadLength)?.to_string()
        }
        None => body.to_string(),
    };
    Ok(r)
}

/// An SSDP answer to [`search_request`]: the device description's location.
pub fn parse_search_response(d: &[u8]) -> Result<Location, UpnpError> {
    let r = parse_http(d, MAX_SSDP)?;
    if r.status != 200 {
        return Err(UpnpError::SsdpStatus(r.status));
    }
    parse_url(
        r.header("location")
            .ok_or(UpnpError::MissingHeader("LOCATION"))?,
    )
}

/// The WAN connection service that takes the port-mapping actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// Its service type (one of [`WAN_SERVICES`]).
    pub service: &'static str,
    /// Where its SOAP actions go.
    pub url: Location,
}

/// The text of the first `<tag>…</tag>` (any namespace prefix, any
/// attributes; empty for `<tag/>`) in `s`, and the rest after it.
fn element<'a>(s: &'a str, tag: &str) -> Option<(&'a str, &'a str)> {
    let mut from = 0;
    while let Some(i) = s[from..].find('<') {
        let start = from + i + 1;
        let end = start + s[start..].find('>')?;
        let inner = &s[start..end];
        from = end + 1;
        let name = inner
            .split(|c: char| c.is_ascii_whitespace())
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        if name.starts_with(['/', '?', '!']) || name.rsplit(':').next() != Some(tag) {
            continue;
        }
        if inner.ends_with('/') {
            return Some(("", &s[from..]));
        }
        let close = format!("</{name}>");
        let len = s[from..].find(&close)?;
        return Some((s[from..from + len].trim(), &s[from + len + close.len()..]));
    }
    None
}

/// Finds the preferred WAN connection service in a device description
/// fetched from `base`. A relative control URL is resolved against `base`;
/// an absolute one must name `base`'s host (a description cannot send our
/// requests to a third party).
pub fn parse_description(body: &str, base: &Location) -> Result<Control, UpnpError> {
    let mut found: Option<(usize, Control)> = None;
    let mut rest = body;
    while let Some((service, after)) = element(rest, "service") {
        rest = after;
        let Some((ty, _)) = element(service, "serviceType") else {
            continue;
        };
        let Some(rank) = WAN_SERVICES.iter().position(|s| *s == ty) else {
            continue;
        };
        let Some((ctl, _)) = element(service, "controlURL") else {
            continue;
        };
        let url = if ctl.starts_with('/') {
            parse_url(&format!("http://{}{}", base.addr, ctl))?
        } else {
            let u = parse_url(ctl)?;
            if u.addr.ip() != base.addr.ip() {
                return Err(UpnpError::BadUrl(ctl.chars().take(80).collect()));
            }
            u
        };
        if found.as_ref().is_none_or(|(r, _)| rank < *r) {
            found = Some((
                rank,
                Control {
                    service: WAN_SERVICES[rank],
                    url,
                },
            ));
        }
    }
    found.map(|f| f.1).ok_or(UpnpError::NoWanService)
}

/// The GET request for a description at `loc`.
pub fn get_request(loc: &Location) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: moss\r\n\r\n",
        loc.path, loc.addr
    )
    .into_bytes()
}

/// A SOAP action on the WAN connection service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask for the external IPv4 address.
    GetExternalIp,
    /// Map UDP `external_port` to `client:internal_port` for `lease` seconds
    /// (0: the gateway's longest).
    AddUdp {
        /// The external port asked for.
        external_port: u16,
        /// Our local port.
        internal_port: u16,
        /// Our LAN address (the gateway checks it is the requester's).
        client: Ipv4Addr,
        /// Lease in seconds.
        lease: u32,
    },
    /// Remove the UDP mapping of `external_port`.
    DeleteUdp {
        /// The mapped external port.
        external_port: u16,
    },
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::GetExternalIp => "GetExternalIPAddress",
            Action::AddUdp { .. } => "AddPortMapping",
            Action::DeleteUdp { .. } => "DeletePortMapping",
        }
    }

    fn args(&self) -> String {
        match self {
            Action::GetExternalIp => String::new(),
            Action::AddUdp {
                external_port,
                internal_port,
                client,
                lease,
            } => format!(
                "<NewRemoteHost></NewRemoteHost><NewExternalPort>{external_port}</NewExternalPort>\
                 <NewProtocol>UDP</NewProtocol><NewInternalPort>{internal_port}</NewInternalPort>\
                 <NewInternalClient>{client}</NewInternalClient><NewEnabled>1</NewEnabled>\
                 <NewPortMappingDescription>moss</NewPortMappingDescription>\
                 <NewLeaseDuration>{lease}</NewLeaseDuration>"
            ),
            Action::DeleteUdp { external_port } => format!(
                "<NewRemoteHost></NewRemoteHost><NewExternalPort>{external_port}</NewExternalPort>\
                 <NewProtocol>UDP</NewProtocol>"
            ),
        }
    }

    /// The HTTP POST carrying this action to `ctl`.
    pub fn request(&self, ctl: &Control) -> Vec<u8> {
        let name = self.name();
        let body = format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
             <u:{name} xmlns:u=\"{svc}\">{args}</u:{name}></s:Body></s:Envelope>\r\n",
            svc = ctl.service,
            args = self.args()
        );
        format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
             SOAPAction: \"{svc}#{name}\"\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
            path = ctl.url.path,
            host = ctl.url.addr,
            svc = ctl.service,
            len = body.len()
        )
        .into_bytes()
    }

    /// Reads the gateway's HTTP response to this action: the external
    /// address for [`Action::GetExternalIp`], `None` for the others.
    pub fn parse_reply(&self, d: &[u8]) -> Result<Option<Ipv4Addr>, UpnpError> {
        let r = parse_http(d, MAX_HTTP)?;
        if r.status != 200 {
            let code = element(&r.body, "errorCode")
                .and_then(|(c, _)| c.parse().ok())
                .unwrap_or(0);
            return Err(UpnpError::Fault {
                code,
                status: r.status,
            });
        }
        let response = format!("{}Response", self.name());
        let (inner, _) = element(&r.body, &response).ok_or(UpnpError::BadResponse("response"))?;
        match self {
            Action::GetExternalIp => {
                let (ip, _) = element(inner, "NewExternalIPAddress")
                    .ok_or(UpnpError::BadResponse("NewExternalIPAddress"))?;
                ip.parse()
                    .map(Some)
                    .map_err(|_| UpnpError::BadResponse("NewExternalIPAddress"))
            }
            _ => Ok(None),
        }
    }
}
