//! A bounded cache of verified CA chains (the pinned root and the `cabundle` certificates,
//! everything but the leaf), so a fresh document from a known host costs only the checks that
//! depend on it: the leaf's signature by its issuer and the COSE signature by the leaf.
//!
//! Threats, and what answers them:
//!
//! * A hostile parent (or peer) sends many distinct chains to grow memory or to flush useful
//!   entries: the cache holds at most [`MAX_CAPACITY`] entries (of at most
//!   `MAX_CABUNDLE_ENTRIES` certificates of at most `MAX_CERT_BYTES` each) and evicts the least
//!   recently used. A chain is inserted only once a document under it verified in full: a
//!   chain's bytes are malleable without breaking its signatures (ECDSA's `(r, n - s)`, parser
//!   leniency outside the signed parts), so anyone could mint new chains that validate, but
//!   not new documents signed under them. Flushing only costs time (the next document is
//!   verified in full), never correctness.
//! * A chain that verified once must not let an expired (or not yet valid) CA through later:
//!   an entry holds each CA's validity window, not a verdict, and every verification checks it
//!   against the policy's time. Everything else about a CA (algorithms, names, signatures,
//!   extensions, path length) does not depend on the time or the document, so it is what is
//!   cached.
//! * A near-identical chain (one byte changed, a re-encoded signature) must not hit: entries
//!   are keyed by the certificates' exact bytes, compared in full (no digest to trust).
//! * A chain verified under one trust setting must not satisfy another: the key includes the
//!   pinned root and `trust_test_root`, and the root pin is checked before any lookup.
//! * Failures are never cached (not even a valid chain under a document that failed), so a
//!   hit can only skip work that succeeded before; a miss takes the full path, so every error
//!   is the one the uncached verifier reports.

use std::sync::{Arc, Mutex};

use crate::chain::CaFacts;
use crate::verify::TrustedRoot;

/// Entries of the process-wide cache [`ChainCache::global`]: a verifier rarely talks to more
/// than a few hosts at once, and each entry is at most ~9 KiB.
pub const DEFAULT_CAPACITY: usize = 32;

/// Largest capacity [`ChainCache::new`] accepts (larger requests are clamped): ~2.3 MiB at most.
pub const MAX_CAPACITY: usize = 256;

/// One verified CA chain: its exact certificates (the key) and what validating it established.
#[derive(Debug)]
pub(crate) struct Entry {
    trust_test_root: bool,
    cabundle: Vec<Vec<u8>>,
    pub(crate) facts: CaFacts,
}

impl Entry {
    fn matches(&self, root: TrustedRoot, trust_test_root: bool, cabundle: &[Vec<u8>]) -> bool {
        // The last CA (the host's own) differs most between chains: compare from the end so a
        // miss usually stops at the first certificate.
        self.facts.root == root
            && self.trust_test_root == trust_test_root
            && self.cabundle.len() == cabundle.len()
            && self
                .cabundle
                .iter()
                .rev()
                .zip(cabundle.iter().rev())
                .all(|(a, b)| a == b)
    }
}

#[derive(Debug)]
struct Inner {
    /// Most recently used first.
    entries: Vec<Arc<Entry>>,
    hits: u64,
    misses: u64,
}

/// A bounded, thread-safe cache of verified CA chains. [`crate::verify`] uses
/// [`ChainCache::global`]; [`crate::verify::verify_with`] takes any cache, or none.
#[derive(Debug)]
pub struct ChainCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

static GLOBAL: ChainCache = ChainCache::new(DEFAULT_CAPACITY);

/// Counters of one cache, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries held now.
    pub entries: usize,
    /// Lookups that found their chain.
    pub hits: u64,
    /// Lookups that did not (the chain was then validated in full).
    pub misses: u64,
}

impl ChainCache {
    /// An empty cache of `capacity` entries, clamped to `1..=MAX_CAPACITY`.
    pub const fn new(capacity: usize) -> Self {
        let capacity = if capacity == 0 {
            1
        } else if capacity > MAX_CAPACITY {
            MAX_CAPACITY
        } else {
            capacity
        };
        Self {
            capacity,
            inner: Mutex::new(Inner {
                entries: Vec::new(),
                hits: 0,
                misses: 0,
            }),
        }
    }

    /// The process-wide cache [`crate::verify`] uses, of [`DEFAULT_CAPACITY`] entries.
    pub fn global() -> &'static ChainCache {
        &GLOBAL
    }

    /// The most entries this cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held and lookups counted so far.
    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            entries: inner.entries.len(),
            hits: inner.hits,
            misses: inner.misses,
        }
    }

    /// Drops every entry (the counters are kept).
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Every update leaves `Inner` consistent (no step can panic half-way), so a lock poisoned
    /// by a panic elsewhere in the holder's thread still guards a usable value.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for exactly these certificates under this trust setting, if one was verified.
    /// The entry is shared out, so the lock is not held while the caller verifies the leaf.
    pub(crate) fn get(
        &self,
        root: TrustedRoot,
        trust_test_root: bool,
        cabundle: &[Vec<u8>],
    ) -> Option<Arc<Entry>> {
        let mut inner = self.lock();
        let found = inner
            .entries
            .iter()
            .position(|e| e.matches(root, trust_test_root, cabundle));
        match found {
            Some(i) => {
                inner.hits = inner.hits.saturating_add(1);
                // Move to the front: the least recently used entry is the one evicted.
                let entry = inner.entries.remove(i);
                inner.entries.insert(0, Arc::clone(&entry));
                Some(entry)
            }
            None => {
                inner.misses = inner.misses.saturating_add(1);
                None
            }
        }
    }

    /// Records a chain that validated in full, under a document that verified in full (only
    /// [`crate::verify::verify_with`] calls it, last).
    pub(crate) fn insert(&self, trust_test_root: bool, cabundle: &[Vec<u8>], facts: CaFacts) {
        let root = facts.root;
        let mut inner = self.lock();
        // Two threads may have validated the same chain at once: keep one copy.
        if let Some(i) = inner
            .entries
            .iter()
            .position(|e| e.matches(root, trust_test_root, cabundle))
        {
            let entry = inner.entries.remove(i);
            inner.entries.insert(0, entry);
            return;
        }
        inner.entries.truncate(self.capacity.saturating_sub(1));
        inner.entries.insert(
            0,
            Arc::new(Entry {
                trust_test_root,
                cabundle: cabundle.to_vec(),
                facts,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(root: TrustedRoot) -> CaFacts {
        CaFacts::for_tests(root)
    }

    fn bundle(n: u8) -> Vec<Vec<u8>> {
        vec![vec![1, 2, 3], vec![n; 10]]
    }

    #[test]
    fn bounded_with_lru_eviction() {
        let cache = ChainCache::new(4);
        for n in 0..100u8 {
            cache.insert(false, &bundle(n), facts(TrustedRoot::AwsNitroRootG1));
            assert!(cache.stats().entries <= 4);
        }
        assert_eq!(cache.stats().entries, 4);
        // 96..=99 are held; touching 96 makes 97 the oldest.
        assert!(
            cache
                .get(TrustedRoot::AwsNitroRootG1, false, &bundle(96))
                .is_some()
        );
        cache.insert(false, &bundle(200), facts(TrustedRoot::AwsNitroRootG1));
        assert!(
            cache
                .get(TrustedRoot::AwsNitroRootG1, false, &bundle(97))
                .is_none()
        );
        assert!(
            cache
                .get(TrustedRoot::AwsNitroRootG1, false, &bundle(96))
                .is_some()
        );
        assert_eq!(cache.stats().entries, 4);
    }

    #[test]
    fn duplicate_insert_keeps_one_entry() {
        let cache = ChainCache::new(8);
        for _ in 0..3 {
            cache.insert(false, &bundle(1), facts(TrustedRoot::AwsNitroRootG1));
        }
        assert_eq!(cache.stats().entries, 1);
    }

    #[test]
    fn key_is_exact_bytes_trust_setting_and_root() {
        let cache = ChainCache::new(8);
        cache.insert(false, &bundle(1), facts(TrustedRoot::AwsNitroRootG1));
        let root = TrustedRoot::AwsNitroRootG1;
        assert!(cache.get(root, false, &bundle(1)).is_some());
        assert!(cache.get(root, true, &bundle(1)).is_none());
        assert!(
            cache
                .get(TrustedRoot::SigilTestRoot, false, &bundle(1))
                .is_none()
        );
        let mut b = bundle(1);
        b[1][9] ^= 1;
        assert!(cache.get(root, false, &b).is_none());
        b[1][9] ^= 1;
        b[1].push(0);
        assert!(cache.get(root, false, &b).is_none());
        assert!(cache.get(root, false, &bundle(1)[..1]).is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 5));
    }

    #[test]
    fn capacity_is_clamped() {
        assert_eq!(ChainCache::new(0).capacity(), 1);
        assert_eq!(ChainCache::new(usize::MAX).capacity(), MAX_CAPACITY);
        assert_eq!(ChainCache::global().capacity(), DEFAULT_CAPACITY);
    }

    #[test]
    fn poisoned_lock_is_still_usable() {
        let cache = Arc::new(ChainCache::new(2));
        let c = Arc::clone(&cache);
        let _ = std::thread::spawn(move || {
            let _guard = c.inner.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(cache.inner.is_poisoned());
        cache.insert(false, &bundle(1), facts(TrustedRoot::AwsNitroRootG1));
        assert!(
            cache
                .get(TrustedRoot::AwsNitroRootG1, false, &bundle(1))
                .is_some()
        );
    }
}
