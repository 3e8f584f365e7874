//! Running a firmware ELF under QEMU and parsing what it prints.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::cores::Core;

/// Longest a firmware run may take before QEMU is killed.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// What the firmware reported (see `firmware/src/main.rs`).
#[derive(Debug, Default)]
pub struct Report {
    /// `(index, output bytes, instructions)` per `out` line, in order.
    pub outputs: Vec<(usize, Vec<u8>, u64)>,
    /// `calib <instructions> <ticks>`.
    pub calib: Option<(u64, u64)>,
    /// `stack <bytes>`.
    pub stack_bytes: Option<u64>,
    /// `done <count> instructions <total>`.
    pub done: Option<(usize, u64)>,
}

/// Run `elf` on `core`'s board with instruction counting; the firmware's
/// stdout on a semihosting success exit, else an error with its last lines.
pub fn run(core: Core, elf: &Path) -> Result<String> {
    Ok(String::from_utf8_lossy(&run_raw(core, elf)?).into_owned())
}

/// [`run`], with the firmware's stdout as bytes (defmt frames are binary).
pub fn run_raw(core: Core, elf: &Path) -> Result<Vec<u8>> {
    let mut child = Command::new("qemu-system-arm")
        .args(["-cpu", core.cpu(), "-machine", core.machine(), "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-icount", "shift=0,align=off,sleep=off"])
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting qemu-system-arm ({})", crate::toolchain::QEMU_HINT))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no QEMU stdout"))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("no QEMU stderr"))?;
    let out_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let raw = out_reader.join().unwrap_or_default();
    let out = String::from_utf8_lossy(&raw).into_owned();
    let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let tail = |s: &str| {
        s.lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    match status {
        None => bail!(
            "QEMU ({}) did not finish within {} s; killed. Last output:\n{}",
            core.machine(),
            TIMEOUT.as_secs(),
            tail(&out)
        ),
        Some(s) if !s.success() => bail!(
            "firmware on {} exited with {s}. Last output:\n{}\n{}",
            core.machine(),
            tail(&out),
            tail(&err)
        ),
        Some(_) => Ok(raw),
    }
}

fn num<T: std::str::FromStr>(word: Option<&str>, line: &str) -> Result<T> {
    word.and_then(|w| w.parse().ok())
        .ok_or_else(|| anyhow!("unexpected firmware line: {line:?}"))
}

fn hex(s: &str, line: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd hex length in firmware line: {line:?}");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("bad hex in firmware line: {line:?}"))
        })
        .collect()
}

/// Parse the firmware's lines; unknown lines are ignored.
pub fn parse(text: &str) -> Result<Report> {
    let mut r = Report::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("out") => {
                let index = num(w.next(), line)?;
                let bytes = hex(w.next().unwrap_or(""), line)?;
                let instructions = num(w.next(), line)?;
                r.outputs.push((index, bytes, instructions));
            }
            Some("calib") => r.calib = Some((num(w.next(), line)?, num(w.next(), line)?)),
            Some("stack") => r.stack_bytes = Some(num(w.next(), line)?),
            Some("done") => {
                let count = num(w.next(), line)?;
                let _ = w.next();
                r.done = Some((count, num(w.next(), line)?));
            }
            Some("error") => bail!("firmware reported: {line}"),
            _ => {}
        }
    }
    if r.done.is_none() {
        bail!("firmware output has no `done` line");
    }
    Ok(r)
}

/// Run `elf` on `core`'s board without semihosting (an application that
/// only writes memory, like the minimal one), wait until the word at
/// `status` is non-zero, then read `len` bytes at `data`, both through
/// QEMU's monitor; `(status word, bytes)`.
pub fn run_and_read(
    core: Core,
    elf: &Path,
    status: u64,
    data: u64,
    len: usize,
) -> Result<(u32, Vec<u8>)> {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::mpsc;

    let mut child = Command::new("qemu-system-arm")
        .args(["-cpu", core.cpu(), "-machine", core.machine()])
        .args(["-display", "none", "-monitor", "stdio", "-serial", "null"])
        .args(["-icount", "shift=0,align=off,sleep=off"])
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting qemu-system-arm ({})", crate::toolchain::QEMU_HINT))?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no QEMU stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no QEMU stdout"))?;
    // The monitor's answers to `xp`: lines `<16 hex digits>: 0x.. 0x..`.
    let (tx, rx) = mpsc::channel::<Vec<u64>>();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let Some((address, values)) = line.split_once(": ") else {
                continue;
            };
            if address.len() != 16 || !address.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let parsed = values
                .split_whitespace()
                .filter_map(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
                .collect();
            if tx.send(parsed).is_err() {
                break;
            }
        }
    });
    let mut ask = |command: String| -> Result<Vec<u64>> {
        writeln!(stdin, "{command}").context("writing to QEMU's monitor")?;
        stdin.flush()?;
        let mut values = Vec::new();
        // A read of n bytes comes back as ceil(n / 8) lines.
        let lines = if command.contains("xb") {
            len.div_ceil(8)
        } else {
            1
        };
        for _ in 0..lines {
            values.extend(
                rx.recv_timeout(Duration::from_secs(10))
                    .context("no answer from QEMU's monitor")?,
            );
        }
        Ok(values)
    };
    let deadline = Instant::now() + TIMEOUT;
    let result = (|| {
        let word = loop {
            let word = ask(format!("xp /1xw {status:#x}"))?
                .first()
                .copied()
                .unwrap_or(0) as u32;
            if word != 0 {
                break word;
            }
            if Instant::now() > deadline {
                bail!(
                    "the application on {} never set its status word",
                    core.machine()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let bytes = if len == 0 {
            Vec::new()
        } else {
            ask(format!("xp /{len}xb {data:#x}"))?
                .into_iter()
                .map(|v| v as u8)
                .collect()
        };
        Ok((word, bytes))
    })();
    let _ = writeln!(stdin, "quit");
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    result
}
