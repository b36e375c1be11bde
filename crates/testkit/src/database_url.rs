//! Taking a PostgreSQL URL apart just enough to point it at another database or another address.

use std::net::{SocketAddr, ToSocketAddrs};

/// `scheme://[userinfo@]host[:port][/database][?query]`, split into the parts we rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseUrl {
    /// `scheme://` plus `userinfo@` when present: kept verbatim (it may hold an encoded password).
    head: String,
    /// Host as written: a name, an IPv4 address or a bracketed IPv6 address. May be empty.
    host: String,
    port: Option<u16>,
    database: String,
    /// `?...` or empty.
    query: String,
}

impl DatabaseUrl {
    /// Parses a `postgres://` or `postgresql://` URL with one host.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let scheme_end = ["postgres://", "postgresql://"]
            .iter()
            .find(|scheme| url.starts_with(*scheme))
            .map(|scheme| scheme.len())
            .ok_or_else(|| {
                "a database URL must start with postgres:// or postgresql://".to_owned()
            })?;
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let (userinfo, host_port) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        if host_port.contains(',') {
            return Err("a database URL with several hosts is not supported".into());
        }
        let (host, port) = split_host_port(host_port)?;
        let after = &rest[authority_end..];
        let (path, query) = match after.find('?') {
            Some(q) => (&after[..q], &after[q..]),
            None => (after, ""),
        };
        Ok(Self {
            head: format!("{}{userinfo}", &url[..scheme_end]),
            host: host.to_owned(),
            port,
            database: path.trim_start_matches('/').to_owned(),
            query: query.to_owned(),
        })
    }

    /// The database the URL names (empty when it names none).
    pub(crate) fn database(&self) -> &str {
        &self.database
    }

    /// The same URL naming another database.
    pub(crate) fn with_database(&self, database: &str) -> String {
        self.render(&self.host, self.port, database)
    }

    /// The same URL reaching the server at another address (a proxy, say).
    pub(crate) fn with_address(&self, address: SocketAddr) -> String {
        let host = match address {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        self.render(&host, Some(address.port()), &self.database)
    }

    /// The server's TCP address, resolving the host name.
    pub(crate) fn socket_addr(&self) -> Result<SocketAddr, String> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "localhost" } else { host };
        (host, self.port.unwrap_or(5432))
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve database host {host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("database host {host:?} has no address"))
    }

    fn render(&self, host: &str, port: Option<u16>, database: &str) -> String {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}{host}{port}/{database}{}", self.head, self.query)
    }
}

fn split_host_port(host_port: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if host_port.starts_with('[') {
        let close = host_port
            .find(']')
            .ok_or_else(|| "unclosed '[' in the database URL's host".to_owned())?;
        let port = host_port[close + 1..].strip_prefix(':');
        (&host_port[..=close], port)
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| format!("bad port {text:?} in the database URL"))?,
        ),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_the_database_keeping_credentials_and_query() {
        let url =
            DatabaseUrl::parse("postgres://me:p%40ss@db.example:6543/app?sslmode=disable").unwrap();
        assert_eq!(url.database(), "app");
        assert_eq!(
            url.with_database("other"),
            "postgres://me:p%40ss@db.example:6543/other?sslmode=disable"
        );
    }

    #[test]
    fn accepts_missing_parts() {
        let url = DatabaseUrl::parse("postgresql://localhost").unwrap();
        assert_eq!(url.database(), "");
        assert_eq!(url.with_database("x"), "postgresql://localhost/x");
        let url = DatabaseUrl::parse("postgres://u@h?x=1").unwrap();
        assert_eq!(url.with_database("d"), "postgres://u@h/d?x=1");
    }

    #[test]
    fn points_at_another_address() {
        let url = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/t1").unwrap();
        let proxy: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            url.with_address(proxy),
            "postgres://postgres@127.0.0.1:40000/t1"
        );
        let v6 = DatabaseUrl::parse("postgres://u@[::1]:5433/d").unwrap();
        assert_eq!(v6.socket_addr().unwrap(), "[::1]:5433".parse().unwrap());
        assert_eq!(
            url.socket_addr().unwrap(),
            "127.0.0.1:5432".parse().unwrap()
        );
    }

    #[test]
    fn refuses_what_it_cannot_rewrite() {
        assert!(DatabaseUrl::parse("host=localhost dbname=x").is_err());
        assert!(DatabaseUrl::parse("postgres://a,b/x").is_err());
        assert!(DatabaseUrl::parse("postgres://h:port/x").is_err());
    }
}
