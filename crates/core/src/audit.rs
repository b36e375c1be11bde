//! The audit trail: one event per membership removed, who removed it and when, and listing an
//! instance's events newest first in pages that stay consistent while removals continue.
//!
//! A listing's pages are one snapshot of the trail: the first page records the database
//! snapshot it was read in, and every later page reads only events that snapshot could see
//! (below the last id shown). Events committed meanwhile show in the next listing; none is
//! skipped or repeated across the pages of one listing, even when a removal with a lower id
//! commits after a higher one.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::access::{Lookup, Permission, Role, authorize};
use crate::error::{DomainError, FieldViolation, Result};
use crate::ids::{GroupId, UserId};
use crate::instance::InstanceName;
use crate::key::Credential;
use crate::reads::Found;
use crate::removal::instance_field;

/// The action of every event so far.
pub const MEMBERSHIP_REMOVED: &str = "membership.removed";

/// Events per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The most events a gRPC page holds; larger requests are read as this (AIP-158).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One removal, as the trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipEvent {
    /// Increases with time across the whole service.
    pub id: i64,
    /// The group the user was removed from.
    pub group: i64,
    /// The user removed.
    pub user: i64,
    /// The admin who removed them.
    pub actor_admin: i64,
    /// The admin's role on the instance at the time.
    pub actor_role: Role,
    /// The request id of the removal, as in both processes' log lines.
    pub request_id: String,
    /// When it was removed.
    pub at: UtcMicros,
}

/// A UTC instant to the microsecond, as microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcMicros(pub i64);

impl UtcMicros {
    /// Whole seconds and nanoseconds since the epoch (`google.protobuf.Timestamp`).
    pub fn seconds_and_nanos(self) -> (i64, i32) {
        let seconds = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        // `micros` is below 10^6, so the nanoseconds fit an i32.
        (seconds, (micros * 1000) as i32)
    }
}

impl fmt::Display for UtcMicros {
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, as Syncano (and its SDK) write timestamps.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seconds, nanos) = self.seconds_and_nanos();
        let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60,
            nanos / 1000
        )
    }
}

/// The proleptic Gregorian date of a day number (0 = 1970-01-01); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A database snapshot (`pg_snapshot` text: `xmin:xmax:xip,...`), validated as PostgreSQL's
/// own input function does, so the store's cast of it cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(String);

/// The most in-progress transactions a snapshot may list (PostgreSQL lists at most one per
/// connection); bounds the size of a token.
const MAX_SNAPSHOT_XIPS: usize = 10_000;

impl Snapshot {
    /// Accepts `xmin:xmax:xip,...` with `1 <= xmin <= xmax` and each listed transaction in
    /// `xmin..xmax`, in order. Returns the canonical text.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let xmin = parse_xid(parts.next()?)?;
        let xmax = parse_xid(parts.next()?)?;
        let xips = parts.next()?;
        if xmin == 0 || xmax < xmin {
            return None;
        }
        let mut canonical = format!("{xmin}:{xmax}:");
        let mut last = xmin;
        if !xips.is_empty() {
            for (n, xip) in xips.split(',').enumerate() {
                let xip = parse_xid(xip)?;
                if n >= MAX_SNAPSHOT_XIPS || xip < last || xip >= xmax {
                    return None;
                }
                if n > 0 {
                    canonical.push(',');
                }
                canonical.push_str(&xip.to_string());
                last = xip;
            }
        }
        Some(Self(canonical))
    }

    /// The text to cast to `pg_snapshot`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_xid(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// Where the next page of a listing starts: after `last_id`, within `snapshot`, for the same
/// filters. Opaque to callers (URL-safe base64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// The id of the last event of the previous page.
    pub last_id: i64,
    /// The listing's group filter.
    pub group: Option<GroupId>,
    /// The listing's user filter.
    pub user: Option<UserId>,
    /// The snapshot the listing's first page was read in.
    pub snapshot: Snapshot,
}

/// The version tag of the token's layout.
const TOKEN_TAG: &str = "e1";

impl PageToken {
    /// The token as callers see it.
    pub fn encode(&self) -> String {
        let id = |id: Option<i64>| id.unwrap_or(0);
        let text = format!(
            "{TOKEN_TAG}:{}:{}:{}:{}",
            self.last_id,
            id(self.group.map(GroupId::get)),
            id(self.user.map(UserId::get)),
            self.snapshot.as_str()
        );
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a token back; `None` when it is not one of ours.
    pub fn decode(token: &str) -> Option<Self> {
        if token.len() > 4 * MAX_SNAPSHOT_XIPS * 21 / 3 {
            return None;
        }
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let mut parts = text.splitn(5, ':');
        if parts.next()? != TOKEN_TAG {
            return None;
        }
        let last_id = parts.next()?.parse::<i64>().ok().filter(|id| *id > 0)?;
        // Filters: 0 = any.
        let mut filter = || parts.next()?.parse::<i64>().ok().filter(|id| *id >= 0);
        let (group, user) = (filter()?, filter()?);
        let snapshot = Snapshot::parse(parts.next()?)?;
        Some(Self {
            last_id,
            group: GroupId::new(group),
            user: UserId::new(user),
            snapshot,
        })
    }
}

/// A listing of an instance's events, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsRequest {
    /// `None` when the name is not a valid instance name: such an instance cannot exist.
    pub instance: Option<InstanceName>,
    /// Only this group's events.
    pub group: Option<GroupId>,
    /// Only this user's events.
    pub user: Option<UserId>,
    /// Events per page, `1..=MAX_PAGE_SIZE`.
    pub page_size: u32,
    /// Where this page starts; `None` for the first page.
    pub after: Option<PageToken>,
}

impl EventsRequest {
    /// Validates raw gRPC fields (AIP-158): filters 0 = any, otherwise positive; page size 0 =
    /// the default, above the maximum = the maximum, negative invalid; a token must be one of
    /// ours and carry the same filters.
    pub fn new(
        instance_name: &str,
        group_id: i64,
        user_id: i64,
        page_size: i32,
        page_token: &str,
    ) -> Result<Self> {
        let mut violations = Vec::new();
        let instance = instance_field(instance_name, &mut violations);
        let mut filter = |id: i64, field| {
            if id < 0 {
                violations.push(FieldViolation {
                    field,
                    description: "must be 0 (any) or a positive integer",
                });
            }
            id
        };
        let group = GroupId::new(filter(group_id, "group_id"));
        let user = UserId::new(filter(user_id, "user_id"));
        let page_size = match u32::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
            Err(_) => {
                violations.push(FieldViolation {
                    field: "page_size",
                    description: "must not be negative",
                });
                DEFAULT_PAGE_SIZE
            }
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let token = PageToken::decode(page_token)
                .filter(|token| token.group == group && token.user == user);
            if token.is_none() {
                violations.push(FieldViolation {
                    field: "page_token",
                    description: "must be a next_page_token of a listing with the same filters",
                });
            }
            token
        };
        if !violations.is_empty() {
            return Err(DomainError::InvalidArgument(violations));
        }
        Ok(Self {
            instance,
            group,
            user,
            page_size,
            after,
        })
    }

    /// What the store must resolve, or the answer when no store can help.
    pub fn lookup(&self, credential: &Credential) -> Result<Lookup<'_>> {
        let instance = self
            .instance
            .as_ref()
            .ok_or(DomainError::InstanceNotFound)?;
        Ok(Lookup::new(instance, credential, Permission::ReadAudit))
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventsPage {
    /// Newest first.
    pub events: Vec<MembershipEvent>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageToken>,
}

/// The page, if the caller may read the trail: checks 2–5.
pub fn list_membership_events(
    credential: &Credential,
    found: Found<EventsPage>,
) -> Result<EventsPage> {
    authorize(found.access, credential, Permission::ReadAudit)?;
    // A permitted caller always gets a page, if an empty one.
    Ok(found.object.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_syncano_does() {
        assert_eq!(UtcMicros(0).to_string(), "1970-01-01T00:00:00.000000Z");
        // 2026-11-30T12:00:00.123456Z
        assert_eq!(
            UtcMicros(1_796_040_000_123_456).to_string(),
            "2026-11-30T12:00:00.123456Z"
        );
        assert_eq!(UtcMicros(-1).to_string(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            UtcMicros(951_782_400_000_000).to_string(),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(UtcMicros(-1).seconds_and_nanos(), (-1, 999_999_000));
    }

    #[test]
    fn snapshots_are_checked_like_postgresql_does() {
        assert_eq!(Snapshot::parse("10:20:").unwrap().as_str(), "10:20:");
        assert_eq!(
            Snapshot::parse("10:20:10,12,12,19").unwrap().as_str(),
            "10:20:10,12,12,19"
        );
        for bad in [
            "",
            "10",
            "10:20",
            "0:5:",
            "20:10:",
            "10:20:9",
            "10:20:20",
            "10:20:12,11",
            "10:20:,",
            "10:20:1x",
            "a:b:",
            "10:20:12,",
            "-1:2:",
            "99999999999999999999999:1:",
        ] {
            assert_eq!(Snapshot::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_round_trip_and_refuse_anything_else() {
        let token = PageToken {
            last_id: 42,
            group: GroupId::new(3),
            user: None,
            snapshot: Snapshot::parse("100:105:101,103").unwrap(),
        };
        let text = token.encode();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(PageToken::decode(&text), Some(token));
        for bad in [
            "",
            "x",
            "e1:1:0:0:1:2:",
            "ZTE6MDowOjA6MToyOg",
            "ZTI6MTowOjA6MToyOg",
        ] {
            assert_eq!(PageToken::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn requests_follow_aip_158() {
        let r = EventsRequest::new("demo", 0, 0, 0, "").unwrap();
        assert_eq!(
            (r.group, r.user, r.page_size),
            (None, None, DEFAULT_PAGE_SIZE)
        );
        assert_eq!(
            EventsRequest::new("demo", 0, 0, 5000, "")
                .unwrap()
                .page_size,
            1000
        );
        let Err(DomainError::InvalidArgument(v)) = EventsRequest::new("demo", -1, 0, -3, "zz")
        else {
            panic!("expected an argument error");
        };
        let fields: Vec<_> = v.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["group_id", "page_size", "page_token"]);
        let token = PageToken {
            last_id: 9,
            group: GroupId::new(3),
            user: None,
            snapshot: Snapshot::parse("5:5:").unwrap(),
        }
        .encode();
        assert!(EventsRequest::new("demo", 3, 0, 0, &token).is_ok());
        assert!(EventsRequest::new("demo", 4, 0, 0, &token).is_err());
    }
}
