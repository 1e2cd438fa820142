//! Tokens the gateway has already verified, remembered until they expire:
//! a client sends the same token on every request, and checking it again
//! (base64, JSON, HMAC) each time is work the gateway does per request for
//! nothing. Only tokens that verified are kept, so a forged, expired or
//! foreign token always meets the full check. An entry is found by a keyed
//! hash of the token (the key is random per process) and matched by a
//! constant-time comparison of the whole token, so a lookup tells a caller
//! nothing about how much of a remembered token its guess shares. An entry
//! is used only strictly before the token's `exp` (the full check's
//! leeway is not extended), and the cache holds at most `capacity` tokens.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use subtle::ConstantTimeEq;

/// Verified tokens and what the gateway derived from each.
pub struct Verified<T> {
    hasher: RandomState,
    capacity: usize,
    entries: Mutex<HashMap<u64, Entry<T>>>,
}

struct Entry<T> {
    token: Box<str>,
    exp: u64,
    value: T,
}

impl<T: Clone> Verified<T> {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: usize) -> Verified<T> {
        Verified { hasher: RandomState::new(), capacity: capacity.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// What was derived from `token` when it verified, if it is remembered
    /// and `now` (seconds since the epoch) is before its `exp`.
    pub fn get(&self, token: &str, now: u64) -> Option<T> {
        let key = self.hasher.hash_one(token);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(&key)?;
        let same: bool = entry.token.as_bytes().ct_eq(token.as_bytes()).into();
        (same && now < entry.exp).then(|| entry.value.clone())
    }

    /// Remembers `value` for `token`, which verified and expires at `exp`.
    /// When full, expired entries go first; when all are live, it starts over
    /// (each of them is verified once more, never trusted longer).
    pub fn insert(&self, token: &str, exp: u64, value: T, now: u64) {
        if now >= exp {
            return;
        }
        let key = self.hasher.hash_one(token);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| now < e.exp);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, Entry { token: token.into(), exp, value });
    }

    /// How many tokens are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_token_is_used_only_before_it_expires() {
        let cache = Verified::new(8);
        cache.insert("a.b.c", 100, "user1", 10);
        assert_eq!(cache.get("a.b.c", 99), Some("user1"));
        assert_eq!(cache.get("a.b.c", 100), None, "not at exp");
        assert_eq!(cache.get("a.b.d", 50), None, "another signature is another token");
        assert_eq!(cache.get("a.b.", 50), None);
        cache.insert("x.y.z", 5, "user2", 10);
        assert_eq!((cache.get("x.y.z", 4), cache.len()), (None, 1), "an expired token is not remembered");
    }

    #[test]
    fn it_holds_at_most_its_capacity() {
        let cache = Verified::new(3);
        for i in 0..3 {
            cache.insert(&format!("t{i}"), if i == 0 { 20 } else { 100 }, i, 10);
        }
        cache.insert("t3", 100, 3, 30);
        assert_eq!(cache.len(), 3, "the expired t0 made room");
        assert_eq!((cache.get("t0", 30), cache.get("t3", 30)), (None, Some(3)));
        cache.insert("t4", 100, 4, 30);
        assert!(cache.len() <= 3);
        assert_eq!(cache.get("t4", 30), Some(4));
    }
}
