//! Fingerprints the trainer's and the runtime's source, so an export made by
//! different code is never mistaken for an up-to-date one.

use std::path::Path;

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            files.push(path);
        }
    }
}

fn main() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [manifest.join("src"), manifest.join("../runtime/src")] {
        println!("cargo:rerun-if-changed={}", dir.display());
        visit(&dir, &mut files);
    }
    files.sort();
    // Each file too, not only the folders: a folder alone has let a stale
    // fingerprint survive an edit in an incremental build.
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    // FNV-1a over relative paths and contents: stable across machines and checkouts.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in &files {
        let relative = file
            .strip_prefix(manifest)
            .unwrap_or(file)
            .to_string_lossy()
            .replace('\\', "/");
        for byte in relative
            .bytes()
            .chain(std::fs::read(file).unwrap_or_default())
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=TRAINER_SOURCE_FINGERPRINT={hash:016x}");
}
