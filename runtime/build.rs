//! Sets `cfg(armv6m)` on Armv6-M targets (Cortex-M0/M0+), which select the
//! kernels of `kernels/armv6m.rs`: stable Rust has no target-feature cfg
//! that tells Armv6-M from Armv7-M.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(armv6m)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=armv6m");
    }
}
