//! The agent's outgoing log lines between two polls, packed into one fixed byte ring.
//!
//! A line is ~60–300 bytes; a queue of fixed `Line` slots would hold `LINE_MAX_BYTES` for each
//! whether used or not. Here each line takes 3 bytes (level, length) plus its text, so the same
//! bytes hold three to four times as many typical lines. Full is a counted drop, never growth.

use heapless::Deque;
use log::Level;

use super::machine::Line;
use crate::limits::PENDING_LINE_BYTES;

/// Bytes of header per queued line: level, then the length (little endian u16).
const HEADER: usize = 3;

/// Lines waiting for the shell, oldest first.
pub struct LineQueue {
    bytes: Deque<u8, PENDING_LINE_BYTES>,
}

impl LineQueue {
    pub const fn new() -> LineQueue {
        LineQueue {
            bytes: Deque::new(),
        }
    }

    /// Queues `line`; `false` (and nothing queued) when it does not fit.
    pub fn push(&mut self, level: Level, line: &str) -> bool {
        let len = line.len();
        if HEADER + len > self.bytes.capacity() - self.bytes.len() {
            return false;
        }
        let [lo, hi] = (len as u16).to_le_bytes();
        for b in [level as u8, lo, hi].into_iter().chain(line.bytes()) {
            // Cannot fail: the free space was checked above.
            let _ = self.bytes.push_back(b);
        }
        true
    }

    /// The oldest line.
    pub fn pop(&mut self) -> Option<(Level, Line)> {
        let level = match self.bytes.pop_front()? {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            _ => Level::Trace,
        };
        let lo = self.bytes.pop_front().unwrap_or(0);
        let hi = self.bytes.pop_front().unwrap_or(0);
        let len = usize::from(u16::from_le_bytes([lo, hi]));
        let mut text = heapless::Vec::<u8, { crate::limits::LINE_MAX_BYTES }>::new();
        for _ in 0..len {
            if let Some(b) = self.bytes.pop_front() {
                let _ = text.push(b);
            }
        }
        // Pushed as a whole `&str` no longer than a `Line`: always valid UTF-8 and in bounds.
        let text = Line::from_utf8(text).unwrap_or_default();
        Some((level, text))
    }

    /// Lines queued.
    #[cfg(test)]
    fn count(&self) -> usize {
        let mut n = 0;
        let mut at = 0;
        let bytes: heapless::Vec<u8, PENDING_LINE_BYTES> = self.bytes.iter().copied().collect();
        while at + HEADER <= bytes.len() {
            at += HEADER + usize::from(u16::from_le_bytes([bytes[at + 1], bytes[at + 2]]));
            n += 1;
        }
        n
    }
}

impl Default for LineQueue {
    fn default() -> Self {
        LineQueue::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LINE_MAX_BYTES;

    #[test]
    fn lines_come_out_as_they_went_in_across_the_ring_edge() {
        let mut q = LineQueue::new();
        let levels = [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ];
        // Many rounds of uneven lines: the ring wraps many times.
        for round in 0..500usize {
            let n = 1 + round % 7;
            let mut sent: heapless::Vec<(Level, Line), 8> = heapless::Vec::new();
            for i in 0..n {
                let mut l = Line::new();
                for _ in 0..(round * 31 + i * 17) % LINE_MAX_BYTES {
                    let _ = l.push(char::from(b'a' + (round + i) as u8 % 26));
                }
                let level = levels[(round + i) % levels.len()];
                assert!(q.push(level, &l));
                let _ = sent.push((level, l));
            }
            assert_eq!(q.count(), n);
            for (level, l) in sent {
                assert_eq!(q.pop(), Some((level, l)));
            }
            assert_eq!(q.pop(), None);
        }
    }

    #[test]
    fn a_full_ring_refuses_whole_lines_and_keeps_the_rest() {
        let mut q = LineQueue::new();
        let long: Line = Line::try_from("x".repeat(LINE_MAX_BYTES).as_str()).unwrap();
        let mut queued = 0;
        while q.push(Level::Warn, &long) {
            queued += 1;
        }
        assert_eq!(queued, PENDING_LINE_BYTES / (HEADER + LINE_MAX_BYTES));
        // A short line may still fit in what is left; a refused one leaves no trace.
        let before = q.count();
        let _ = q.push(Level::Info, "short");
        let after = q.count();
        assert!(after == before || after == before + 1);
        for _ in 0..queued {
            assert_eq!(q.pop(), Some((Level::Warn, long.clone())));
        }
        if after > before {
            assert_eq!(
                q.pop().map(|(_, l)| l),
                Some(Line::try_from("short").unwrap())
            );
        }
        assert_eq!(q.pop(), None);
        // Typical lines: several times the fixed-slot queue's 32 at the same bytes per line.
        let typical = "con2_1: DPD failure [load-correlated]: box busy avg 97.0% peak 100.0%";
        let mut n = 0;
        while q.push(Level::Warn, typical) {
            n += 1;
        }
        assert!(n >= 32, "{n}");
    }
}
