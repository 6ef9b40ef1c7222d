//! The persistent identity file: the 64 bytes (Ed25519 seed, then public
//! key) the C ABI's key store holds, written once with mode 0600.

use crate::error::CliError;
use moss::Identity;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The default identity file: `$MOSS_IDENTITY`, else
/// `$XDG_CONFIG_HOME/moss/identity.key`, else `~/.config/moss/identity.key`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOSS_IDENTITY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|p| !p.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("moss").join("identity.key"))
}

fn file_error(path: &Path, source: std::io::Error) -> CliError {
    CliError::File {
        path: path.display().to_string(),
        source,
    }
}

/// Reads the identity stored at `path`.
pub fn load(path: &Path) -> Result<Identity, CliError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    Identity::from_bytes(&bytes).map_err(|e| {
        CliError::Usage(format!(
            "{}: not a Moss identity file ({e}); it holds 64 bytes written by `moss id`",
            path.display()
        ))
    })
}

/// Loads the identity at `path`, creating it first if there is none.
/// Returns the identity and whether it was created.
pub fn load_or_create(path: &Path) -> Result<(Identity, bool), CliError> {
    if path.exists() {
        return Ok((load(path)?, false));
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| file_error(path, std::io::Error::other(e.to_string())))?;
    let id = Identity::from_seed(seed);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| file_error(path, e))?;
    f.write_all(&id.to_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| file_error(path, e))?;
    Ok((id, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded() {
        let dir = std::env::temp_dir().join(format!("moss-cli-id-{}", std::process::id()));
        let path = dir.join("sub").join("identity.key");
        let _ = std::fs::remove_dir_all(&dir);
        let (a, created) = load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(load(&path), Err(CliError::Usage(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
