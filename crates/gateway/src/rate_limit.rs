//! Token buckets keyed by a name or an address, in bounded memory: the per-instance request
//! rate limit and the per-address throttle on failed authentication both count with them.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` tokens a second. A bucket that has
//! refilled completely behaves exactly like a missing one, so it is dropped by a periodic
//! sweep: memory follows the keys active in the last few seconds, and never exceeds
//! `max_tracked` buckets.
//!
//! The rate limit [`takes`](TokenBuckets::take) a token per request. The failure throttle counts
//! outcomes, which are known only after a request ran, so it works in two steps: before a
//! request, a key that failed lately [`reserves`](TokenBuckets::reserve) one of its remaining
//! tokens (a key with a full bucket reserves nothing); after it,
//! [`settle`](TokenBuckets::settle) releases the reservation and charges a failure. Failures are
//! charged even past an empty bucket, as debt (at most [`DEBT_SECONDS`] of refill), so a burst of
//! failures sent at once is paid back in time before the key passes freely again.

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

/// The most debt a key's failures can run up, in seconds of refill: a burst of failures larger
/// than the bucket keeps its key waiting until they are paid back, up to this long.
pub(crate) const DEBT_SECONDS: f64 = 60.0;

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
    /// Below zero: debt of failures charged past an empty bucket.
    tokens: f64,
    updated: Instant,
    /// Tokens reserved by requests still running: not spent, not available either.
    reserved: u32,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            updated: now,
            reserved: 0,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
    }

    /// Tokens neither spent nor reserved (below zero while in debt).
    fn available(&self) -> f64 {
        self.tokens - f64::from(self.reserved)
    }

    /// Whole seconds (at least 1) until one token is available. `as` saturates; the debt
    /// bounds the wait anyway.
    fn wait_for_one(&self, rate: f64) -> u64 {
        (((1.0 - self.available()) / rate).ceil() as u64).max(1)
    }

    /// Takes one available token, or says when one is back.
    fn take_one(&mut self, rate: f64) -> Result<(), u64> {
        if self.available() >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait_for_one(rate))
        }
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
        self.take_at(key, Instant::now())
    }

    fn take_at<Q>(&self, key: &Q, now: Instant) -> Result<(), u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.with_bucket(key, now, true, |bucket, rate| bucket.take_one(rate))
            .unwrap_or(Ok(()))
    }

    /// Before a request of `key`: `Ok(false)` when its bucket is full (nothing is reserved, and
    /// the key stops being tracked); `Ok(true)` when one of its available tokens was reserved
    /// for the request (pass it to [`Self::settle`]); `Err` with the whole seconds to wait when
    /// none is available. So a key that failed lately has at most as many requests running at
    /// once as it has failures left.
    pub(crate) fn reserve<Q>(&self, key: &Q) -> Result<bool, u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.reserve_at(key, Instant::now())
    }

    fn reserve_at<Q>(&self, key: &Q, now: Instant) -> Result<bool, u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let burst = self.burst;
        let mut buckets = self.lock(now);
        let Some(bucket) = buckets.by_key.get_mut(key) else {
            return Ok(false);
        };
        bucket.refill(now, self.rate, burst);
        if bucket.tokens >= burst {
            // No failure for a whole refill: as if never seen. Requests still running under a
            // reservation settle against no bucket, which only a failure creates again.
            buckets.by_key.remove(key);
            return Ok(false);
        }
        if bucket.available() >= 1.0 {
            bucket.reserved += 1;
            Ok(true)
        } else {
            Err(bucket.wait_for_one(self.rate))
        }
    }

    /// After a request of `key`: releases its reservation (if [`Self::reserve`] made one) and,
    /// if it `failed`, charges one token, past empty as debt (see [`DEBT_SECONDS`]), tracking
    /// the key if it was not.
    pub(crate) fn settle<Q>(&self, key: &Q, reserved: bool, failed: bool)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.settle_at(key, reserved, failed, Instant::now());
    }

    fn settle_at<Q>(&self, key: &Q, reserved: bool, failed: bool, now: Instant)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let floor = -DEBT_SECONDS * self.rate;
        self.with_bucket(key, now, failed, |bucket, _| {
            if reserved {
                bucket.reserved = bucket.reserved.saturating_sub(1);
            }
            if failed {
                bucket.tokens = (bucket.tokens - 1.0).max(floor);
            }
        });
    }

    /// The map, swept if a sweep is due.
    fn lock(&self, now: Instant) -> std::sync::MutexGuard<'_, Buckets<K>> {
        // The lock is held for a map look-up (and, once a second, a sweep): never across I/O.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(buckets.last_sweep) >= SWEEP_EVERY {
            buckets.sweep(now, self.rate, self.burst);
        }
        buckets
    }

    /// Runs `f` on `key`'s refilled bucket; an untracked key gets a full bucket first if
    /// `track_new` and there is room, else `f` does not run (`None`).
    fn with_bucket<Q, T>(
        &self,
        key: &Q,
        now: Instant,
        track_new: bool,
        f: impl FnOnce(&mut Bucket, f64) -> T,
    ) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut buckets = self.lock(now);
        let by_key = &mut buckets.by_key;
        if !by_key.contains_key(key) {
            if !track_new || by_key.len() >= self.max_tracked {
                return None;
            }
            by_key.insert(key.to_owned(), Bucket::full(self.burst, now));
        }
        let bucket = by_key.get_mut(key)?;
        bucket.refill(now, self.rate, self.burst);
        Some(f(bucket, self.rate))
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_key
            .len()
    }

    #[cfg(test)]
    fn tokens(&self, key: &K) -> Option<f64> {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.by_key.get(key).map(|bucket| bucket.tokens)
    }
}

impl<K> Buckets<K> {
    /// Drops the buckets that are full again: they hold no state worth keeping (a reservation
    /// still running settles against no bucket).
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

    fn tokens(limiter: &ByName, key: &str) -> Option<f64> {
        limiter.tokens(&key.to_owned())
    }

    #[test]
    fn zero_turns_it_off() {
        assert!(ByName::new(0, 0).is_none());
    }

    #[test]
    fn allows_the_burst_then_throttles_then_refills() {
        let limiter = ByName::new(3, 3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take_at("a", t0), Ok(()));
        }
        assert_eq!(limiter.take_at("a", t0), Err(1));
        // Another key has its own bucket.
        assert_eq!(limiter.take_at("b", t0), Ok(()));
        // A third of a second refills one token at 3/s.
        let later = t0 + Duration::from_millis(340);
        assert_eq!(limiter.take_at("a", later), Ok(()));
        assert_eq!(limiter.take_at("a", later), Err(1));
    }

    #[test]
    fn a_key_that_never_failed_reserves_nothing_and_is_not_tracked() {
        let limiter = ByName::new(1, 2).unwrap();
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(limiter.reserve_at("a", t0), Ok(false));
            limiter.settle_at("a", false, false, t0);
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn reservations_bound_the_requests_in_flight_of_a_key_that_failed() {
        let limiter = ByName::new(1, 3).unwrap();
        let t0 = Instant::now();
        // One failure: two tokens left, so two requests may run at once.
        limiter.settle_at("a", false, true, t0);
        assert_eq!(limiter.reserve_at("a", t0), Ok(true));
        assert_eq!(limiter.reserve_at("a", t0), Ok(true));
        assert_eq!(limiter.reserve_at("a", t0), Err(1));
        // A success gives its token back; a failure spends it.
        limiter.settle_at("a", true, false, t0);
        assert_eq!(limiter.reserve_at("a", t0), Ok(true));
        limiter.settle_at("a", true, true, t0);
        limiter.settle_at("a", true, true, t0);
        assert_eq!(tokens(&limiter, "a"), Some(0.0));
        assert_eq!(limiter.reserve_at("a", t0), Err(1));
        // Successes one after another never run out: each gives its token back.
        let later = t0 + Duration::from_secs(1);
        for _ in 0..10 {
            assert_eq!(limiter.reserve_at("a", later), Ok(true));
            limiter.settle_at("a", true, false, later);
        }
        // Refilled completely: untracked again, nothing reserved.
        let full = later + Duration::from_secs(2);
        assert_eq!(limiter.reserve_at("a", full), Ok(false));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn failures_past_an_empty_bucket_are_debt_paid_back_in_time() {
        let limiter = ByName::new(2, 4).unwrap();
        let t0 = Instant::now();
        // Twenty failures at once (requests that ran before the key was tracked): four
        // tokens, sixteen owed.
        for _ in 0..20 {
            limiter.settle_at("a", false, true, t0);
        }
        assert_eq!(tokens(&limiter, "a"), Some(-16.0));
        // The next request runs once the debt is paid and a token is back: 17 at 2 a second.
        assert_eq!(limiter.reserve_at("a", t0), Err(9));
        let almost = t0 + Duration::from_millis(8_400);
        assert_eq!(limiter.reserve_at("a", almost), Err(1));
        let paid = t0 + Duration::from_millis(8_600);
        assert_eq!(limiter.reserve_at("a", paid), Ok(true));
        // At most DEBT_SECONDS of refill is owed.
        for _ in 0..10_000 {
            limiter.settle_at("b", false, true, t0);
        }
        assert_eq!(tokens(&limiter, "b"), Some(-DEBT_SECONDS * 2.0));
    }

    #[test]
    fn a_reservation_outlived_by_its_bucket_changes_nothing_but_its_failure() {
        let limiter = ByName::new(1, 2).unwrap();
        let t0 = Instant::now();
        limiter.settle_at("a", false, true, t0);
        assert_eq!(limiter.reserve_at("a", t0), Ok(true));
        // The bucket refills and is swept while the request runs.
        let later = t0 + Duration::from_secs(3);
        assert_eq!(limiter.take_at("other", later), Ok(()));
        assert_eq!(limiter.tracked(), 1);
        // Its success settles against nothing; its failure is charged to a new bucket.
        limiter.settle_at("a", true, false, later);
        assert_eq!(limiter.tracked(), 1);
        limiter.settle_at("a", true, true, later);
        assert_eq!(tokens(&limiter, "a"), Some(1.0));
    }

    #[test]
    fn full_buckets_are_swept_and_the_map_is_capped() {
        let limiter = ByName::with_capacity(2, 2, 3).unwrap();
        let t0 = Instant::now();
        for name in ["a", "b", "c"] {
            assert_eq!(limiter.take_at(name, t0), Ok(()));
        }
        assert_eq!(limiter.tracked(), 3);
        // Full map: new keys pass untracked, their failures are not counted, and the tracked
        // ones keep their state.
        for _ in 0..5 {
            assert_eq!(limiter.take_at("d", t0), Ok(()));
            limiter.settle_at("e", false, true, t0);
        }
        assert_eq!(limiter.reserve_at("e", t0), Ok(false));
        assert_eq!(limiter.take_at("a", t0), Ok(()));
        assert_eq!(limiter.take_at("a", t0), Err(1));
        assert_eq!(limiter.tracked(), 3);
        // After a quiet second every bucket is full again and swept, bar the one just used.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(limiter.take_at("d", later), Ok(()));
        assert_eq!(limiter.tracked(), 1);
    }
}
