//! The memory map (`memory.x`) and SysTick rate of each QEMU board, by
//! target: included (`#[path]`) by the build scripts of the parity
//! firmware, `defmt-qemu/` and `kernel-check/`.

/// (memory.x, instructions per SysTick tick times 2) per target.
pub fn board(target: &str) -> Result<(&'static str, u32), String> {
    match target {
        // QEMU mps2-an386 (Cortex-M4F), mps2-an500 (M7), mps2-an385 (M3):
        // SysTick at 25 MHz, 40 instructions per tick under -icount shift=0.
        "thumbv7em-none-eabihf" | "thumbv7m-none-eabi" => Ok((
            "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 4M\n  RAM : ORIGIN = 0x20000000, LENGTH = 4M\n}\n",
            80,
        )),
        // QEMU mps2-an505 (Cortex-M33, secure state): code in SSRAM1's secure
        // alias, data in SSRAM2/3's (the IoT subsystem's own SRAM is small).
        "thumbv8m.main-none-eabihf" => Ok((
            "MEMORY\n{\n  FLASH : ORIGIN = 0x10000000, LENGTH = 4M\n  RAM : ORIGIN = 0x38000000, LENGTH = 2M\n}\n",
            // SysTick at 20 MHz: 50 instructions per tick.
            100,
        )),
        // QEMU microbit (nRF51, Cortex-M0): SysTick at 16 MHz, 62.5 instructions per tick.
        "thumbv6m-none-eabi" => Ok((
            "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n  RAM : ORIGIN = 0x20000000, LENGTH = 16K\n}\n",
            125,
        )),
        other => Err(format!(
            "firmware: unsupported target {other} (use thumbv7em-none-eabihf or thumbv6m-none-eabi)"
        )),
    }
}
