//! `cargo xtask fuzz --seconds N`: every cargo-fuzz target of the loader for
//! N seconds each, corpus seeded with the real exported blobs.
//!
//! cargo-fuzz passes nightly-only flags; `RUSTC_BOOTSTRAP=1` lets the stable
//! toolchain accept them (see ../shared/CORTEX-M.md).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

const TARGETS: [&str; 3] = ["load_any_bytes", "run_mutated_model", "step_any_state"];

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz)");
        let status = Command::new(cargo())
            .args(["install", "--locked", "cargo-fuzz"])
            .status()?;
        if !status.success() {
            bail!("could not install cargo-fuzz: run `cargo install cargo-fuzz`");
        }
    }
    Ok(())
}

/// Copy every exported `*.bin` into the corpus of `load_any_bytes`, and one
/// "pick seed i, no mutation" input per blob into `run_mutated_model`'s.
fn seed_corpus(fuzz_dir: &Path) -> Result<usize> {
    let exported = crate::workspace_root().join("models/exported");
    let mut blobs = Vec::new();
    for dir in fs::read_dir(&exported)
        .with_context(|| format!("reading {}", exported.display()))?
        .flatten()
    {
        for file in fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            if file.path().extension().is_some_and(|e| e == "bin") {
                blobs.push(file.path());
            }
        }
    }
    if blobs.is_empty() {
        bail!(
            "no exported blobs in {}: run `cargo xtask demo` first",
            exported.display()
        );
    }
    let load = fuzz_dir.join("corpus/load_any_bytes");
    let run = fuzz_dir.join("corpus/run_mutated_model");
    let step = fuzz_dir.join("corpus/step_any_state");
    for dir in [&load, &run, &step] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (i, blob) in blobs.iter().enumerate() {
        fs::copy(blob, load.join(format!("seed-{i}")))?;
        fs::write(run.join(format!("seed-{i}")), [i as u8, 0])?;
        // A zero state, then all-0xFF (a garbage position word).
        fs::write(step.join(format!("seed-{i}-zero")), [i as u8])?;
        fs::write(
            step.join(format!("seed-{i}-ff")),
            [i as u8, 0xff, 0xff, 0xff, 0xff],
        )?;
    }
    Ok(blobs.len())
}

/// libFuzzer's closing line: `Done 1234567 runs in 60 second(s)`.
fn executions(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|line| {
        line.strip_prefix("Done ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

pub fn fuzz(seconds: u64) -> Result<bool> {
    ensure_cargo_fuzz()?;
    let fuzz_dir = crate::workspace_root().join("fuzz");
    let seeds = seed_corpus(&fuzz_dir)?;
    println!(
        "fuzzing {} targets for {seconds} s each, corpus seeded with {seeds} exported blobs",
        TARGETS.len()
    );
    let mut total = 0u64;
    let mut crashes = 0usize;
    for target in TARGETS {
        let output = Command::new(cargo())
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={seconds}"),
            ])
            .output()
            .with_context(|| format!("running cargo fuzz run {target}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let runs = executions(&log);
        let crashed = !output.status.success();
        if crashed {
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            // libFuzzer reports a finding with "==<pid>== ERROR" / "deadly signal";
            // anything else (a build error) is not a crash of the loader.
            if !log.contains("ERROR: libFuzzer")
                && !log.contains("deadly signal")
                && !log.contains("panicked")
            {
                bail!("cargo fuzz run {target} failed before fuzzing (see the output above)");
            }
            crashes += 1;
        }
        total += runs.unwrap_or(0);
        println!(
            "fuzz {target:<20} {:>12} executions  {}",
            runs.map_or("?".into(), |r| r.to_string()),
            if crashed {
                "CRASH (see fuzz/artifacts)"
            } else {
                "no crash"
            }
        );
    }
    println!("fuzz total: {total} executions, {crashes} crashes");
    Ok(crashes == 0)
}
