//! Writes the generated CRDs to a directory (default `config/crd/bases`); `make crds` runs it.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "config/crd/bases".into()));
    std::fs::create_dir_all(&dir)?;
    for (name, content) in koperator_shared::crd::files() {
        std::fs::write(dir.join(&name), content)?;
        println!("wrote {}", dir.join(&name).display());
    }
    Ok(())
}
