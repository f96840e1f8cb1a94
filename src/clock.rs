//! The gateway's clock: seconds since the epoch, injected wherever time decides something
//! (token expiry and skew, session ends and renewals, the JWKS refetch limit), so that
//! tests move it instead of sleeping.
//!
//! A build with the cargo feature `test-clock` (the tests' build, never a release) adds an
//! offset that the admin listener's `POST /test/clock?advance=<seconds>` moves forward.

use std::sync::Arc;

/// Seconds since the epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock (moved by the tests' offset in a `test-clock` build).
pub fn system_clock() -> Clock {
    Arc::new(now)
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    real + offset()
}

#[cfg(feature = "test-clock")]
static OFFSET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(feature = "test-clock")]
fn offset() -> u64 {
    OFFSET.load(std::sync::atomic::Ordering::SeqCst)
}

#[cfg(not(feature = "test-clock"))]
fn offset() -> u64 {
    0
}

/// Moves the clock `seconds` forward (tests only); returns the new offset.
#[cfg(feature = "test-clock")]
pub fn advance(seconds: u64) -> u64 {
    OFFSET.fetch_add(seconds, std::sync::atomic::Ordering::SeqCst) + seconds
}
