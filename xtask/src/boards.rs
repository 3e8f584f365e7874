//! The board applications (`firmware/boards/<board>/`, the README's "Flash
//! it to your board"). No board is attached here, so building is the test:
//! each is built `--release` for its chip with the default model (the
//! BasicMotions LSTM, int8), exactly as `cargo run --release` in its folder
//! builds it before flashing, and
//! - the vector table must sit at the start of the flash its `memory.x`
//!   declares, after the RP2040's 256-byte second-stage bootloader, which
//!   must be the first bytes of its flash (the boot ROM runs it from there);
//! - the ELF must carry a defmt table holding the decision line (so it was
//!   linked with `defmt.x` and the application logs what the README shows);
//! - its flash and RAM are read from the ELF (as for the QEMU firmware).

use std::fs;

use anyhow::{anyhow, bail, Context, Result};
use object::{Object, ObjectSection};
use serde::Serialize;

use crate::chip::{build_crate, elf_sizes};
use crate::cores::Core;

/// One board crate.
#[derive(Debug, Clone, Copy)]
pub struct Board {
    /// Folder under `firmware/boards/`, and the binary's name.
    pub dir: &'static str,
    /// The microcontroller and its core.
    pub mcu: &'static str,
    /// The chip name `probe-rs run --chip` takes (the crate's runner).
    pub probe_rs_chip: &'static str,
    /// Only for its target triple: the Cortex-M4F boards build for
    /// `thumbv7em-none-eabihf`, the RP2040 (Cortex-M0+) for `thumbv6m-none-eabi`.
    pub core: Core,
    /// Where the vector table must be (the `FLASH` origin of its `memory.x`).
    pub vector_table: u64,
    /// Where a second-stage bootloader of 256 bytes must be, if the chip needs one.
    pub boot2: Option<u64>,
}

/// Every board, in the README's order.
pub const BOARDS: [Board; 3] = [
    Board {
        dir: "nucleo-f411re",
        mcu: "STM32F411RE, Cortex-M4F 100 MHz",
        probe_rs_chip: "STM32F411RETx",
        core: Core::M4,
        vector_table: 0x0800_0000,
        boot2: None,
    },
    Board {
        dir: "nrf52840-dk",
        mcu: "nRF52840, Cortex-M4F 64 MHz",
        probe_rs_chip: "nRF52840_xxAA",
        core: Core::M4,
        vector_table: 0x0000_0000,
        boot2: None,
    },
    Board {
        dir: "pico",
        mcu: "RP2040, Cortex-M0+ 125 MHz",
        probe_rs_chip: "RP2040",
        core: Core::M0,
        vector_table: 0x1000_0100,
        boot2: Some(0x1000_0000),
    },
];

/// The model the boards embed by default (`firmware/boards/activity/build.rs`).
pub const MODEL: &str = "models/exported/basicmotions-lstm/int8.bin";

/// The decision line's defmt format string (`firmware/boards/activity/src/lib.rs`).
pub const DECISION_FORMAT: &str = "decision {=u32}: {=str} {=u32}% ({=u32} cycles/step)";

/// One board's release build.
#[derive(Debug, Clone, Serialize)]
pub struct BoardBuild {
    pub board: &'static str,
    pub mcu: &'static str,
    pub probe_rs_chip: &'static str,
    pub target: &'static str,
    pub model: &'static str,
    /// `.vector_table + .text + .rodata + .data` (+ `.boot2` on the RP2040).
    pub flash_bytes: u64,
    /// The embedded blob, part of `flash_bytes`.
    pub model_bytes: u64,
    /// `.data + .bss + .uninit` (model, state, arena, the RTT buffer); the stack comes on top.
    pub ram_bytes: u64,
}

/// Build `board` with the default model and read its sizes.
pub fn build(board: &Board) -> Result<BoardBuild> {
    let model = crate::workspace_root().join(MODEL);
    let model_bytes = fs::metadata(&model)
        .with_context(|| format!("{} not found", model.display()))?
        .len();
    let elf = build_crate(
        &format!("boards/{}", board.dir),
        board.core,
        "int8",
        &[("MODEL", &model)],
    )?;
    let (flash, ram_bytes) = elf_sizes(&elf)?;
    let data = fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing ELF {}", elf.display()))?;
    let place = |name: &str| file.section_by_name(name).map(|s| (s.address(), s.size()));
    match place(".vector_table") {
        Some((address, _)) if address == board.vector_table => {}
        found => bail!(
            "{}: .vector_table at {:#x?}, expected {:#x} (memory.x's FLASH origin)",
            board.dir,
            found.map(|(a, _)| a),
            board.vector_table
        ),
    }
    let boot2 = match (board.boot2, place(".boot2")) {
        (None, None) => 0,
        (Some(address), Some((at, 256))) if at == address => 256,
        (expected, found) => bail!(
            "{}: .boot2 (address, size) is {found:#x?}, expected 256 bytes at {expected:#x?}",
            board.dir
        ),
    };
    let table = defmt_decoder::Table::parse(&data)
        .with_context(|| format!("reading the defmt table of {}", elf.display()))?
        .ok_or_else(|| {
            anyhow!(
                "{} has no defmt table (linked without defmt.x?)",
                elf.display()
            )
        })?;
    if !table.raw_symbols().any(|s| s.contains(DECISION_FORMAT)) {
        bail!(
            "{}'s defmt table has no `{DECISION_FORMAT}` line",
            elf.display()
        );
    }
    Ok(BoardBuild {
        board: board.dir,
        mcu: board.mcu,
        probe_rs_chip: board.probe_rs_chip,
        target: board.core.target(),
        model: MODEL,
        flash_bytes: flash + boot2,
        model_bytes,
        ram_bytes,
    })
}

/// `cargo xtask test`'s board checks: one labelled result per board.
pub fn test() -> Vec<(String, Result<String>)> {
    BOARDS
        .iter()
        .map(|b| {
            let label = format!("board {} ({}) builds --release", b.dir, b.probe_rs_chip);
            let result = build(b).map(|r| {
                format!(
                    ", flash {} B ({} B model), RAM {} B, vector table at {:#x}{}, defmt decision line present",
                    r.flash_bytes,
                    r.model_bytes,
                    r.ram_bytes,
                    b.vector_table,
                    b.boot2
                        .map(|a| format!(" after BOOT2 at {a:#x}"))
                        .unwrap_or_default()
                )
            });
            (label, result)
        })
        .collect()
}

/// `cargo xtask bench`'s board table.
pub fn print_table(builds: &[BoardBuild]) {
    println!(
        "\nboard applications (firmware/boards: opt-level s, LTO, defmt-rtt, panic-probe, {MODEL}):"
    );
    println!(
        "{:<14} {:<32} {:<15} {:>8} {:>8} {:>7}",
        "board", "chip", "probe-rs", "flash", "model", "RAM"
    );
    for b in builds {
        println!(
            "{:<14} {:<32} {:<15} {:>8} {:>8} {:>7}",
            b.board, b.mcu, b.probe_rs_chip, b.flash_bytes, b.model_bytes, b.ram_bytes
        );
    }
}

/// `cargo xtask boards`: the board builds and the defmt check of `test`,
/// alone, then the size table.
pub fn boards() -> Result<bool> {
    crate::toolchain::check()?;
    let mut ok = true;
    let mut report = |label: &str, result: Result<String>| match result {
        Ok(detail) => println!("{label}: ok{detail}"),
        Err(e) => {
            println!("{label}: FAILED: {e:#}");
            ok = false;
        }
    };
    for (label, result) in test() {
        report(&label, result);
    }
    for core in Core::ALL {
        let label = format!("defmt log {} int8 {}", crate::defmt_log::MODEL, core.name());
        report(&label, crate::defmt_log::check(core));
    }
    if ok {
        let builds = BOARDS.iter().map(build).collect::<Result<Vec<_>>>()?;
        print_table(&builds);
    }
    Ok(ok)
}
