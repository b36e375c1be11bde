//! The answers SPEC.md allows, and what of a reply must match them: status, body, `Allow`,
//! `Retry-After`; a page's `next` link up to its opaque token.

use serde_json::{Value, json};

use super::Token;
use crate::wire::Reply;

/// An answer SPEC.md allows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expected {
    /// JSON `{"detail": ...}`, with `Allow` (405) and `Retry-After` (429) when given.
    Detail {
        status: u16,
        detail: String,
        allow: Option<&'static str>,
        retry_after: Option<u64>,
    },
    /// No body (`Allow` on a plain OPTIONS).
    Empty(u16, Option<&'static str>),
    /// A JSON document.
    Json(u16, Value),
    /// A page of the audit trail: 200 `{"next", "prev": null, "objects"}`.
    Page {
        objects: Value,
        next: Option<NextPage>,
    },
    /// The metrics page: Prometheus text.
    Metrics,
    /// Refused by the HTTP layer before routing: an empty body.
    Refused(u16),
}

/// The `next` link a page must carry: this prefix, then the token of the page after it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NextPage {
    pub(crate) prefix: String,
    /// The page's last event, and the filters the token is for.
    pub(crate) last_id: i64,
    pub(crate) group: Option<i64>,
    pub(crate) user: Option<i64>,
}

impl Expected {
    pub(crate) fn detail(status: u16, detail: &str) -> Self {
        Self::Detail {
            status,
            detail: detail.to_owned(),
            allow: None,
            retry_after: None,
        }
    }

    pub(crate) fn not_allowed(method: &str, allow: &'static str) -> Self {
        Self::Detail {
            status: 405,
            detail: format!("Method \"{method}\" not allowed."),
            allow: Some(allow),
            retry_after: None,
        }
    }

    pub(crate) fn throttled(seconds: u64) -> Self {
        Self::Detail {
            status: 429,
            detail: format!("Request was throttled. Expected available in {seconds} seconds."),
            allow: None,
            retry_after: Some(seconds),
        }
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Detail { status, .. }
            | Self::Empty(status, _)
            | Self::Json(status, _)
            | Self::Refused(status) => *status,
            Self::Page { .. } | Self::Metrics => 200,
        }
    }

    /// Whether `reply` is this answer: status, body, `Allow` and `Retry-After` exactly.
    pub(crate) fn matches(&self, reply: &Reply) -> bool {
        let json = reply.header("content-type") == Some("application/json");
        let body = || serde_json::from_slice::<Value>(&reply.body).ok();
        let json_body =
            |expected: &Value| json && (reply.head_only || body().as_ref() == Some(expected));
        let retry_after = match self {
            Self::Detail { retry_after, .. } => retry_after.map(|s| s.to_string()),
            _ => None,
        };
        if reply.header("retry-after") != retry_after.as_deref() {
            return false;
        }
        match self {
            Self::Detail {
                status,
                detail,
                allow,
                ..
            } => {
                reply.status == *status
                    && reply.header("allow") == *allow
                    && json_body(&json!({ "detail": detail }))
            }
            Self::Empty(status, allow) => {
                reply.status == *status && reply.header("allow") == *allow && reply.body.is_empty()
            }
            Self::Json(status, value) => {
                reply.status == *status && reply.header("allow").is_none() && json_body(value)
            }
            Self::Page { objects, next } => {
                let page = |body: Value| {
                    let link = &body["next"];
                    let next_matches = match next {
                        None => link.is_null(),
                        Some(next) => next_token(link, next).is_some(),
                    };
                    body.as_object().map(|o| o.len()) == Some(3)
                        && body["prev"].is_null()
                        && body["objects"] == *objects
                        && next_matches
                };
                reply.status == 200
                    && json
                    && reply.header("allow").is_none()
                    && (reply.head_only || body().is_some_and(page))
            }
            Self::Metrics => {
                let text = reply.header("content-type").unwrap_or_default();
                reply.status == 200
                    && text.starts_with("text/plain")
                    && (reply.head_only || !reply.body.is_empty())
            }
            Self::Refused(status) => reply.status == *status && reply.body.is_empty(),
        }
    }

    /// The token of the page after this one, from a reply that [`Expected::matches`].
    pub(crate) fn token(&self, reply: &Reply) -> Option<Token> {
        let Self::Page {
            next: Some(next), ..
        } = self
        else {
            return None;
        };
        let body: Value = serde_json::from_slice(&reply.body).ok()?;
        let text = next_token(&body["next"], next)?.to_owned();
        let (last_id, group, user) = (next.last_id, next.group, next.user);
        Some(Token {
            text,
            last_id,
            group,
            user,
        })
    }
}

/// The token at the end of a `next` link with the expected prefix: URL-safe text, opaque.
fn next_token<'a>(link: &'a Value, next: &NextPage) -> Option<&'a str> {
    let token = link.as_str()?.strip_prefix(&next.prefix)?;
    let url_safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    (!token.is_empty() && token.bytes().all(url_safe)).then_some(token)
}
