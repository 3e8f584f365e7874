//! `cargo xtask demo --model NAME`: one model (the small `iris-mlp`, as
//! committed in models/exported/, so nothing is retrained) run on the
//! emulated chips, its table printed and its report written beside its
//! export; an unknown name is one error listing the names there are.
//! Needs QEMU and the thumbv7em target, as `cargo xtask demo` does.

use std::process::Command;

fn xtask(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("running xtask");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_of_one_model_runs_only_it_bit_identically() {
    let (code, stdout, stderr) = xtask(&["demo", "--model", "iris-mlp", "--no-export"]);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let models: Vec<&str> = stdout.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(models.len(), 1, "{stdout}");
    assert!(models[0].starts_with("== iris-mlp ("), "{}", models[0]);
    let runs: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("f32 ") || l.starts_with("int8 "))
        .collect();
    assert!(runs.len() >= 2, "an f32 and an int8 run: {stdout}");
    for run in &runs {
        assert!(run.contains(" identical"), "{run}");
        assert!(!run.contains("DIFFER"), "{run}");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let report = root.join("models/exported/iris-mlp/demo-report.json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the one-model report")).unwrap();
    assert_eq!(report.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(report[0]["name"], "iris-mlp");
}

#[test]
fn demo_of_an_unknown_model_lists_the_names() {
    let (code, _, stderr) = xtask(&["demo", "--model", "no-such-model", "--no-export"]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("no model of that name in models/specs/"),
        "{stderr}"
    );
    assert!(stderr.contains("iris-mlp"), "{stderr}");
}
