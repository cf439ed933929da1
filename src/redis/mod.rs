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
//! - `cache` (to come): a second cache level behind moka, and a short lock so a miss
//!   everywhere makes one vendor call.
//!
//! Redis is a help, never a dependency: every operation is bounded by
//! `redis.timeout_ms`, and while Redis is down ([`health`]) operations are
//! skipped at once, so callers fall back to their in-memory state and requests
//! are still served. Without `[redis]`, none of this is built and Redis is never
//! touched.
//!
//! Keys are laid out in [`keys`]; settings are validated in [`settings`].

mod client;
pub mod gcra;
pub mod health;
pub mod keys;
pub mod pause;
pub mod settings;

pub use client::{NoMetrics, SharedStore, StoreError, StoreMetrics};
pub use settings::RedisSettings;
