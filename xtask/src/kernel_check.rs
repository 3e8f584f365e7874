//! The kernels' bit-exact property on a core (`firmware/kernel-check`):
//! every fast kernel against its reference on random cases, under QEMU.

use anyhow::{bail, Result};
use runtime::kernels::check::Kernel;

use crate::chip::build_crate;
use crate::cores::Core;
use crate::qemu;

/// `cargo xtask kernels`: [`run`] on every core; whether all passed.
pub fn all_cores() -> Result<bool> {
    crate::toolchain::check()?;
    let mut ok = true;
    for core in Core::ALL {
        match run(core) {
            Ok(detail) => println!("kernel property {}: ok{detail}", core.name()),
            Err(e) => {
                println!("kernel property {}: FAILED: {e:#}", core.name());
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// Build and run the property firmware on `core`; a summary of the cases
/// if every kernel ran and none failed.
pub fn run(core: Core) -> Result<String> {
    let elf = build_crate("kernel-check", core, "", &[])?;
    summarize(&qemu::run(core, &elf)?)
}

/// Check the firmware's report: a `kernel` line for every kernel with at
/// least one case and no failure, and the `done` line.
fn summarize(report: &str) -> Result<String> {
    let mut total = 0usize;
    for kernel in Kernel::ALL {
        let prefix = format!("kernel {} cases ", kernel.name());
        let Some(line) = report.lines().find_map(|l| l.strip_prefix(&prefix)) else {
            bail!("no report for kernel {}", kernel.name());
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (cases, failed) = match fields.as_slice() {
            [cases, "failed", failed] => (cases.parse::<usize>()?, failed.parse::<usize>()?),
            _ => bail!("malformed line `{prefix}{line}`"),
        };
        if cases == 0 || failed > 0 {
            let first = report.lines().find(|l| l.starts_with("mismatch"));
            bail!(
                "{}: {failed} of {cases} cases differ from the reference (first: {})",
                kernel.name(),
                first.unwrap_or("none printed")
            );
        }
        total += cases;
    }
    if !report
        .lines()
        .any(|l| l == format!("done {total} failed 0"))
    {
        bail!("no `done {total} failed 0` line");
    }
    Ok(format!(
        ", {} kernels, {total} random cases, all bit-identical to the reference",
        Kernel::ALL.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failed_conv: usize) -> String {
        let mut r = String::new();
        for k in Kernel::ALL {
            let failed = if k == Kernel::ConvI8 { failed_conv } else { 0 };
            if failed > 0 {
                r.push_str("mismatch Differs { .. }\n");
            }
            r.push_str(&format!("kernel {} cases 10 failed {failed}\n", k.name()));
        }
        r.push_str(&format!("done 70 failed {failed_conv}\n"));
        r
    }

    #[test]
    fn a_clean_report_passes_and_a_failure_names_its_kernel() {
        assert!(summarize(&report(0)).unwrap().contains("70 random cases"));
        let e = summarize(&report(2)).unwrap_err().to_string();
        assert!(e.contains("conv-i8: 2 of 10"), "{e}");
        assert!(e.contains("mismatch Differs"), "{e}");
        let missing = report(0).replace("kernel gates-q15 cases 10 failed 0\n", "");
        assert!(summarize(&missing).is_err());
    }
}
