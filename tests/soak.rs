//! The short soak in CI: `tests/soak.sh` for 75 s of irregular breaks and heals of the real lab
//! while a CPU burner comes and goes (see the script for what it checks). The long run is a
//! documented command: `tests/soak.sh 10` (minutes).

mod common;

use std::process::Command;

use common::{lab_disabled, lab_run_name};

#[test]
fn short_soak_of_breaks_heals_and_load_ends_with_every_child_up_and_memory_flat() {
    if lab_disabled("short_soak_of_breaks_heals_and_load_ends_with_every_child_up_and_memory_flat")
    {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/soak.sh");
    let out = Command::new(script)
        .env("SOAK_SECONDS", "75")
        // Per run, like every lab of the suite: two suites at once never share it.
        .env("SOAK_LAB", lab_run_name("soak"))
        .env("SOAK_SEED", "8")
        .env("SWANDOG_BIN", env!("CARGO_BIN_EXE_swandog"))
        .output()
        .expect("run tests/soak.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "soak failed:\n{text}");
}
