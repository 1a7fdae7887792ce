//! Where the e2e tools live and how to find them.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// The cache directory (`$KOP_E2E_CACHE`, default `<repo>/.cache/e2e`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KOP_E2E_CACHE").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".cache").join("e2e"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ is inside the repository").to_path_buf()
}

/// The path of a tool built by `make e2e-deps`, or a clear error saying how to get it.
pub fn tool(name: &str) -> Result<PathBuf> {
    let path = cache_dir().join("bin").join(name);
    if !path.is_file() {
        bail!(
            "{name} not found at {}: run `make e2e-deps` (e2e/scripts/install-deps.sh) to build the e2e tools",
            path.display()
        );
    }
    Ok(path)
}
