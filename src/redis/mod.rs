//! The shared store (SPEC §9): what makes several instances, and `chatgate
//! export` beside them, behave as one gateway.
//!
//! One instance keeps its state in memory (moka, governor). Behind a load
//! balancer that is wrong in three ways: each instance grants a client its full
//! quota, each spends the vendor's quota as if alone, and each misses the cache
//! for what another already fetched. With `[redis] url = …`, that state lives
//! in Redis instead:
//! - [`gcra`]: client quotas and vendor quota guards, one atomic script per
//!   decision on Redis server time, with the in-memory limiter's numbers;
//! - [`pause`]: the vendor-429 pause, which only ever extends;
//! - [`cache`]: a second cache level behind moka, and a short lock so a miss
//!   everywhere makes one vendor call.
//!
//! Redis is a help, never a dependency: every operation is bounded by
//! `redis.timeout_ms`, and while Redis is down ([`health`]) operations are
//! skipped at once, so callers fall back to their in-memory state and requests
//! are still served. Without `[redis]`, none of this is built and Redis is never
//! touched.
//!
//! Keys are laid out in [`keys`]; settings are validated in [`settings`].

pub mod cache;
mod client;
pub mod gcra;
pub mod health;
pub mod keys;
pub mod pause;
pub mod settings;

pub use client::{NoMetrics, SharedStore, StoreError, StoreMetrics};
pub use settings::RedisSettings;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::cache::SecondLevel;
    use super::gcra::{self, GcraParams};
    use super::keys::EntryKeys;
    use super::*;

    /// Compiles only if every operation's future is `Send`, so spawned tasks
    /// (`chatgate export`'s workers, a background cache write) can await them.
    #[allow(dead_code)]
    fn operations_can_move_between_threads(
        store: &SharedStore,
        cache: &SecondLevel,
        keys: &EntryKeys,
        params: GcraParams,
    ) {
        fn send<T: Send>(_: T) {}
        let d = Duration::ZERO;
        send(store.ping());
        send(gcra::check(store, "k", params));
        send(gcra::acquire(store, "k", params, d));
        send(pause::extend(store, "k", d));
        send(pause::left(store, "k"));
        send(cache.get(keys));
        send(cache.put(keys, b"", d, d));
        send(cache.try_lock(keys, d));
        send(cache.wait_for(keys, d));
    }
}
