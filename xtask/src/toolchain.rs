//! Prerequisites every command checks: the rustup targets, QEMU, and the
//! 32-bit C runtime the `i686` host tests link against.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::cores::Core;

/// The one line shown when QEMU is missing and cannot be installed here.
pub const QEMU_HINT: &str = "install qemu-system-arm (apt-get install qemu-system-arm)";
/// The same for the 32-bit host tests.
pub const MULTILIB_HINT: &str =
    "install gcc-multilib (apt-get install gcc-multilib) for the 32-bit host tests";

/// Add missing rustup targets; install QEMU and gcc-multilib when root,
/// else fail with the line saying what to install.
pub fn check() -> Result<()> {
    let mut targets: Vec<&str> = Core::ALL.iter().map(|c| c.target()).collect();
    targets.push(crate::cores::HOST_32);
    targets.sort_unstable();
    targets.dedup();
    check_targets(&targets)?;
    apt_package("qemu-system-arm", qemu_present, QEMU_HINT)?;
    apt_package("gcc-multilib", multilib_present, MULTILIB_HINT)
}

fn check_targets(targets: &[&str]) -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = targets
        .iter()
        .copied()
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

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn qemu_present() -> bool {
    succeeds(Command::new("qemu-system-arm").arg("--version"))
}

/// Whether gcc can link 32-bit programs (what `i686` tests need).
fn multilib_present() -> bool {
    let dir = std::env::temp_dir().join(format!("xtask-multilib-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let source = dir.join("probe.c");
    let ok = std::fs::write(&source, "int main(void) { return 0; }\n").is_ok()
        && succeeds(
            Command::new("gcc")
                .arg("-m32")
                .arg(&source)
                .arg("-o")
                .arg(dir.join("probe")),
        );
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `present()`, or install `package` with apt-get when root; else `hint`.
fn apt_package(package: &str, present: fn() -> bool, hint: &str) -> Result<()> {
    if present() {
        return Ok(());
    }
    if !is_root() {
        bail!("{hint}");
    }
    eprintln!("xtask: installing {package} with apt-get");
    let apt = |args: &[&str]| {
        succeeds(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    let ok = apt(&["update"]) && apt(&["install", "-y", package]);
    if !ok || !present() {
        bail!("{hint}");
    }
    Ok(())
}
