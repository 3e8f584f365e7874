//! Prerequisites every command checks: the two rustup targets and QEMU.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::chip::Core;

/// The one line shown when QEMU is missing and cannot be installed here.
pub const QEMU_HINT: &str = "install qemu-system-arm (apt-get install qemu-system-arm)";

/// Add missing rustup targets; install QEMU when root, else fail with [`QEMU_HINT`].
pub fn check() -> Result<()> {
    check_targets()?;
    check_qemu()
}

fn check_targets() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = [Core::M4, Core::M0]
        .iter()
        .map(|c| c.target())
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: adding rustup targets {}", missing.join(" "));
    let status = Command::new("rustup")
        .args(["target", "add"])
        .args(&missing)
        .status()?;
    if !status.success() {
        bail!("`rustup target add {}` failed", missing.join(" "));
    }
    Ok(())
}

fn qemu_present() -> bool {
    Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn check_qemu() -> Result<()> {
    if qemu_present() {
        return Ok(());
    }
    if !is_root() {
        bail!("{QEMU_HINT}");
    }
    eprintln!("xtask: installing qemu-system-arm with apt-get");
    let ok = Command::new("apt-get")
        .arg("update")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && Command::new("apt-get")
            .args(["install", "-y", "qemu-system-arm"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok || !qemu_present() {
        bail!("{QEMU_HINT}");
    }
    Ok(())
}
