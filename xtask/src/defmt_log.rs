//! defmt under QEMU: `firmware/defmt-qemu/` runs a model's test vectors and
//! logs one defmt frame per vector through semihosting; the host decodes
//! the bytes with `defmt-decoder` and the ELF's own defmt table (no
//! `defmt-print` binary), and checks what the lines say.
//!
//! [`check`] (in `cargo xtask test`, [`MODEL`] int8 on each core):
//! - every frame decodes; the log is `calib`, then one
//!   `<model> class <c> instructions <n>` per vector, in order, then
//!   `done <count>`;
//! - the model name is the export's;
//! - each class is the host's: the argmax of the vector's expected output
//!   (the runtime's own answer, which the parity tests show the chip
//!   reproduces bit for bit);
//! - each instruction count is within [`tolerance`] (one SysTick tick) of
//!   what the semihosting parity firmware measured for the same vector.
//!   Both time the same source (`firmware/src/harness.rs`, built with the
//!   same profile and runtime features) and QEMU counts instructions exactly
//!   (`-icount shift=0`), but each firmware reads SysTick, which advances
//!   once per 40 instructions on the M4 (62.5 on the M0), at a different
//!   phase: the same span of N instructions reads as floor or ceil of N per
//!   tick, one tick apart. More than that means different code was timed.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use defmt_decoder::{DecodeError, Table};
use runtime::{Model, TestVectors};

use crate::chip::{build_crate, build_firmware, model_features};
use crate::cores::Core;
use crate::qemu;

/// The model whose int8 export the check runs.
pub const MODEL: &str = "digits-mlp";

/// Largest difference allowed between the two firmwares' counts for one
/// vector: one SysTick tick, rounded up (40 on the M4, 63 on the M0).
pub fn tolerance(core: Core) -> u64 {
    core.instructions_per_tick_x2().div_ceil(2)
}

/// Decode the defmt frames in `bytes` with the table of `elf`; one string
/// per frame (its message, formatted as `defmt-print` shows it).
pub fn decode(elf: &Path, bytes: &[u8]) -> Result<Vec<String>> {
    let data = fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let table = Table::parse(&data)
        .with_context(|| format!("reading the defmt table of {}", elf.display()))?
        .ok_or_else(|| {
            anyhow!(
                "{} has no defmt table (linked without defmt.x?)",
                elf.display()
            )
        })?;
    let mut decoder = table.new_stream_decoder();
    decoder.received(bytes);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => lines.push(frame.display_message().to_string()),
            // The end of the bytes (a frame cut short shows as a missing `done`).
            Err(DecodeError::UnexpectedEof) => return Ok(lines),
            Err(DecodeError::Malformed) => bail!(
                "malformed defmt frame after {} decoded lines (last: {:?})",
                lines.len(),
                lines.last()
            ),
        }
    }
}

/// Build and run both firmwares for [`MODEL`] int8 on `core` and compare
/// (see the module docs); a summary for the test line.
pub fn check(core: Core) -> Result<String> {
    let dir = crate::workspace_root().join("models/exported").join(MODEL);
    let (model_path, vectors_path) = (dir.join("int8.bin"), dir.join("int8.vectors"));
    let blob =
        fs::read(&model_path).with_context(|| format!("reading {}", model_path.display()))?;
    let model = Model::from_bytes(&blob)
        .map_err(|e| anyhow!("invalid model blob {}: {e}", model_path.display()))?;
    let vector_bytes =
        fs::read(&vectors_path).with_context(|| format!("reading {}", vectors_path.display()))?;
    let vectors = TestVectors::from_bytes(&vector_bytes)
        .map_err(|e| anyhow!("invalid vectors {}: {e}", vectors_path.display()))?;

    let parity_elf = build_firmware(core, &model_path, &vectors_path)?;
    let parity = qemu::parse(&qemu::run(core, &parity_elf)?)?;
    let elf = build_crate(
        "defmt-qemu",
        core,
        &model_features(&model),
        &[("FW_MODEL", &model_path), ("FW_VECTORS", &vectors_path)],
    )?;
    let lines = decode(&elf, &qemu::run_raw(core, &elf)?)?;

    let count = vectors.count as usize;
    let words = |i: usize| -> Vec<&str> {
        lines
            .get(i)
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default()
    };
    let number = |word: Option<&&str>, line: usize| -> Result<u64> {
        word.and_then(|w| w.parse().ok()).ok_or_else(|| {
            anyhow!(
                "decoded line {line} is not as expected: {:?}",
                lines.get(line)
            )
        })
    };
    if let Some(error) = lines.iter().find(|l| l.starts_with("error")) {
        bail!("the defmt firmware logged `{error}`");
    }
    match words(0).as_slice() {
        ["calib", ..] => {
            let w = words(0);
            let (expected, ticks) = (number(w.get(1), 0)?, number(w.get(2), 0)?);
            let measured = ticks * core.instructions_per_tick_x2() / 2;
            if measured.abs_diff(expected) * 100 > expected {
                bail!("calibration: a {expected}-instruction loop measured {measured}");
            }
        }
        _ => bail!(
            "the decoded log does not start with `calib`: {:?}",
            lines.first()
        ),
    }
    if words(count + 1) != ["done", count.to_string().as_str()] || lines.len() != count + 2 {
        bail!(
            "expected {} per-vector lines then `done {count}`, decoded {} lines ending {:?}",
            count,
            lines.len().saturating_sub(1),
            lines.last()
        );
    }
    let mut largest = 0u64;
    for i in 0..count {
        let line = i + 1;
        let w = words(line);
        let [name, "class", _, "instructions", _] = w.as_slice() else {
            bail!(
                "decoded line {line} is not `<model> class <c> instructions <n>`: {:?}",
                lines[line]
            );
        };
        if *name != MODEL {
            bail!("vector {i}: the log names the model {name:?}, not {MODEL:?}");
        }
        let class = number(w.get(2), line)? as usize;
        let host = runtime::argmax(
            &vectors
                .expected_bytes(i)
                .iter()
                .map(|&b| b as i8)
                .collect::<Vec<_>>(),
        );
        if class != host {
            bail!("vector {i}: the chip logged class {class}, the host's is {host}");
        }
        let instructions = number(w.get(4), line)?;
        let Some(&(_, _, semihosting)) = parity.outputs.iter().find(|(index, _, _)| *index == i)
        else {
            bail!("the parity firmware printed no output for vector {i}");
        };
        let difference = instructions.abs_diff(semihosting);
        if difference > tolerance(core) {
            bail!(
                "vector {i}: {instructions} instructions logged with defmt, {semihosting} \
                 measured by the parity firmware ({difference} apart, more than one SysTick tick: \
                 the two firmwares timed different code)"
            );
        }
        largest = largest.max(difference);
    }
    Ok(format!(
        ", {count}/{count} decoded lines name {MODEL} and the host's class, instructions within \
         {largest} of the parity firmware's (tolerance {}); first: `{}`",
        tolerance(core),
        lines[1]
    ))
}
