//! Parsing of tracker announce URLs (`udp://host:port/announce`, `http://host[:port]/path`).

use std::fmt;

/// The transport a tracker URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackerKind {
    /// BEP 15 UDP tracker.
    Udp,
    /// BEP 3 HTTP tracker (plain HTTP only).
    Http,
}

/// A parsed tracker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerUrl {
    /// UDP or HTTP.
    pub kind: TrackerKind,
    /// Host name or IP literal (IPv6 literals without brackets).
    pub host: String,
    /// Port (explicit, or 80 for `http://` without one).
    pub port: u16,
    /// Path and query, starting with `/` (`/` when the URL has none).
    pub path_and_query: String,
}

/// Why a tracker URL was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerUrlError {
    /// The URL has no `scheme://` part.
    #[error("missing scheme")]
    MissingScheme,
    /// `https://` trackers need TLS, which this crate does not implement.
    #[error("https trackers are not supported (no TLS)")]
    HttpsUnsupported,
    /// A scheme other than `udp`, `http` or `https`.
    #[error("unsupported scheme {0:?}")]
    UnsupportedScheme(String),
    /// The host part is empty or malformed.
    #[error("invalid host")]
    InvalidHost,
    /// The port is missing (UDP needs one), not a number, or 0.
    #[error("invalid or missing port")]
    InvalidPort,
    /// User info (`user@host`) is not accepted in tracker URLs.
    #[error("credentials in tracker urls are not accepted")]
    UserInfo,
}

impl TrackerUrl {
    /// Parses a tracker URL. Schemes are case-insensitive.
    pub fn parse(url: &str) -> Result<Self, TrackerUrlError> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or(TrackerUrlError::MissingScheme)?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "udp" => TrackerKind::Udp,
            "http" => TrackerKind::Http,
            "https" => return Err(TrackerUrlError::HttpsUnsupported),
            other => return Err(TrackerUrlError::UnsupportedScheme(other.to_string())),
        };
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(TrackerUrlError::UserInfo);
        }
        let (host, port) = split_host_port(authority)?;
        let port = match (port, kind) {
            (Some(p), _) => p,
            (None, TrackerKind::Http) => 80,
            (None, TrackerKind::Udp) => return Err(TrackerUrlError::InvalidPort),
        };
        let path_and_query = if path_and_query.is_empty() {
            "/".to_string()
        } else if path_and_query.starts_with('?') {
            format!("/{path_and_query}")
        } else {
            path_and_query.to_string()
        };
        Ok(Self {
            kind,
            host,
            port,
            path_and_query,
        })
    }

    /// `host:port` suitable for [`std::net::ToSocketAddrs`] (IPv6 literals bracketed).
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for TrackerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            TrackerKind::Udp => "udp",
            TrackerKind::Http => "http",
        };
        write!(f, "{scheme}://{}{}", self.host_port(), self.path_and_query)
    }
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), TrackerUrlError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(TrackerUrlError::InvalidHost)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(TrackerUrlError::InvalidHost);
        }
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or(TrackerUrlError::InvalidHost)?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
    {
        return Err(TrackerUrlError::InvalidHost);
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(TrackerUrlError::InvalidPort),
            Ok(p) => Some(p),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_udp_and_http() {
        let u = TrackerUrl::parse("udp://tracker.opentrackr.org:1337/announce").unwrap();
        assert_eq!(u.kind, TrackerKind::Udp);
        assert_eq!(u.host, "tracker.opentrackr.org");
        assert_eq!(u.port, 1337);
        assert_eq!(u.path_and_query, "/announce");
        let h = TrackerUrl::parse("HTTP://127.0.0.1/announce?x=1").unwrap();
        assert_eq!(h.kind, TrackerKind::Http);
        assert_eq!(h.port, 80);
        assert_eq!(h.path_and_query, "/announce?x=1");
        let v6 = TrackerUrl::parse("udp://[::1]:6969").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.host_port(), "[::1]:6969");
        assert_eq!(v6.to_string(), "udp://[::1]:6969/");
    }

    #[test]
    fn rejects_bad_urls() {
        use TrackerUrlError::*;
        assert_eq!(TrackerUrl::parse("tracker:1"), Err(MissingScheme));
        assert_eq!(TrackerUrl::parse("https://a:1/x"), Err(HttpsUnsupported));
        assert_eq!(
            TrackerUrl::parse("wss://a:1"),
            Err(UnsupportedScheme("wss".into()))
        );
        assert_eq!(TrackerUrl::parse("udp://a/announce"), Err(InvalidPort));
        assert_eq!(TrackerUrl::parse("udp://a:0/announce"), Err(InvalidPort));
        assert_eq!(TrackerUrl::parse("udp://a:70000"), Err(InvalidPort));
        assert_eq!(TrackerUrl::parse("udp://:80"), Err(InvalidHost));
        assert_eq!(TrackerUrl::parse("udp://[zz]:80"), Err(InvalidHost));
        assert_eq!(TrackerUrl::parse("http://u:p@h:80/"), Err(UserInfo));
        assert_eq!(TrackerUrl::parse("http://a b:80/"), Err(InvalidHost));
    }
}
