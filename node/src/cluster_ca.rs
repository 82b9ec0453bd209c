//! `weir cluster ca`: makes the cluster CA that nodes of a cluster trust each other by.

use std::path::Path;
use std::process::ExitCode;

/// Writes `ca.pem` and `ca.key` into `dir` (created if missing); refuses to overwrite either, as
/// a new CA would cut every node holding the old one off the cluster. The key is readable by its
/// owner only.
pub fn make_ca(dir: &Path) -> ExitCode {
    match write_ca(dir) {
        Ok(()) => {
            println!("weir: cluster CA written to {} (ca.pem, ca.key)", dir.display());
            println!("weir: give every node both files (cluster_ca_cert, cluster_ca_key)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weir: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_ca(dir: &Path) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (cert, key) = weir_cluster::tls::generate_ca().map_err(|e| e.to_string())?;
    for (name, text, mode) in [("ca.key", key, 0o600), ("ca.pem", cert, 0o644)] {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
