//! Small files the server owns next to the logs (the trending registry, imported category
//! trends, engine snapshots), replaced atomically.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never a mix:
/// write a temporary file beside it, fsync it, rename it over `path`, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory)?;
    let mut temporary_name = path.as_os_str().to_owned();
    temporary_name.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary_name);
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(directory)?.sync_all()
}
