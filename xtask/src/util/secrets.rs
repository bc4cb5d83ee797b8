//! Secrets: random, and written only to 0600 files.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Result;

/// `bytes` random bytes from the kernel, hex-encoded.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    fs::File::open("/dev/urandom")?.read_exact(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token a token file presents: its first non-empty line (during a
/// rotation the file holds the new token first and the old one after it).
pub fn read_token(path: &Path) -> Result<String> {
    let text =
        fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("{} holds no token", path.display()))
}

/// Writes `value` to `path`, created with mode 0600.
pub fn write_secret(path: &Path, value: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: set it.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    std::io::Write::write_all(&mut file, value.as_bytes())?;
    Ok(())
}
