//! Leases on names shared by every node: held in Redis across nodes, in
//! process otherwise. Needs the `lock` capability.
//!
//! **A lease is not a mutex.** A holder that pauses (a slow query, a network
//! stall, an overloaded node) can outlive its lease while another caller
//! takes the lock, so two holders may believe at once that they hold it. Every write a lease guards must therefore carry the
//! lease's [`fencing_token`](Lease::fencing_token), which strictly increases
//! per lock name, and the store must refuse a write whose token is older than
//! the last one it accepted. [`sql::fenced_write`](crate::sql::fenced_write)
//! does that for a row.
//!
//! ```no_run
//! use std::time::Duration;
//! use trellis_sdk::{lock, sql};
//!
//! # fn compute_report() -> trellis_sdk::Result<i64> { Ok(0) }
//! # fn run() -> trellis_sdk::Result<()> {
//! lock::with_lock("report", Duration::from_secs(10), Duration::from_secs(2), |lease| {
//!     let total = compute_report()?;
//!     sql::fenced_write("reports", "name", "daily".into(), &[("total", total.into())],
//!                       "fence", lease.fencing_token())?;
//!     Ok(())
//! })?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::bindings::trellis::plugin::lock as host;
pub use crate::bindings::trellis::plugin::lock::Error as LockError;
use crate::{Error, Result};

/// A held lock. Dropping it releases it (so does a trap of the instance);
/// [`Lease::release`] does it now and reports whether it was still held.
#[derive(Debug)]
pub struct Lease {
    raw: host::Lease,
}

/// Takes lock `name` for `ttl`, waiting up to `wait` for it (`Duration::ZERO`:
/// try once). Both are counted in whole milliseconds.
///
/// Errors: not free within `wait` is a 503 `lock_timeout`, an unreachable
/// lock store a 503 `lock_unavailable` (both with `retry-after: 1`); an empty
/// or over-long name, or a ttl of 0 or above the host's maximum, a 500
/// `lock_invalid`.
pub fn acquire(name: &str, ttl: Duration, wait: Duration) -> Result<Lease> {
    let raw = host::acquire(name, millis(ttl), millis(wait))?;
    Ok(Lease { raw })
}

/// Runs `f` holding lock `name` (see [`acquire`] for `ttl`, `wait` and the
/// errors), then releases it. `f` must pass the lease's fencing token to the
/// writes it makes: the lease may run out while `f` runs. The release's own
/// outcome is not reported (a lease that already ran out is what fencing is
/// for); `f`'s result is returned.
pub fn with_lock<T>(
    name: &str,
    ttl: Duration,
    wait: Duration,
    f: impl FnOnce(&Lease) -> Result<T>,
) -> Result<T> {
    let lease = acquire(name, ttl, wait)?;
    f(&lease)
}

impl Lease {
    /// The token to attach to guarded writes: it strictly increases per lock
    /// name and is never reused.
    pub fn fencing_token(&self) -> u64 {
        self.raw.fencing_token()
    }

    /// Milliseconds since the Unix epoch until which the lease is safe: the
    /// acquisition's start plus its ttl, minus a margin for clock drift.
    pub fn valid_until(&self) -> u64 {
        self.raw.valid_until()
    }

    /// Pushes the expiry to `ttl` from now; a 409 `lock_lost` if the lease
    /// already ran out or was taken over.
    pub fn extend(&self, ttl: Duration) -> Result<()> {
        Ok(self.raw.extend(millis(ttl))?)
    }

    /// Whether the lock store still records this lease as the holder.
    pub fn is_held(&self) -> Result<bool> {
        Ok(self.raw.is_held()?)
    }

    /// Releases the lock now; a 409 `lock_lost` if the lease had already run
    /// out or been taken over.
    pub fn release(self) -> Result<()> {
        Ok(self.raw.release()?)
    }
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// `?` on a lock error: a timeout or an unreachable lock store is a 503 with
/// `retry-after: 1` (`lock_timeout`, `lock_unavailable`), a lost lease a 409
/// (`lock_lost`), an invalid call a 500 (`lock_invalid`).
impl From<LockError> for Error {
    fn from(err: LockError) -> Self {
        match err {
            LockError::Timeout => Error::new(503, "lock: not free within the wait time")
                .with_code("lock_timeout")
                .with_header("retry-after", "1"),
            LockError::Lost => {
                Error::conflict("lock: the lease ran out or was taken over").with_code("lock_lost")
            }
            LockError::Unavailable(message) => Error::new(
                503,
                format!("lock: the lock store does not answer: {message}"),
            )
            .with_code("lock_unavailable")
            .with_header("retry-after", "1"),
            LockError::Invalid(message) => {
                Error::internal(format!("lock: invalid call: {message}")).with_code("lock_invalid")
            }
        }
    }
}
