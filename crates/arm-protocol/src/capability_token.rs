//! Short-lived, HMAC-SHA256-signed capability tokens for the executor arm.
//!
//! Format: `hex(claims JSON) "." hex(HMAC-SHA256(key, claims JSON))`. The
//! orchestrator signs one per step with the key it shares with the executor;
//! the executor verifies the signature, the expiry, the task and the step,
//! that the requested command is among `commands` and that its arguments are
//! the ones signed, and runs each token once ([`UsedTokens`]).

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
    /// The plan step the token was signed for (`s2`).
    pub step_id: String,
    /// Program names the holder may run (argv[0], no paths).
    pub commands: Vec<String>,
    /// [`args_digest`] of the only arguments the token runs.
    pub args_sha256: String,
    /// Unique per token: the executor runs a token once.
    pub token_id: Uuid,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

/// SHA-256 (hex) of `args` as a JSON array: what a token binds.
pub fn args_digest(args: &[String]) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(args).unwrap_or_default();
    hex::encode(Sha256::digest(json))
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
    #[error("capability token was issued for another step")]
    WrongStep,
    #[error("capability token was issued for other arguments")]
    ArgsNotGranted,
    #[error("capability token was used before: a token runs one command once")]
    Replayed,
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
    /// Whether these claims let step `step_id` of `task_id` run `command`
    /// with `args`.
    pub fn authorise(
        &self,
        task_id: Uuid,
        step_id: &str,
        command: &str,
        args: &[String],
    ) -> Result<(), TokenError> {
        if self.task_id != task_id {
            return Err(TokenError::WrongTask);
        }
        if self.step_id != step_id {
            return Err(TokenError::WrongStep);
        }
        if !self.commands.iter().any(|c| c == command) {
            return Err(TokenError::CommandNotGranted(command.to_owned()));
        }
        if self.args_sha256 != args_digest(args) {
            return Err(TokenError::ArgsNotGranted);
        }
        Ok(())
    }
}

/// The tokens an executor has run, until they expire: a retry or a replay
/// of a token that already ran a command is refused, so a command runs at
/// most once per token on this instance. (Instances do not share this: a
/// failover to a twin after a lost answer can still run it there.)
#[derive(Default)]
pub struct UsedTokens {
    seen: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    expiry: std::collections::HashMap<Uuid, i64>,
    /// Expired entries are dropped when the map reaches this size, which
    /// then doubles what is left (at least 1,024): amortised O(1) a use.
    sweep_at: usize,
}

impl UsedTokens {
    /// Records `claims`' token; `Replayed` if it was recorded before. The
    /// map holds about the tokens of one time-to-live.
    pub fn first_use(
        &self,
        claims: &CapabilityClaims,
        now: DateTime<Utc>,
    ) -> Result<(), TokenError> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.expiry.len() >= seen.sweep_at {
            seen.expiry
                .retain(|_, expires_at| *expires_at > now.timestamp());
            seen.sweep_at = (2 * seen.expiry.len()).max(1024);
        }
        match seen.expiry.insert(claims.token_id, claims.expires_at) {
            Some(_) => Err(TokenError::Replayed),
            None => Ok(()),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().map(|s| s.expiry.len()).unwrap_or_default()
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
            step_id: "s2".into(),
            commands: vec!["echo".into(), "ls".into()],
            args_sha256: args_digest(&["hi".into()]),
            token_id: Uuid::nil(),
            expires_at,
        }
    }

    #[test]
    fn a_token_runs_its_step_and_arguments_only() {
        let got = claims(0);
        let hi = ["hi".to_owned()];
        assert!(got.authorise(Uuid::nil(), "s2", "echo", &hi).is_ok());
        assert_eq!(
            got.authorise(Uuid::nil(), "s3", "echo", &hi),
            Err(TokenError::WrongStep)
        );
        for other in [
            vec![],
            vec!["hi".to_owned(), "there".to_owned()],
            vec!["ho".to_owned()],
        ] {
            assert_eq!(
                got.authorise(Uuid::nil(), "s2", "echo", &other),
                Err(TokenError::ArgsNotGranted),
                "{other:?}"
            );
        }
    }

    #[test]
    fn a_token_runs_once_and_expired_ones_are_forgotten() {
        let now = Utc::now();
        let used = UsedTokens::default();
        let once = CapabilityClaims {
            token_id: Uuid::now_v7(),
            ..claims(now.timestamp() + 60)
        };
        assert_eq!(used.first_use(&once, now), Ok(()));
        assert_eq!(used.first_use(&once, now), Err(TokenError::Replayed));
        // Two thousand tokens that expired are swept as new ones arrive;
        // the live one stays remembered.
        for _ in 0..2000 {
            let old = CapabilityClaims {
                token_id: Uuid::now_v7(),
                ..claims(now.timestamp() - 1)
            };
            used.first_use(&old, now).unwrap();
        }
        assert!(used.len() < 1100, "{}", used.len());
        assert_eq!(used.first_use(&once, now), Err(TokenError::Replayed));
    }

    #[test]
    fn round_trip_and_refusals() {
        let now = Utc::now();
        let token = sign(b"k1", &claims(now.timestamp() + 60));
        let got = verify(b"k1", &token, now).unwrap();
        assert_eq!(got, claims(now.timestamp() + 60));
        let hi = ["hi".to_owned()];
        assert!(got.authorise(Uuid::nil(), "s2", "echo", &hi).is_ok());
        assert_eq!(
            got.authorise(Uuid::nil(), "s2", "rm", &hi),
            Err(TokenError::CommandNotGranted("rm".into()))
        );
        assert_eq!(
            got.authorise(Uuid::max(), "s2", "echo", &hi),
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
