//! A matched route's path variables, read from the raw path by position against the route's
//! template, and parsed in the order each route checks them, each with its route's own answer.
//!
//! Not axum's `Path`/`RawPathParams`: they answer 400 in plain text when a segment is not
//! UTF-8 once decoded, which must be a JSON 404 here, in the order of SPEC.md's checks.

use std::borrow::Cow;

use groups_core::InstanceName;
use percent_encoding::percent_decode_str;

use crate::answer::Answer;

/// The variables of a request path matched to a route template.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathVars<'a> {
    template: &'a str,
    path: &'a str,
}

impl<'a> PathVars<'a> {
    /// The variables of `path`, matched to `template`; `None` when one is empty. The router
    /// (matchit) matches an empty `{var}` before a static segment (`/instances//groups/…`); the
    /// original's `[^/]+` patterns did not, so such a path is an unknown one.
    pub(crate) fn new(template: &'a str, path: &'a str) -> Option<Self> {
        let vars = Self { template, path };
        vars.pairs()
            .all(|(name, value)| !name.starts_with('{') || !value.is_empty())
            .then_some(vars)
    }

    /// (template segment, path segment) pairs.
    fn pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.template.split('/').zip(self.path.split('/'))
    }

    /// The raw (percent-encoded) value of `{name}`; empty when the template has no such variable.
    fn raw(&self, name: &str) -> &'a str {
        self.pairs()
            .find(|(segment, _)| {
                segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) == Some(name)
            })
            .map_or("", |(_, value)| value)
    }

    /// The id in `{name}`, or `answer` when it cannot be one.
    pub(crate) fn id<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        answer: Answer,
    ) -> Result<T, Answer> {
        decode(self.raw(name))
            .and_then(|text| parse(&text))
            .ok_or(answer)
    }

    /// The instance in `{instance}`, or "Instance was not found." when it cannot be one (no
    /// need to ask the server).
    pub(crate) fn instance(&self) -> Result<InstanceName, Answer> {
        decode(self.raw("instance"))
            .and_then(|text| InstanceName::parse(&text))
            .ok_or(Answer::instance_not_found())
    }

    /// The API version prefix the request came in on (`/v1.1` or `/v1`), for links.
    pub(crate) fn version(&self) -> &'a str {
        let end = self.path[1..]
            .find('/')
            .map_or(self.path.len(), |at| at + 1);
        &self.path[..end]
    }
}

/// Percent-decodes a path segment; `None` when the result is not UTF-8 (never lossy: a name
/// with replacement characters must not reach the checks as if it were something else).
fn decode(raw: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(raw).decode_utf8().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use groups_core::{GroupId, UserId};

    const MEMBER: &str = "/v1.1/instances/{instance}/groups/{group_id}/users/{user_id}/";

    #[test]
    fn variables_by_position() {
        let vars = PathVars::new(MEMBER, "/v1.1/instances/de%6Do/groups/1/users/%32/").unwrap();
        assert_eq!(vars.instance().unwrap().as_str(), "demo");
        assert_eq!(
            vars.id("group_id", GroupId::parse, Answer::group_not_found()),
            Ok(GroupId::new(1).unwrap())
        );
        assert_eq!(
            vars.id("user_id", UserId::parse, Answer::not_found()),
            Ok(UserId::new(2).unwrap())
        );
        assert_eq!(vars.version(), "/v1.1");
        let v1 = PathVars::new(
            "/v1/instances/{instance}/users/{user_id}",
            "/v1/instances/a/users/7",
        );
        assert_eq!(v1.unwrap().version(), "/v1");
    }

    #[test]
    fn empty_or_undecodable_variables() {
        assert!(PathVars::new(MEMBER, "/v1.1/instances//groups/1/users/2/").is_none());
        assert!(PathVars::new(MEMBER, "/v1.1/instances/a/groups/1/users//").is_none());
        let vars = PathVars::new(MEMBER, "/v1.1/instances/%FF/groups/x/users/2/").unwrap();
        assert_eq!(vars.instance(), Err(Answer::instance_not_found()));
        assert_eq!(
            vars.id("group_id", GroupId::parse, Answer::group_not_found()),
            Err(Answer::group_not_found())
        );
    }
}
