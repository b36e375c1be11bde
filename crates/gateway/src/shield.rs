//! What guards the gateway and its tenants before any route runs: load shedding (at most
//! `max_in_flight` API requests at once, the rest 503 at once) and the per-address throttle on
//! failed authentication (an address whose answers of checks 2–4 — no such instance, no key,
//! bad key — exceed the limit gets 429 before any other check, without reaching the server).
//!
//! The client's address is the TCP peer's, or, when the peer is a trusted proxy, the
//! right-most address of `X-Forwarded-For` that is not one: the left part of that header is
//! whatever the client wrote, the right part what the trusted proxies appended.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tokio::sync::Semaphore;

use crate::answer::{Answer, AuthFailure};
use crate::rate_limit::TokenBuckets;

/// The shield's state, shared by every request.
#[derive(Debug)]
pub(crate) struct Shield {
    in_flight: Arc<Semaphore>,
    /// Failed authentications by client address (`None`: throttle off).
    failures: Option<TokenBuckets<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
}

impl Shield {
    /// At most `max_in_flight` API requests at once; `auth_failure_limit` failed
    /// authentications a second per address (burst twice that; 0 = off).
    pub(crate) fn new(
        max_in_flight: usize,
        auth_failure_limit: u32,
        trusted_proxies: Vec<IpNet>,
    ) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(
                max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            )),
            failures: TokenBuckets::new(auth_failure_limit, auth_failure_limit.saturating_mul(2)),
            trusted_proxies,
        }
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }

    /// The client's address (see the module's documentation).
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // Appended by a trusted proxy, so well-formed; anything else stops the walk.
            let Ok(address) = hop.parse::<IpAddr>().map(|a| a.to_canonical()) else {
                break;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// A request's standing with the failure throttle, settled when it is dropped: after its
/// answer, or without one (the client went away, the drain ran out), when only its reservation
/// is released. SPEC.md counts answers of checks 2–4, so a request abandoned before its answer
/// is not a failure.
struct Standing<'a> {
    failures: &'a TokenBuckets<IpAddr>,
    client: IpAddr,
    reserved: bool,
    failed: bool,
}

impl Drop for Standing<'_> {
    fn drop(&mut self) {
        // Most requests neither hold a reservation nor failed: nothing to settle.
        if self.reserved || self.failed {
            self.failures
                .settle(&self.client, self.reserved, self.failed);
        }
    }
}

/// The middleware (outside the routes, inside the request's span).
pub(crate) async fn shield(
    State(shield): State<Arc<Shield>>,
    request: Request,
    next: Next,
) -> Response {
    // Probes and scrapes are the operator's, and never shed.
    if !request.uri().path().starts_with("/v1") {
        return next.run(request).await;
    }
    let peer = groups_runtime::peer_addr(&request).map(|addr| addr.ip().to_canonical());
    let client = peer.map(|peer| shield.client(peer, request.headers()));
    // An address that failed lately reserves one of its remaining failures before its request
    // runs, so many connections cannot have more failures in flight than it has left; an
    // address that has not failed lately reserves nothing. The request's standing settles when
    // it ends, however it ends (see `Standing`).
    let mut standing = None;
    if let (Some(failures), Some(client)) = (&shield.failures, client) {
        match failures.reserve(&client) {
            Err(wait) => return Answer::throttled(wait).into_response(),
            Ok(reserved) => {
                standing = Some(Standing {
                    failures,
                    client,
                    reserved,
                    failed: false,
                });
            }
        }
    }
    let response = match shield.in_flight.clone().try_acquire_owned() {
        Ok(_in_flight) => next.run(request).await,
        Err(_) => Answer::unavailable(1).into_response(),
    };
    if let Some(standing) = &mut standing {
        standing.failed = response.extensions().get::<AuthFailure>().is_some();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn addr(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_forward() {
        let shield = Shield::new(1, 1, vec!["10.0.0.0/8".parse().unwrap()]);
        let headers = forwarded(&["1.2.3.4"]);
        assert_eq!(
            shield.client(addr("192.0.2.7"), &headers),
            addr("192.0.2.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let shield = Shield::new(
            1,
            1,
            vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        );
        let peer = addr("10.0.0.2");
        // The client wrote "6.6.6.6, garbage"; the proxies appended 198.51.100.9 and 10.1.1.1.
        let headers = forwarded(&["6.6.6.6, garbage", "198.51.100.9, 10.1.1.1"]);
        assert_eq!(shield.client(peer, &headers), addr("198.51.100.9"));
        // Only proxies in the chain: the left-most of them stands for the client.
        assert_eq!(
            shield.client(peer, &forwarded(&["10.3.3.3"])),
            addr("10.3.3.3")
        );
        // A malformed hop appended by a proxy: the proxy is the best we know.
        assert_eq!(shield.client(peer, &forwarded(&["nonsense"])), peer);
        assert_eq!(shield.client(peer, &HeaderMap::new()), peer);
        assert_eq!(
            shield.client(addr("::1"), &forwarded(&["::ffff:192.0.2.1"])),
            addr("192.0.2.1")
        );
    }
}
