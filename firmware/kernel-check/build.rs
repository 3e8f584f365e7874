//! Writes the QEMU board's memory map for the target (`memory.x` in `OUT_DIR`).

use std::{env, fs, path::PathBuf};

#[path = "../memory.rs"]
mod memory;

fn run() -> Result<(), String> {
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let target = env::var("TARGET").map_err(|e| e.to_string())?;
    let (memory_x, _) = memory::board(&target)?;
    fs::write(out.join("memory.x"), memory_x).map_err(|e| {
        format!(
            "kernel-check: cannot write {}: {e}",
            out.join("memory.x").display()
        )
    })?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rerun-if-changed=../memory.rs");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
