//! charon's log-line classifier, on any text (lossy UTF-8, as `LogLine` keeps it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use swandog::agent::diagnose::classify_log;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(signal) = classify_log(&text) {
        let _ = signal.failure_cause().map(|c| (c.as_str(), c.advice()));
        // Surrounding whitespace never changes the verdict (charon's lines are trimmed).
        assert_eq!(classify_log(&format!("  {text}\t")), Some(signal));
    }
});
