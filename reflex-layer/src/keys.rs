//! `Keyring`: the reflex layer's secret key, for everything that must be
//! stable but must not reveal its input: cache keys and rate-limit keys.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct Keyring {
    key: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl Keyring {
    pub fn new(key: Vec<u8>) -> Result<Self, String> {
        if key.len() < 16 {
            return Err("the reflex key must be at least 16 bytes".into());
        }
        Ok(Self { key: Arc::new(key) })
    }

    /// A key that lives as long as this process (caches are then per
    /// process). Fails rather than fall back to a guessable key.
    pub fn random() -> Result<Self, String> {
        let mut key = vec![0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut key))
            .map_err(|e| format!("cannot read a random reflex key from /dev/urandom: {e}"))?;
        Ok(Self { key: Arc::new(key) })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// HMAC-SHA256 of `parts`, concatenated with length prefixes.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return [0; 32];
        };
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Short hex tag of `value` for use in Redis keys.
    pub fn tag(&self, value: &[u8]) -> String {
        hex::encode(&self.mac(&[b"tag", value])[..16])
    }
}
