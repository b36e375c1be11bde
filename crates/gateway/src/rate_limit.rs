//! The per-instance request rate limit at the public edge: one token bucket per instance name.
//!
//! A bucket holds up to one second's worth of requests (`rate` tokens) and refills at `rate`
//! tokens a second, so an instance may burst to its rate and then sustain it. A bucket that has
//! refilled completely behaves exactly like a missing one, so it is dropped by a periodic sweep:
//! memory follows the instances active in the last second, and never exceeds [`MAX_TRACKED`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most instances tracked at once. Past it (only a flood of distinct names within about a
/// second gets there) new names pass untracked until a sweep frees room: failing open keeps one
/// tenant's flood from throttling the others, and a name that nobody tracks was not yet busy.
pub(crate) const MAX_TRACKED: usize = 100_000;

/// How often idle buckets are swept out; a sweep is one pass over the map.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Token buckets keyed by lower-cased instance name.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    buckets: Mutex<Buckets>,
    max_tracked: usize,
}

#[derive(Debug)]
struct Buckets {
    by_instance: HashMap<String, Bucket>,
    last_sweep: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// Refills for the time passed since the last update, up to one second's worth (`rate`).
    fn refill(&mut self, now: Instant, rate: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.updated = now;
    }
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests a second per instance; `None` when 0 (off).
    pub(crate) fn new(per_second: u32) -> Option<Self> {
        Self::with_capacity(per_second, MAX_TRACKED)
    }

    fn with_capacity(per_second: u32, max_tracked: usize) -> Option<Self> {
        (per_second > 0).then(|| Self {
            rate: f64::from(per_second),
            buckets: Mutex::new(Buckets {
                by_instance: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            max_tracked,
        })
    }

    /// Takes one request from `instance`'s bucket. When it is empty, returns the whole seconds
    /// (at least 1) until the next request would be allowed.
    pub(crate) fn check(&self, instance: &str) -> Result<(), u64> {
        self.check_at(instance, Instant::now())
    }

    fn check_at(&self, instance: &str, now: Instant) -> Result<(), u64> {
        // The lock is held for a map look-up (and, once a second, a sweep): never across I/O.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(buckets.last_sweep) >= SWEEP_EVERY {
            buckets.sweep(now, self.rate);
        }
        let by_instance = &mut buckets.by_instance;
        if !by_instance.contains_key(instance) {
            if by_instance.len() >= self.max_tracked {
                return Ok(());
            }
            let full = Bucket {
                tokens: self.rate,
                updated: now,
            };
            by_instance.insert(instance.to_owned(), full);
        }
        let Some(bucket) = by_instance.get_mut(instance) else {
            return Ok(());
        };
        bucket.refill(now, self.rate);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            // `as` saturates; wait is at most 1 s since rate >= 1.
            Err((wait.ceil() as u64).max(1))
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.by_instance.len()
    }
}

impl Buckets {
    /// Drops the buckets that are full again: they hold no state worth keeping.
    fn sweep(&mut self, now: Instant, rate: f64) {
        self.by_instance.retain(|_, bucket| {
            bucket.refill(now, rate);
            bucket.tokens < rate
        });
        self.last_sweep = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_turns_it_off() {
        assert!(RateLimiter::new(0).is_none());
    }

    #[test]
    fn allows_the_rate_then_throttles_then_refills() {
        let limiter = RateLimiter::new(3).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("a", t0), Ok(()));
        }
        assert_eq!(limiter.check_at("a", t0), Err(1));
        // Another instance has its own bucket.
        assert_eq!(limiter.check_at("b", t0), Ok(()));
        // A third of a second refills one token at 3/s.
        let later = t0 + Duration::from_millis(340);
        assert_eq!(limiter.check_at("a", later), Ok(()));
        assert_eq!(limiter.check_at("a", later), Err(1));
    }

    #[test]
    fn idle_buckets_are_swept_and_the_map_is_capped() {
        let limiter = RateLimiter::with_capacity(2, 3).unwrap();
        let t0 = Instant::now();
        for name in ["a", "b", "c"] {
            assert_eq!(limiter.check_at(name, t0), Ok(()));
        }
        assert_eq!(limiter.tracked(), 3);
        // Full map: a new name passes untracked, the tracked ones keep their state.
        for _ in 0..5 {
            assert_eq!(limiter.check_at("d", t0), Ok(()));
        }
        assert_eq!(limiter.check_at("a", t0), Ok(()));
        assert_eq!(limiter.check_at("a", t0), Err(1));
        assert_eq!(limiter.tracked(), 3);
        // After a quiet second every bucket is full again and swept, bar the one just used.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(limiter.check_at("d", later), Ok(()));
        assert_eq!(limiter.tracked(), 1);
    }
}
