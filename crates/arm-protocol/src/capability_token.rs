//! Short-lived, HMAC-SHA256-signed capability tokens for the executor arm.
//!
//! Format: `hex(claims JSON) "." hex(HMAC-SHA256(key, claims JSON))`. The
//! orchestrator signs one per step with the key it shares with the executor;
//! the executor verifies the signature, the expiry, the task and that the
//! requested command is among `commands`.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

/// The request header that carries the token.
pub const CAPABILITY_TOKEN_HEADER: &str = "x-octollm-capability";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityClaims {
    pub task_id: Uuid,
    /// Program names the holder may run (argv[0], no paths).
    pub commands: Vec<String>,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("capability token is malformed")]
    Malformed,
    #[error("capability token signature does not match")]
    BadSignature,
    #[error("capability token expired")]
    Expired,
    #[error("capability token was issued for another task")]
    WrongTask,
    #[error("command {0:?} is not granted by the capability token")]
    CommandNotGranted(String),
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

pub fn sign(key: &[u8], claims: &CapabilityClaims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut mac = mac(key);
    mac.update(&payload);
    format!(
        "{}.{}",
        hex::encode(&payload),
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks signature and expiry, and returns the claims.
pub fn verify(key: &[u8], token: &str, now: DateTime<Utc>) -> Result<CapabilityClaims, TokenError> {
    let (payload_hex, signature_hex) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = hex::decode(payload_hex).map_err(|_| TokenError::Malformed)?;
    let signature = hex::decode(signature_hex).map_err(|_| TokenError::Malformed)?;
    let mut mac = mac(key);
    mac.update(&payload);
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: CapabilityClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if now.timestamp() >= claims.expires_at {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

impl CapabilityClaims {
    /// Whether these claims let `task_id` run `command`.
    pub fn authorise(&self, task_id: Uuid, command: &str) -> Result<(), TokenError> {
        if self.task_id != task_id {
            return Err(TokenError::WrongTask);
        }
        if !self.commands.iter().any(|c| c == command) {
            return Err(TokenError::CommandNotGranted(command.to_owned()));
        }
        Ok(())
    }
}

/// Environment variable holding the shared signing key itself.
pub const KEY_ENV: &str = "OCTOLLM_CAPABILITY_KEY";
/// Environment variable naming a file that holds the shared signing key.
pub const KEY_FILE_ENV: &str = "OCTOLLM_CAPABILITY_KEY_FILE";
/// Shortest signing key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no capability key: set {KEY_FILE_ENV} (or {KEY_ENV})")]
    Missing,
    #[error("capability key file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("the capability key is shorter than {MIN_KEY_BYTES} bytes")]
    TooShort,
}

/// The shared signing key, read the same way by the orchestrator and the
/// executor: the file's contents (it wins) or the variable's value, with
/// surrounding whitespace trimmed, as bytes (no hex or base64 decoding).
pub fn load_key(inline: Option<&str>, file: Option<&std::path::Path>) -> Result<Vec<u8>, KeyError> {
    let text = match (file, inline) {
        (Some(path), _) => {
            std::fs::read_to_string(path).map_err(|source| KeyError::Unreadable {
                path: path.display().to_string(),
                source,
            })?
        }
        (None, Some(inline)) => inline.to_owned(),
        (None, None) => return Err(KeyError::Missing),
    };
    let key = text.trim().as_bytes().to_vec();
    if key.is_empty() {
        return Err(KeyError::Missing);
    }
    if key.len() < MIN_KEY_BYTES {
        return Err(KeyError::TooShort);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_trimmed_bytes_and_the_file_wins() {
        let path = std::env::temp_dir().join(format!("cap-key-{}", std::process::id()));
        std::fs::write(&path, "file-key-0123456789\n").unwrap();
        assert_eq!(
            load_key(Some("inline-key-0123456789"), Some(&path)).unwrap(),
            b"file-key-0123456789"
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            load_key(Some(" inline-key-0123456789 "), None).unwrap(),
            b"inline-key-0123456789"
        );
        assert!(matches!(load_key(None, None), Err(KeyError::Missing)));
        assert!(matches!(load_key(Some("  "), None), Err(KeyError::Missing)));
        assert!(matches!(
            load_key(Some("short"), None),
            Err(KeyError::TooShort)
        ));
        assert!(matches!(
            load_key(None, Some(&path)),
            Err(KeyError::Unreadable { .. })
        ));
    }

    fn claims(expires_at: i64) -> CapabilityClaims {
        CapabilityClaims {
            task_id: Uuid::nil(),
            commands: vec!["echo".into(), "ls".into()],
            expires_at,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let now = Utc::now();
        let token = sign(b"k1", &claims(now.timestamp() + 60));
        let got = verify(b"k1", &token, now).unwrap();
        assert_eq!(got, claims(now.timestamp() + 60));
        assert!(got.authorise(Uuid::nil(), "echo").is_ok());
        assert_eq!(
            got.authorise(Uuid::nil(), "rm"),
            Err(TokenError::CommandNotGranted("rm".into()))
        );
        assert_eq!(
            got.authorise(Uuid::max(), "echo"),
            Err(TokenError::WrongTask)
        );

        assert_eq!(verify(b"k2", &token, now), Err(TokenError::BadSignature));
        let expired = sign(b"k1", &claims(now.timestamp() - 1));
        assert_eq!(verify(b"k1", &expired, now), Err(TokenError::Expired));
        assert_eq!(verify(b"k1", "nodot", now), Err(TokenError::Malformed));
        assert_eq!(verify(b"k1", "zz.zz", now), Err(TokenError::Malformed));

        // A token whose claims were edited no longer verifies.
        let (_, sig) = token.split_once('.').unwrap();
        let mut forged = claims(now.timestamp() + 60);
        forged.commands.push("rm".into());
        let forged_token = format!(
            "{}.{sig}",
            hex::encode(serde_json::to_vec(&forged).unwrap())
        );
        assert_eq!(
            verify(b"k1", &forged_token, now),
            Err(TokenError::BadSignature)
        );
    }
}
