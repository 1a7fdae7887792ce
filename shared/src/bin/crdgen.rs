//! Writes the generated CRDs: `crdgen [KUSTOMIZE_DIR [CHART_CRDS_DIR]]`, by default
//! `config/crd/bases` (with its kustomization) and `charts/koperator/crds` (CRDs only, as helm
//! wants them). `make crds` runs it.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let kustomize = PathBuf::from(args.next().unwrap_or_else(|| "config/crd/bases".into()));
    let chart = PathBuf::from(args.next().unwrap_or_else(|| "charts/koperator/crds".into()));
    for (dir, files) in [(kustomize, koperator_shared::crd::files()), (chart, koperator_shared::crd::chart_files())] {
        std::fs::create_dir_all(&dir)?;
        for (name, content) in files {
            std::fs::write(dir.join(&name), content)?;
            println!("wrote {}", dir.join(&name).display());
        }
    }
    Ok(())
}
