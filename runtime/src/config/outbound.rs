//! A plugin's outbound HTTP: the hosts it may reach
//! (`allowed_outbound_hosts`, Spin's syntax) and the bounds of each request
//! (`[plugins.<name>.outbound]`); their parsing and checks.
//!
//! An entry is `scheme://host[:port]`:
//! - `scheme` is `http`, `https` or `*`;
//! - `host` is a name (`api.example.com`), an IP address (`127.0.0.1`,
//!   `[::1]`), `*.suffix` (any name below `suffix`, not `suffix` itself)
//!   or `*` (any host);
//! - `port` is a number or `*`; without one, the scheme's default (80 or
//!   443; `*://` without a port allows both defaults).
//!
//! Layer: config, the bottom. It uses nothing of the crate.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

/// `[plugins.<name>.outbound]`: bounds of each outgoing request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Time to open a connection (TCP and TLS).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time from sending the request to the response's head.
    #[serde(with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Time for the whole exchange, the response body included (the
    /// plugin's own deadline still applies).
    #[serde(with = "humantime_serde")]
    pub total_timeout: Duration,
    /// Requests one plugin has in flight at once, on this node.
    pub max_concurrent: usize,
    /// The largest response body; a longer one breaks off with an error.
    pub max_response_body: ByteSize,
    /// CA certificates (PEM) trusted for `https://` besides the system's
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// How long an idle pooled connection is kept for the next request;
    /// `0s`: no pooling, a fresh connection per request (for an upstream
    /// that mishandles keep-alive).
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_concurrent: 64,
            max_response_body: ByteSize::mib(16),
            ca_file: None,
            pool_idle_timeout: Duration::from_secs(90),
        }
    }
}

impl OutboundConfig {
    pub(super) fn validate(&self, key: &str) -> Result<(), String> {
        let times = [
            ("connect_timeout", self.connect_timeout),
            ("first_byte_timeout", self.first_byte_timeout),
            ("total_timeout", self.total_timeout),
        ];
        if let Some((name, _)) = times.iter().find(|(_, t)| t.is_zero()) {
            return Err(format!("{key}.{name}: must be more than 0"));
        }
        if self.max_concurrent == 0 {
            return Err(format!("{key}.max_concurrent: must be at least 1"));
        }
        Ok(())
    }
}

/// One `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `http`, `https`; `None` for `*`.
    scheme: Option<String>,
    host: HostPattern,
    /// `None` for `*`; otherwise the port, or the scheme's default.
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// One name or address, lowercase.
    Exact(String),
    /// Names below this suffix (`.example.com`).
    Below(String),
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    Default,
    Is(u16),
}

impl AllowedHost {
    /// Parses an entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("`{entry}`: not `scheme://host[:port]`"))?;
        let scheme = match scheme {
            "http" | "https" => Some(scheme.to_string()),
            "*" => None,
            other => {
                return Err(format!(
                    "`{entry}`: scheme `{other}` is not http, https or *"
                ));
            }
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{entry}`: only a host and a port may follow the scheme (no path, query or user)"
            ));
        }
        let (host, port) = split_port(rest).map_err(|why| format!("`{entry}`: {why}"))?;
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(port) => PortPattern::Is(
                port.parse()
                    .map_err(|_| format!("`{entry}`: port `{port}` is not a number or *"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if !valid_name(suffix) {
                return Err(format!("`{entry}`: `{suffix}` is not a host name"));
            }
            HostPattern::Below(format!(".{suffix}"))
        } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            HostPattern::Exact(v6.to_string())
        } else if host.parse::<IpAddr>().is_ok() || valid_name(&host) {
            HostPattern::Exact(host)
        } else {
            return Err(format!(
                "`{entry}`: `{host}` is not a host name, an address or a pattern"
            ));
        };
        Ok(AllowedHost { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` matches.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Is(p) => p == port,
            PortPattern::Default => default_port(scheme) == Some(port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => {
                let exact = exact.trim_start_matches('[').trim_end_matches(']');
                exact.eq_ignore_ascii_case(host)
            }
            HostPattern::Below(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        };
        port_ok && host_ok
    }

    /// Whether the entry names one host exactly: only such an entry lets
    /// requests reach loopback, private or link-local addresses.
    pub fn is_exact(&self) -> bool {
        matches!(self.host, HostPattern::Exact(_))
    }

    /// The host an exact entry names.
    pub fn exact_host(&self) -> Option<&str> {
        match &self.host {
            HostPattern::Exact(host) => Some(host.trim_start_matches('[').trim_end_matches(']')),
            _ => None,
        }
    }
}

/// The default port of `scheme`.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `host[:port]`, with IPv6 addresses in brackets.
fn split_port(rest: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = rest.strip_prefix('[') {
        let (address, after) = inner
            .split_once(']')
            .ok_or_else(|| "an IPv6 address needs its closing `]`".to_string())?;
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{address}` is not an IPv6 address"));
        }
        return match after.strip_prefix(':') {
            Some(port) => Ok((&rest[..address.len() + 2], Some(port))),
            None if after.is_empty() => Ok((rest, None)),
            None => Err(format!("`{after}` after the address")),
        };
    }
    Ok(match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, scheme: &str, host: &str, port: u16) -> bool {
        AllowedHost::parse(entry)
            .unwrap_or_else(|e| panic!("{e}"))
            .allows(scheme, host, port)
    }

    #[test]
    fn entries_match_scheme_host_and_port() {
        assert!(allows(
            "https://api.example.com",
            "https",
            "api.example.com",
            443
        ));
        assert!(allows(
            "https://api.example.com",
            "https",
            "API.example.com",
            443
        ));
        assert!(!allows(
            "https://api.example.com",
            "http",
            "api.example.com",
            80
        ));
        assert!(!allows(
            "https://api.example.com",
            "https",
            "api.example.com",
            8443
        ));
        assert!(allows("http://127.0.0.1:9000", "http", "127.0.0.1", 9000));
        assert!(!allows("http://127.0.0.1:9000", "http", "127.0.0.1", 9001));
        assert!(allows(
            "https://*.internal.example",
            "https",
            "a.b.internal.example",
            443
        ));
        assert!(!allows(
            "https://*.internal.example",
            "https",
            "internal.example",
            443
        ));
        assert!(!allows(
            "https://*.internal.example",
            "https",
            "evilinternal.example",
            443
        ));
        assert!(allows("*://example.com:*", "http", "example.com", 8080));
        assert!(allows("*://example.com", "https", "example.com", 443));
        assert!(allows("http://[::1]:8080", "http", "[::1]", 8080));
        assert!(allows("https://*", "https", "anything.at.all", 443));
    }

    #[test]
    fn malformed_entries_say_why() {
        for (entry, says) in [
            ("api.example.com", "scheme://"),
            ("ftp://example.com", "scheme `ftp`"),
            ("https://example.com/path", "no path"),
            ("https://example.com:http", "not a number"),
            ("https://exa mple.com", "not a host name"),
            ("https://[::1", "closing"),
        ] {
            let err = AllowedHost::parse(entry).expect_err(entry);
            assert!(err.contains(says), "{entry}: {err}");
        }
    }
}
