//! Where key and aggregate records live between calls. The enclave implements [`RecordStore`] on its
//! sealed store (records are encrypted and authenticated there); [`MemoryRecords`] serves tests.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

/// Why the record store could not complete an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordStoreError {
    pub message: String,
    /// The store holds as many records (of this kind) as it may: not a failure, and deleting
    /// frees room (the engine answers `StoreFull`).
    pub full: bool,
}

impl RecordStoreError {
    /// The store failed.
    pub fn failed(message: impl Into<String>) -> Self {
        RecordStoreError {
            message: message.into(),
            full: false,
        }
    }

    /// The store refused a new record: it is full.
    pub fn full(message: impl Into<String>) -> Self {
        RecordStoreError {
            message: message.into(),
            full: true,
        }
    }
}

impl fmt::Display for RecordStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RecordStoreError {}

const TOMBSTONE_MAGIC: &[u8; 5] = b"SGTB\x01";

/// The tombstone earlier versions of the engine wrote over a deleted record:
/// `"SGTB" || 0x01 || name`. Deletion now removes the record and takes its id out of the
/// owner's index (see `Engine::forget`); tombstones already in a store still mean "deleted".
/// Whether `record` is the tombstone of `name`. A tombstone of another name is refused.
pub(crate) fn is_tombstone(record: &[u8], name: &str) -> Result<bool, crate::Error> {
    match record.strip_prefix(&TOMBSTONE_MAGIC[..]) {
        None => Ok(false),
        Some(n) if n == name.as_bytes() => Ok(true),
        Some(_) => Err(crate::Error::InvalidRecord {
            kind: "tombstone",
            reason: "names another record",
        }),
    }
}

/// A store of named byte records. Names are short ASCII (`key/<hex>`, `keyinfo/<hex>`,
/// `agg/<hex>`, `owner/<hex>`); key records
/// contain secrets, so implementations must seal them and should zeroize buffers they own.
pub trait RecordStore: Send + Sync {
    /// Store `record` under `name`, replacing any previous record.
    fn put(&self, name: &str, record: &[u8]) -> Result<(), RecordStoreError>;
    /// The record under `name`, if any.
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, RecordStoreError>;
    /// Remove the record; `true` if it existed.
    fn delete(&self, name: &str) -> Result<bool, RecordStoreError>;
    /// Names that start with `prefix`, in ascending order.
    fn list(&self, prefix: &str) -> Result<Vec<String>, RecordStoreError>;
}

impl<V: RecordStore + ?Sized> RecordStore for Arc<V> {
    fn put(&self, name: &str, record: &[u8]) -> Result<(), RecordStoreError> {
        (**self).put(name, record)
    }
    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, RecordStoreError> {
        (**self).get(name)
    }
    fn delete(&self, name: &str) -> Result<bool, RecordStoreError> {
        (**self).delete(name)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, RecordStoreError> {
        (**self).list(prefix)
    }
}

/// An in-memory record store. Clones share the same records, so a test can build a second engine over
/// the first one's records to simulate a restart.
type Records = BTreeMap<String, Zeroizing<Vec<u8>>>;

#[derive(Clone, Default)]
pub struct MemoryRecords {
    records: Arc<Mutex<Records>>,
}

impl MemoryRecords {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Records>, RecordStoreError> {
        self.records
            .lock()
            .map_err(|_| RecordStoreError::failed("memory record store poisoned"))
    }
}

impl fmt::Debug for MemoryRecords {
    // Records hold secrets: show only how many there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.records.lock().map(|r| r.len()).unwrap_or(0);
        f.debug_struct("MemoryRecords")
            .field("records", &n)
            .finish()
    }
}

impl RecordStore for MemoryRecords {
    fn put(&self, name: &str, record: &[u8]) -> Result<(), RecordStoreError> {
        self.lock()?
            .insert(name.to_owned(), Zeroizing::new(record.to_vec()));
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, RecordStoreError> {
        Ok(self.lock()?.get(name).cloned())
    }

    fn delete(&self, name: &str) -> Result<bool, RecordStoreError> {
        Ok(self.lock()?.remove(name).is_some())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RecordStoreError> {
        Ok(self
            .lock()?
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_put_get_list_delete() {
        let v = MemoryRecords::new();
        v.put("key/01", b"a").unwrap();
        v.put("key/02", b"b").unwrap();
        v.put("agg/01", b"c").unwrap();
        assert_eq!(v.get("key/01").unwrap().unwrap().as_slice(), b"a");
        assert_eq!(v.list("key/").unwrap(), vec!["key/01", "key/02"]);
        assert!(v.delete("key/01").unwrap());
        assert!(!v.delete("key/01").unwrap());
        assert!(v.get("key/01").unwrap().is_none());
        let shared = v.clone();
        assert_eq!(shared.list("").unwrap(), vec!["agg/01", "key/02"]);
    }
}
