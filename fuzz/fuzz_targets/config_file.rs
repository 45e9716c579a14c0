//! The config file parser: any text is a config or one clear error line; a config survives being
//! written out by `describe` and parsed again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swandog::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    match Config::parse_file(text, "/etc/swandog.conf") {
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.is_empty());
            assert!(!shown.contains('\n'), "multi-line error: {shown:?}");
            if let Some(line) = e.line() {
                assert!(line as usize <= text.lines().count().max(1));
            }
        }
        Ok(config) => {
            let described = config.describe().to_string();
            let again = Config::parse_file(&described, "described")
                .unwrap_or_else(|e| panic!("describe output does not parse: {e}\n{described}"));
            assert_eq!(
                settings(&described),
                settings(&again.describe().to_string())
            );
        }
    }
});

/// The `key = value` part of each `describe` line (without the origin comment).
fn settings(described: &str) -> Vec<String> {
    described
        .lines()
        .map(|l| {
            l.rsplit_once(" # ")
                .map_or(l, |(s, _)| s)
                .trim_end()
                .to_string()
        })
        .collect()
}
