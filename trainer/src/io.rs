//! Atomic file output.
//!
//! Every artifact (blobs, test vectors, reports, plots) is written with
//! [`write_atomic`], so a crash or a full disk never leaves a truncated file
//! under the real name: readers see the old file or the complete new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Write `bytes` to `path` atomically: create the parent folders, write a
/// temporary file next to the target (same filesystem, so the rename is
/// atomic), fsync it, then rename it over the target. On any error the
/// temporary file is removed and the target is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path_for(path)?;
    if let Some(dir) = temp.parent() {
        fs::create_dir_all(dir)?;
    }
    let result = write_and_sync(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&temp);
        return result;
    }
    sync_parent_dir(path);
    Ok(())
}

/// A temporary path beside `path` that no other writer uses:
/// `.<name>.<pid>.<counter>.tmp`. The pid separates processes, the counter
/// threads of this one; the leading dot hides it from casual listings.
pub(crate) fn temp_path_for(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp_name = format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        n
    );
    Ok(path.with_file_name(temp_name))
}

fn write_and_sync(temp: &Path, bytes: &[u8]) -> io::Result<()> {
    // create_new: never follow or clobber something already at the temp path.
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Persist the rename itself (the directory entry). Best effort: not every
/// platform can open a directory, and the data is already safe on disk.
fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn content_lands_and_replaces_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/model.bin");
        write_atomic(&path, b"first version, longer").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(
            entries(path.parent().unwrap()),
            ["model.bin"],
            "no temp file left"
        );
    }

    #[test]
    fn failed_write_leaves_no_temp_file_and_keeps_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("report.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"x").unwrap();
        // Renaming a file over a non-empty directory fails after the temp file is written.
        assert!(write_atomic(&target, b"data").is_err());
        assert_eq!(entries(dir.path()), ["report.json"]);
        assert_eq!(entries(&target), ["keep"]);
    }

    #[test]
    fn temp_names_are_unique_hidden_and_beside_the_target() {
        let a = temp_path_for(Path::new("out/m.bin")).unwrap();
        let b = temp_path_for(Path::new("out/m.bin")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("out")));
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".m.bin.") && name.ends_with(".tmp"),
            "{name}"
        );
        assert!(temp_path_for(Path::new("/")).is_err());
    }
}
