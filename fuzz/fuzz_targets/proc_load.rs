//! `/proc/stat` and `/proc/pressure/cpu` parsers, and the sampler on what they return.
//!
//! Input: two readings separated by the first NUL byte (before, after); each is tried both as
//! `/proc/stat` and as `/proc/pressure/cpu`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swandog::sample::load::{parse_psi_some_avg10_centi, parse_stat, LoadSampler, Reading};

fuzz_target!(|data: &[u8]| {
    let (before, after) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let mut sampler = LoadSampler::new();
    for (at, text) in [(1_000u64, before), (2_000, after)] {
        let psi = parse_psi_some_avg10_centi(text);
        assert!(psi.is_none_or(|p| p <= 10_000));
        let Some(stat) = parse_stat(text) else {
            continue;
        };
        let reading = Reading {
            stat,
            psi_some_avg10_centi: psi,
        };
        if let Some(sample) = sampler.sample(at, &reading) {
            assert!(sample.busy_permille <= 1000);
            assert!(sample.busiest_cpu_permille <= 1000);
            assert!(sample.softirq_permille <= 1000);
            assert!(sample.softirq_permille <= sample.busy_permille);
        }
    }
});
