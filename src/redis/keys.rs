//! The key layout in Redis: `{prefix}v1:{kind}:{hash}`.
//!
//! - `prefix` is `redis.key_prefix` (default `chatgate:`), so deployments and
//!   other applications can share a Redis;
//! - `v1` is the layout version: a change in what a value holds (the script's
//!   state, the cached body's format) bumps it, so instances of two releases
//!   running side by side during a rollout never read each other's values;
//! - `kind` says what the key is for (table below);
//! - `hash` is the first 128 bits of a SHA-256, in hex, over the identity the
//!   key stands for: a client name, a vendor account, a cache key. Never the
//!   identity in clear: a vendor account is identified by its API key, and
//!   anyone able to `SCAN` the Redis must not learn it (or which clients exist).
//!
//! | kind     | value                                | TTL                                   |
//! |----------|--------------------------------------|---------------------------------------|
//! | `client` | GCRA theoretical arrival time (µs)   | until the bucket is full again        |
//! | `vendor` | GCRA theoretical arrival time (µs)   | until the bucket is full again        |
//! | `pause`  | `1` (the TTL is the pause)           | the pause left                        |
//! | `cache`  | hash: body `b`, fresh-until `f` (ms) | fresh + stale-if-error window         |
//! | `lock`   | a random token of the holder         | the lock's lease (the fetch's bound)  |
//!
//! Every key expires: a key gone is the same state as a key never written (a
//! full bucket, no pause, a miss, no lock), so Redis never holds more than the
//! live state of the last few minutes.

use sha2::{Digest, Sha256};

/// The layout version in every key.
pub const LAYOUT_VERSION: &str = "v1";

/// Builds every key chatgate writes, from `redis.key_prefix`.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// The two keys of one cached answer: its body and the lock held by the one
/// caller fetching it. They share a hash, so one can be found from the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryKeys {
    /// `{prefix}v1:cache:{hash}`.
    pub body: String,
    /// `{prefix}v1:lock:{hash}`.
    pub lock: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The GCRA bucket of the client named `client`.
    pub fn client_limit(&self, client: &str) -> String {
        self.key("client", &digest("client", &[client.as_bytes()]))
    }

    /// The GCRA bucket of the quota guard of one vendor account, shared by
    /// every instance and by `chatgate export`.
    pub fn vendor_guard(&self, account: &VendorAccount<'_>) -> String {
        self.key("vendor", &account.digest())
    }

    /// The vendor-429 pause of one vendor account.
    pub fn vendor_pause(&self, account: &VendorAccount<'_>) -> String {
        self.key("pause", &account.digest())
    }

    /// The keys of the cached answer whose first-level cache key serializes to
    /// `canonical`. `canonical` must be stable across instances and releases
    /// with the same [`LAYOUT_VERSION`] (not `std::hash`, which is neither).
    pub fn cache_entry(&self, canonical: &[u8]) -> EntryKeys {
        let hash = digest("cache", &[canonical]);
        EntryKeys {
            body: self.key("cache", &hash),
            lock: self.key("lock", &hash),
        }
    }

    fn key(&self, kind: &str, hash: &str) -> String {
        format!("{}{LAYOUT_VERSION}:{kind}:{hash}", self.prefix)
    }
}

/// What a vendor's quota is counted against: the account behind an API key at
/// one API. Two provider entries with the same key share the vendor's quota,
/// so they share a guard and a pause.
#[derive(Clone, Copy)]
pub struct VendorAccount<'a> {
    /// The provider kind (`chatbase`, `chatzuri`, `chatling`).
    pub kind: &'a str,
    /// The API's base URL.
    pub base_url: &'a str,
    /// The vendor API key: hashed, never written.
    pub api_key: &'a str,
}

impl VendorAccount<'_> {
    fn digest(&self) -> String {
        digest(
            "vendor",
            &[
                self.kind.as_bytes(),
                self.base_url.as_bytes(),
                self.api_key.as_bytes(),
            ],
        )
    }
}

impl std::fmt::Debug for VendorAccount<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorAccount")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

/// 128 bits of SHA-256 over a domain and length-prefixed parts, so no two
/// different identities (or kinds) can produce the same input.
fn digest(domain: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(b"chatgate-redis-");
    h.update(LAYOUT_VERSION);
    h.update([0]);
    h.update(domain);
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: VendorAccount<'static> = VendorAccount {
        kind: "chatbase",
        base_url: "https://www.chatbase.co/api/v1",
        api_key: "sk-very-secret-vendor-key",
    };

    #[test]
    fn keys_have_prefix_version_kind_and_a_hash_only() {
        let keys = Keys::new("chatgate:");
        let client = keys.client_limit("acme-support");
        assert!(client.starts_with("chatgate:v1:client:"), "{client}");
        let hash = client.rsplit(':').next().unwrap();
        assert_eq!(hash.len(), 32);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!client.contains("acme"));

        for key in [keys.vendor_guard(&ACCOUNT), keys.vendor_pause(&ACCOUNT)] {
            assert!(!key.contains("secret"), "{key}");
            assert!(!key.contains("chatbase"), "{key}");
        }
        assert!(keys
            .vendor_guard(&ACCOUNT)
            .starts_with("chatgate:v1:vendor:"));
        assert!(keys
            .vendor_pause(&ACCOUNT)
            .starts_with("chatgate:v1:pause:"));
        assert!(!format!("{ACCOUNT:?}").contains("secret"));
    }

    #[test]
    fn identities_never_collide_across_kinds_or_part_boundaries() {
        let keys = Keys::new("p:");
        let a = VendorAccount {
            base_url: "https://x/ab",
            api_key: "c",
            ..ACCOUNT
        };
        let b = VendorAccount {
            base_url: "https://x/a",
            api_key: "bc",
            ..ACCOUNT
        };
        assert_ne!(keys.vendor_guard(&a), keys.vendor_guard(&b));
        let other_key = VendorAccount {
            api_key: "another",
            ..ACCOUNT
        };
        assert_ne!(keys.vendor_guard(&ACCOUNT), keys.vendor_guard(&other_key));

        let hash = |k: String| k.rsplit(':').next().unwrap().to_owned();
        assert_ne!(
            hash(keys.client_limit("x")),
            hash(keys.cache_entry(b"x").body)
        );
        let entry = keys.cache_entry(b"bot=support&page=1");
        assert_eq!(hash(entry.body.clone()), hash(entry.lock.clone()));
        assert!(entry.body.starts_with("p:v1:cache:"));
        assert!(entry.lock.starts_with("p:v1:lock:"));
    }

    /// Pinned: every instance and release with layout `v1` must compute the
    /// same key, or instances stop sharing state. Changing the hashing means
    /// bumping [`LAYOUT_VERSION`].
    #[test]
    fn the_key_of_an_identity_is_pinned_for_the_layout_version() {
        assert_eq!(
            Keys::new("a:").client_limit("c"),
            "a:v1:client:cce6276eff2ed887f430ced658833a56"
        );
    }
}
