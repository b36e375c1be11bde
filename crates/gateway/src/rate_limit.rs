//! Token buckets keyed by a name or an address, in bounded memory: the per-instance request
//! rate limit and the per-address throttle on failed authentication both count with them.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` tokens a second. A bucket that has
//! refilled completely behaves exactly like a missing one, so it is dropped by a periodic
//! sweep: memory follows the keys active in the last few seconds, and never exceeds
//! `max_tracked` buckets.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most keys tracked at once. Past it (only a flood of distinct keys within seconds gets
/// there) new keys pass untracked until a sweep frees room: failing open keeps one flood from
/// throttling everyone else, and a key that nobody tracks was not yet busy.
pub(crate) const MAX_TRACKED: usize = 100_000;

/// How often full buckets are swept out; a sweep is one pass over the map.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Token buckets by key.
#[derive(Debug)]
pub(crate) struct TokenBuckets<K> {
    rate: f64,
    burst: f64,
    max_tracked: usize,
    buckets: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    by_key: HashMap<K, Bucket>,
    last_sweep: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
    }
}

impl<K: Hash + Eq> TokenBuckets<K> {
    /// Buckets of `burst` tokens refilled at `per_second`; `None` when `per_second` is 0 (off).
    pub(crate) fn new(per_second: u32, burst: u32) -> Option<Self> {
        Self::with_capacity(per_second, burst, MAX_TRACKED)
    }

    fn with_capacity(per_second: u32, burst: u32, max_tracked: usize) -> Option<Self> {
        (per_second > 0).then(|| Self {
            rate: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            max_tracked,
            buckets: Mutex::new(Buckets {
                by_key: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        })
    }

    /// Takes a token from `key`'s bucket; when it is empty, takes nothing and returns the whole
    /// seconds (at least 1) until a token is back.
    pub(crate) fn take<Q>(&self, key: &Q) -> Result<(), u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_bucket(key, Instant::now(), true).map(drop)
    }

    /// Takes a token ahead of an outcome from `key`'s bucket if one is tracked: `Ok(true)` when
    /// a token was taken (give it back with [`Self::refund`] if the outcome does not count),
    /// `Ok(false)` when the key is not tracked (its bucket is full: nothing is taken or
    /// tracked), `Err` as for [`Self::take`]. Taken up front, a key's tokens bound how many of
    /// its requests are in flight at once, not only how many have been answered.
    pub(crate) fn reserve<Q>(&self, key: &Q) -> Result<bool, u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_bucket(key, Instant::now(), false)
    }

    /// Gives back a token taken by [`Self::reserve`].
    pub(crate) fn refund<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.refund_at(key, Instant::now());
    }

    fn refund_at<Q>(&self, key: &Q, now: Instant)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.by_key.get_mut(key) {
            bucket.refill(now, self.rate, self.burst);
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }

    /// Takes a token from `key`'s bucket, tracking a new bucket (a full one) for an untracked
    /// key only if `track_new`; `Ok(true)` if a token was taken.
    fn with_bucket<Q>(&self, key: &Q, now: Instant, track_new: bool) -> Result<bool, u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // The lock is held for a map look-up (and, once a second, a sweep): never across I/O.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(buckets.last_sweep) >= SWEEP_EVERY {
            buckets.sweep(now, self.rate, self.burst);
        }
        let by_key = &mut buckets.by_key;
        if !by_key.contains_key(key) {
            if !track_new || by_key.len() >= self.max_tracked {
                return Ok(false);
            }
            let full = Bucket {
                tokens: self.burst,
                updated: now,
            };
            by_key.insert(key.to_owned(), full);
        }
        let Some(bucket) = by_key.get_mut(key) else {
            return Ok(false);
        };
        bucket.refill(now, self.rate, self.burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(true)
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            // `as` saturates; wait is at most 1 s since rate >= 1.
            Err((wait.ceil() as u64).max(1))
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.by_key.len()
    }
}

impl<K> Buckets<K> {
    /// Drops the buckets that are full again: they hold no state worth keeping.
    fn sweep(&mut self, now: Instant, rate: f64, burst: f64) {
        self.by_key.retain(|_, bucket| {
            bucket.refill(now, rate, burst);
            bucket.tokens < burst
        });
        self.last_sweep = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type ByName = TokenBuckets<String>;

    #[test]
    fn zero_turns_it_off() {
        assert!(ByName::new(0, 0).is_none());
    }

    #[test]
    fn allows_the_burst_then_throttles_then_refills() {
        let limiter = ByName::new(3, 3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.with_bucket("a", t0, true), Ok(true));
        }
        assert_eq!(limiter.with_bucket("a", t0, true), Err(1));
        // Another key has its own bucket.
        assert_eq!(limiter.with_bucket("b", t0, true), Ok(true));
        // A third of a second refills one token at 3/s.
        let later = t0 + Duration::from_millis(340);
        assert_eq!(limiter.with_bucket("a", later, true), Ok(true));
        assert_eq!(limiter.with_bucket("a", later, true), Err(1));
    }

    #[test]
    fn reserving_tracks_no_new_key_and_takes_from_a_tracked_bucket() {
        let limiter = ByName::new(1, 2).unwrap();
        let t0 = Instant::now();
        // Untracked (full): nothing taken, nothing tracked.
        assert_eq!(limiter.with_bucket("a", t0, false), Ok(false));
        assert_eq!(limiter.tracked(), 0);
        assert_eq!(limiter.with_bucket("a", t0, true), Ok(true));
        // Tracked: one token left, reserved; then none for a second reservation.
        assert_eq!(limiter.with_bucket("a", t0, false), Ok(true));
        assert_eq!(limiter.with_bucket("a", t0, false), Err(1));
        // A refund gives it back, once: the bucket never holds more than its burst.
        limiter.refund_at("a", t0);
        assert_eq!(limiter.with_bucket("a", t0, false), Ok(true));
        assert_eq!(limiter.with_bucket("a", t0, false), Err(1));
        let later = t0 + Duration::from_millis(1001);
        assert_eq!(limiter.with_bucket("a", later, false), Ok(true));
        for _ in 0..5 {
            limiter.refund_at("a", later);
        }
        assert_eq!(limiter.with_bucket("a", later, false), Ok(true));
        assert_eq!(limiter.with_bucket("a", later, false), Ok(true));
        assert_eq!(limiter.with_bucket("a", later, false), Err(1));
        // Refunding an untracked key tracks nothing.
        limiter.refund_at("b", later);
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn full_buckets_are_swept_and_the_map_is_capped() {
        let limiter = ByName::with_capacity(2, 2, 3).unwrap();
        let t0 = Instant::now();
        for name in ["a", "b", "c"] {
            assert_eq!(limiter.with_bucket(name, t0, true), Ok(true));
        }
        assert_eq!(limiter.tracked(), 3);
        // Full map: a new key passes untracked, the tracked ones keep their state.
        for _ in 0..5 {
            assert_eq!(limiter.with_bucket("d", t0, true), Ok(false));
        }
        assert_eq!(limiter.with_bucket("a", t0, true), Ok(true));
        assert_eq!(limiter.with_bucket("a", t0, true), Err(1));
        assert_eq!(limiter.tracked(), 3);
        // After a quiet second every bucket is full again and swept, bar the one just used.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(limiter.with_bucket("d", later, true), Ok(true));
        assert_eq!(limiter.tracked(), 1);
    }
}
