//! File input and output: reading inputs with errors that name their path,
//! and writing export folders all or nothing.
//!
//! ## Contract
//! - Every error from this module names the path it is about.
//! - An export (blobs, test vectors, plots, report) only makes sense whole.
//!   [`ExportDir`] writes its files into a hidden staging folder beside the
//!   model folder, `<out>/.<name>.tmp-<pid>.<n>/`, fsyncs every file and the
//!   folder, then [`ExportDir::commit`] swaps the staging folder and the model
//!   folder in one step (`renameat2` with `RENAME_EXCHANGE` on Linux,
//!   `RENAME_SWAP` on macOS), so at every moment `<out>/<name>` is the old
//!   complete export or the new one, even if the process is killed. The old
//!   export, now in the staging folder, is then removed.
//! - Where the exchange is unavailable (other systems, some filesystems), the
//!   model folder is renamed aside to `<out>/.<name>.old-<pid>.<n>`, the
//!   staging folder renamed in, and the old one removed. A kill between the
//!   two renames leaves no model folder; [`recover`] puts the old one back.
//! - [`recover`] runs before every export of a model: it removes the staging
//!   and old folders of that model whose process is gone (a killed export),
//!   after restoring the old export if that window was hit.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Read a whole input file; `what` names it in errors ("dataset", "spec").
/// A missing file is "`what` not found: path", any other failure
/// "cannot read `what` path: reason".
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            anyhow::anyhow!("{what} not found: {}", path.display())
        } else {
            anyhow::anyhow!("cannot read {what} {}: {e}", path.display())
        }
    })
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    String::from_utf8(read(path, what)?)
        .map_err(|_| anyhow::anyhow!("cannot read {what} {}: not UTF-8 text", path.display()))
}

/// A temporary path beside `path` that no other writer uses:
/// `.<name>.<pid>.<counter>.tmp`. The pid separates processes, the counter
/// threads of this one; the leading dot hides it from casual listings.
pub(crate) fn temp_path_for(path: &Path) -> Result<PathBuf> {
    let Some(name) = path.file_name() else {
        bail!("{}: not a file path", path.display());
    };
    let temp_name = format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        next_counter()
    );
    Ok(path.with_file_name(temp_name))
}

fn next_counter() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// One export being written; see the module docs. Dropping it without
/// [`commit`](ExportDir::commit) removes the staging folder, leaving the old
/// export as it was.
#[derive(Debug)]
pub struct ExportDir {
    /// `<out>/<name>`.
    target: PathBuf,
    /// `<out>/.<name>.tmp-<pid>.<n>`.
    staging: PathBuf,
    /// `<out>/.<name>.old-<pid>.<n>`, used only by the fallback swap.
    aside: PathBuf,
    committed: bool,
}

impl ExportDir {
    /// Start an export of model `name` into `out_root` (created if needed).
    /// Call [`recover`] first. Fails, naming the path, when the output
    /// folder cannot be created or `<out>/<name>` is something else than a
    /// folder (it is left alone).
    pub fn create(out_root: &Path, name: &str) -> Result<ExportDir> {
        fs::create_dir_all(out_root)
            .with_context(|| format!("cannot create folder {}", out_root.display()))?;
        let target = out_root.join(name);
        if let Ok(meta) = fs::metadata(&target) {
            if !meta.is_dir() {
                bail!(
                    "cannot export into {}: it exists and is not a folder",
                    target.display()
                );
            }
        }
        let (pid, n) = (std::process::id(), next_counter());
        let staging = out_root.join(format!(".{name}.tmp-{pid}.{n}"));
        fs::create_dir(&staging)
            .with_context(|| format!("cannot create folder {}", staging.display()))?;
        Ok(ExportDir {
            target,
            staging,
            aside: out_root.join(format!(".{name}.old-{pid}.{n}")),
            committed: false,
        })
    }

    /// The model folder this export replaces when committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Write `file` of the export (synced to disk before the swap).
    pub fn write(&self, file: &str, bytes: &[u8]) -> Result<()> {
        let path = self.staging.join(file);
        // create_new: never follow or clobber something already there.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        test_pause();
        Ok(())
    }

    /// Let `draw` create `file` of the export at the path it is given (for
    /// writers that want a path, such as the plots), then sync it.
    pub fn render(&self, file: &str, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let path = self.staging.join(file);
        draw(&path)?;
        sync(&path)?;
        test_pause();
        Ok(())
    }

    /// Put the export in place of the model folder, in one step; see the
    /// module docs.
    pub fn commit(mut self) -> Result<()> {
        sync(&self.staging)?;
        let root = self.staging.parent().unwrap_or(Path::new("."));
        let replaced = swap_in(&self.staging, &self.target, &self.aside)?;
        self.committed = true;
        // Persists the swap; the old export is removed even if this fails.
        let synced = sync(root);
        test_pause();
        if let Some(old) = replaced {
            // A failure here leaves a stale folder that `recover` removes.
            if let Err(e) = fs::remove_dir_all(&old) {
                eprintln!(
                    "warning: cannot remove the previous export {}: {e}",
                    old.display()
                );
            }
        }
        synced
    }
}

impl Drop for ExportDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a failed export's own error is the one to report,
            // and `recover` removes what is left.
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Put the folder `staging` at `target`; returns where the replaced export
/// now is, if there was one.
fn swap_in(staging: &Path, target: &Path, aside: &Path) -> Result<Option<PathBuf>> {
    let failed = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot move {} to {}: {e}",
            staging.display(),
            target.display()
        )
    };
    match exchange(staging, target) {
        Exchange::Done => return Ok(Some(staging.to_path_buf())),
        Exchange::NoTarget => {
            fs::rename(staging, target).map_err(failed)?;
            return Ok(None);
        }
        Exchange::Failed(e) => return Err(failed(e)),
        Exchange::Unsupported => {}
    }
    swap_by_renames(staging, target, aside)
}

/// The fallback swap: `target` aside, `staging` in. A kill between the two
/// renames leaves `aside` without `target`, which [`recover`] undoes.
fn swap_by_renames(staging: &Path, target: &Path, aside: &Path) -> Result<Option<PathBuf>> {
    let had_old = match fs::rename(target, aside) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => bail!(
            "cannot move {} to {}: {e}",
            target.display(),
            aside.display()
        ),
    };
    if let Err(e) = fs::rename(staging, target) {
        if had_old {
            let _ = fs::rename(aside, target);
        }
        bail!(
            "cannot move {} to {}: {e}",
            staging.display(),
            target.display()
        );
    }
    Ok(had_old.then(|| aside.to_path_buf()))
}

enum Exchange {
    Done,
    /// `target` does not exist (nothing to exchange with).
    NoTarget,
    /// The system or filesystem cannot exchange atomically.
    Unsupported,
    Failed(std::io::Error),
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn exchange(a: &Path, b: &Path) -> Exchange {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Exchange::Done,
        Err(Errno::NOENT) => Exchange::NoTarget,
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => Exchange::Unsupported,
        Err(e) => Exchange::Failed(e.into()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn exchange(_: &Path, _: &Path) -> Exchange {
    Exchange::Unsupported
}

/// Undo what killed exports of model `name` left in `out_root`: restore the
/// old export if the fallback swap was cut between its renames, remove stale
/// staging and old folders (whose process is gone), and hidden temporary
/// files inside the model folder (per-file temporaries of older trainers).
/// Folders of a running export are left alone.
pub fn recover(out_root: &Path, name: &str) -> Result<()> {
    let entries = match fs::read_dir(out_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("cannot read folder {}: {e}", out_root.display()),
    };
    let (mut staged, mut aside) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read folder {}", out_root.display()))?;
        let file = entry.file_name();
        match leftover(&file.to_string_lossy(), name) {
            Some((Leftover::Staging, pid)) if !alive(pid) => staged.push(entry.path()),
            Some((Leftover::Aside, pid)) if !alive(pid) => aside.push(entry.path()),
            _ => {}
        }
    }
    let target = out_root.join(name);
    if fs::symlink_metadata(&target).is_err() {
        if let Some(old) = aside.pop() {
            fs::rename(&old, &target).with_context(|| {
                format!(
                    "cannot restore the previous export {} to {}",
                    old.display(),
                    target.display()
                )
            })?;
        }
    }
    for path in staged.iter().chain(&aside) {
        fs::remove_dir_all(path)
            .with_context(|| format!("cannot remove stale folder {}", path.display()))?;
    }
    if target.is_dir() {
        let entries = fs::read_dir(&target)
            .with_context(|| format!("cannot read folder {}", target.display()))?;
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            // The trainer writes no hidden files of its own into a model folder.
            if file.starts_with('.') && file.contains(".tmp") {
                fs::remove_file(entry.path()).with_context(|| {
                    format!("cannot remove stale file {}", entry.path().display())
                })?;
            }
        }
    }
    sync(out_root)
}

#[derive(Debug, PartialEq, Eq)]
enum Leftover {
    Staging,
    Aside,
}

/// Whether `file` is a staging (`.<name>.tmp-<pid>.<n>`) or aside
/// (`.<name>.old-<pid>.<n>`) folder of model `name`, and of which process.
fn leftover(file: &str, name: &str) -> Option<(Leftover, u32)> {
    let rest = file
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix('.')?;
    let (kind, rest) = match rest.strip_prefix("tmp-") {
        Some(rest) => (Leftover::Staging, rest),
        None => (Leftover::Aside, rest.strip_prefix("old-")?),
    };
    let (pid, n) = rest.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(pid) && digits(n)) {
        return None;
    }
    Some((kind, pid.parse().ok()?))
}

/// Whether process `pid` is running (this one included).
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    use rustix::process::{test_kill_process, Pid};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    // EPERM: it exists but belongs to someone else.
    !matches!(test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}

/// Without a way to ask, only this process counts as running.
#[cfg(not(unix))]
fn alive(pid: u32) -> bool {
    pid == std::process::id()
}

/// fsync a file or a folder (persists a folder's entries: new files and
/// renames). Folders cannot be opened on every platform; there the data is
/// synced file by file and this is skipped.
fn sync(path: &Path) -> Result<()> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(_) if path.is_dir() => return Ok(()),
        Err(e) => bail!("cannot open {}: {e}", path.display()),
    };
    match file.sync_all() {
        // Some systems refuse to fsync a folder opened read-only.
        Err(_) if path.is_dir() => Ok(()),
        result => result.with_context(|| format!("cannot sync {}", path.display())),
    }
}

/// Crash-test hook: with `TRAINER_TEST_EXPORT_DELAY_MS` set, pause after
/// each step of an export (every file, the swap) so that a test can kill the
/// process at a known step (`trainer/tests/export_crash.rs`).
fn test_pause() {
    static DELAY: OnceLock<Option<Duration>> = OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        let ms = std::env::var("TRAINER_TEST_EXPORT_DELAY_MS").ok()?;
        ms.parse().ok().map(Duration::from_millis)
    });
    if let Some(delay) = delay {
        std::thread::sleep(*delay);
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

    fn export(root: &Path, files: &[(&str, &[u8])]) -> Result<()> {
        let dir = ExportDir::create(root, "m")?;
        for (file, bytes) in files {
            dir.write(file, bytes)?;
        }
        dir.commit()
    }

    /// A pid no process has (above every system's pid limit).
    const DEAD: u32 = 4_194_305;

    #[test]
    fn an_export_replaces_the_whole_folder() {
        let root = tempfile::tempdir().unwrap();
        export(root.path(), &[("a.bin", b"first"), ("stale", b"x")]).unwrap();
        export(root.path(), &[("a.bin", b"second")]).unwrap();
        assert_eq!(entries(root.path()), ["m"], "no staging folder left");
        assert_eq!(entries(&root.path().join("m")), ["a.bin"], "old files gone");
        assert_eq!(fs::read(root.path().join("m/a.bin")).unwrap(), b"second");
    }

    #[test]
    fn a_dropped_export_leaves_the_old_one() {
        let root = tempfile::tempdir().unwrap();
        export(root.path(), &[("a.bin", b"first")]).unwrap();
        let dir = ExportDir::create(root.path(), "m").unwrap();
        dir.write("a.bin", b"second").unwrap();
        assert!(dir.write("a.bin", b"again").is_err(), "each file once");
        drop(dir);
        assert_eq!(entries(root.path()), ["m"]);
        assert_eq!(fs::read(root.path().join("m/a.bin")).unwrap(), b"first");
    }

    #[test]
    fn the_fallback_swap_replaces_and_restores() {
        let root = tempfile::tempdir().unwrap();
        let (staging, target, aside) = (
            root.path().join(".m.tmp-1.0"),
            root.path().join("m"),
            root.path().join(".m.old-1.0"),
        );
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("a.bin"), b"new").unwrap();
        // No old export: the staging folder is renamed in.
        assert_eq!(swap_by_renames(&staging, &target, &aside).unwrap(), None);
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("a.bin"), b"newer").unwrap();
        assert_eq!(
            swap_by_renames(&staging, &target, &aside).unwrap(),
            Some(aside.clone())
        );
        assert_eq!(fs::read(target.join("a.bin")).unwrap(), b"newer");
        assert_eq!(fs::read(aside.join("a.bin")).unwrap(), b"new");
    }

    #[test]
    fn recover_restores_an_export_cut_between_the_fallback_renames() {
        let root = tempfile::tempdir().unwrap();
        // A killed fallback swap: the old export aside, the new one staged, no model folder.
        let aside = root.path().join(format!(".m.old-{DEAD}.3"));
        let staging = root.path().join(format!(".m.tmp-{DEAD}.3"));
        for (dir, bytes) in [(&aside, b"old"), (&staging, b"new")] {
            fs::create_dir(dir).unwrap();
            fs::write(dir.join("a.bin"), bytes).unwrap();
        }
        recover(root.path(), "m").unwrap();
        assert_eq!(entries(root.path()), ["m"]);
        assert_eq!(fs::read(root.path().join("m/a.bin")).unwrap(), b"old");
    }

    #[test]
    fn recover_removes_only_stale_leftovers_of_its_model() {
        let root = tempfile::tempdir().unwrap();
        let own = std::process::id();
        for dir in [
            "m".to_string(),
            format!(".m.tmp-{DEAD}.0"),   // a killed export
            format!(".m.old-{DEAD}.1"),   // a killed fallback swap, after both renames
            format!(".m.tmp-{own}.7"),    // a running export (this process)
            format!(".mx.tmp-{DEAD}.0"),  // another model
            format!(".m.tmp-{DEAD}.x.0"), // not a trainer name
        ] {
            fs::create_dir(root.path().join(dir)).unwrap();
        }
        fs::write(root.path().join("m/a.bin"), b"kept").unwrap();
        fs::write(root.path().join("m/.loss.png.12.0.tmp.png"), b"").unwrap();
        fs::write(root.path().join("m/.a.bin.12.1.tmp"), b"").unwrap();
        recover(root.path(), "m").unwrap();
        let mut kept = vec![
            format!(".m.tmp-{DEAD}.x.0"),
            format!(".m.tmp-{own}.7"),
            format!(".mx.tmp-{DEAD}.0"),
            "m".to_string(),
        ];
        kept.sort();
        assert_eq!(entries(root.path()), kept);
        assert_eq!(entries(&root.path().join("m")), ["a.bin"]);
        recover(&root.path().join("absent"), "m").unwrap();
    }

    #[test]
    fn errors_name_the_path() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("file");
        fs::write(&file, b"x").unwrap();
        let message = format!("{:#}", ExportDir::create(&file, "m").unwrap_err());
        assert!(message.contains(&*file.to_string_lossy()), "{message}");
        let message = format!("{:#}", recover(&file, "m").unwrap_err());
        assert!(message.contains(&*file.to_string_lossy()), "{message}");
        let message = format!(
            "{:#}",
            read(&root.path().join("nope"), "dataset").unwrap_err()
        );
        assert!(message.starts_with("dataset not found: ") && message.ends_with("nope"));
        let message = format!("{:#}", read(root.path(), "dataset").unwrap_err());
        assert!(
            message.starts_with(&format!("cannot read dataset {}: ", root.path().display())),
            "{message}"
        );
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
