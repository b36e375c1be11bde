//! Which membership the k-th request of a run removes: a bijection from request numbers onto the
//! seeded (group, user) grid, shared by the Rust load generator and the pgbench script.

use groups_store::SeedSummary;
use serde::Serialize;

/// The seeded grid: every user of `first_user..first_user + users` in every group of
/// `first_group..first_group + groups` (ids are contiguous, see `groups_store::seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct SeedLayout {
    pub(crate) first_group: i64,
    pub(crate) groups: i64,
    pub(crate) first_user: i64,
    pub(crate) users: i64,
    /// Multiplier of the scatter: coprime with the number of memberships, so `k ↦ k·stride mod n`
    /// is a permutation.
    pub(crate) stride: i64,
}

impl SeedLayout {
    /// The layout of a seed.
    pub(crate) fn new(seed: &SeedSummary) -> Self {
        let groups = seed.groups.1 - seed.groups.0 + 1;
        let users = seed.users.1 - seed.users.0 + 1;
        Self {
            first_group: seed.groups.0,
            groups,
            first_user: seed.users.0,
            users,
            stride: scatter_stride(groups * users),
        }
    }

    /// How many memberships the seed made.
    pub(crate) fn memberships(&self) -> u64 {
        u64::try_from(self.groups * self.users).unwrap_or(0)
    }

    /// The (group, user) that request number `k` (`0..memberships`) removes.
    ///
    /// Consecutive requests of a closed loop would otherwise delete neighbouring rows, on one
    /// index leaf and one heap page, and the concurrent deletes would queue on that page's lock:
    /// the figures would measure that queue, not the service. Scattered, they touch distant
    /// pages, as independent callers would.
    pub(crate) fn membership(&self, k: u64) -> (i64, i64) {
        let n = i128::from(self.groups) * i128::from(self.users);
        let position = (i128::from(k) * i128::from(self.stride)) % n;
        let users = i128::from(self.users);
        // Both quotients are below `groups` and `users`: they fit in i64.
        let group = self.first_group + (position / users) as i64;
        let user = self.first_user + (position % users) as i64;
        (group, user)
    }
}

/// A multiplier coprime with `n` near `n / φ`: far from 1, so neighbours in request order land far
/// apart in the table.
fn scatter_stride(n: i64) -> i64 {
    if n <= 2 {
        return 1;
    }
    let mut stride = ((n as f64) * 0.618_033_988_75) as i64 | 1;
    while gcd(stride, n) != 1 {
        stride += 2;
    }
    stride
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(groups: i64, users: i64) -> SeedLayout {
        SeedLayout::new(&SeedSummary {
            groups: (11, 10 + groups),
            users: (501, 500 + users),
            memberships: groups * users,
        })
    }

    #[test]
    fn every_request_removes_a_distinct_seeded_membership() {
        for (groups, users) in [(1, 1), (1, 7), (4, 6), (10, 100), (100, 100)] {
            let layout = layout(groups, users);
            let mut seen = std::collections::HashSet::new();
            for k in 0..layout.memberships() {
                let (g, u) = layout.membership(k);
                assert!((11..11 + groups).contains(&g), "group {g}");
                assert!((501..501 + users).contains(&u), "user {u}");
                assert!(seen.insert((g, u)), "({g}, {u}) twice in {groups}x{users}");
            }
        }
    }

    #[test]
    fn neighbouring_requests_land_far_apart() {
        let layout = layout(100, 10_000);
        let (g0, _) = layout.membership(0);
        let (g1, _) = layout.membership(1);
        assert!((g1 - g0).abs() > 10, "{g0} then {g1}");
    }
}
