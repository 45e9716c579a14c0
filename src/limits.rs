//! Every capacity and timing constant of swandog, in one place, with its unit in the name.
//!
//! The memory budget can be read off this screen.

/// Largest VICI segment charon accepts or sends (its own limit).
pub const VICI_SEGMENT_MAX_BYTES: usize = 512 * 1024;

/// Deepest section nesting swandog accepts (charon's deepest list-sas nesting is 4).
pub const VICI_SECTION_DEPTH_MAX: usize = 16;

/// Longest connection / child / IKE_SA name swandog stores (pfSense names are `con12_3`).
pub const NAME_MAX_BYTES: usize = 64;
/// Longest address text stored (an IPv6 address with scope fits).
pub const HOST_MAX_BYTES: usize = 48;
/// CHILD_SAs kept per IKE_SA in one view; more are counted, not stored.
pub const CHILD_SAS_PER_IKE_MAX: usize = 8;
/// Longest charon log message kept.
pub const LOG_MSG_MAX_BYTES: usize = 200;

/// Receive buffer per VICI connection; larger frames are skipped whole and counted.
pub const VICI_RECV_BUFFER_BYTES: usize = 64 * 1024;
/// Buffer for one outgoing command.
pub const VICI_REQUEST_BUFFER_BYTES: usize = 1024;
/// Hard deadline of every VICI call (a wedged charon must never hang swandog).
pub const VICI_CALL_TIMEOUT_MS: u64 = 5_000;
/// First delay before reconnecting to a vanished socket.
pub const VICI_RECONNECT_MIN_MS: u64 = 250;
/// Longest delay between reconnection attempts.
pub const VICI_RECONNECT_MAX_MS: u64 = 30_000;

/// Consecutive busy samples before swandog slows down (one spike is not a busy box).
pub const THROTTLE_BUSY_ENTER_SAMPLES: u32 = 3;
/// Consecutive quiet samples before it returns to normal pace.
pub const THROTTLE_BUSY_LEAVE_SAMPLES: u32 = 10;
/// How far under the busy threshold "quiet" starts, so the pace does not flap.
pub const THROTTLE_HYSTERESIS_PERMILLE: u16 = 100;
/// Window over which swandog's own CPU use is compared with its budget.
pub const THROTTLE_BUDGET_WINDOW_MS: u64 = 60_000;

/// Largest status snapshot `swandog status` reads.
pub const STATUS_FILE_MAX_BYTES: usize = 64 * 1024;

/// CPUs whose load is tracked one by one (for the busiest-CPU figure); more count only in the
/// aggregate.
pub const LOAD_CPUS_MAX: usize = 8;
/// Stack buffer for reading `/proc/stat` and `/proc/pressure/cpu`; the `cpu` lines come first,
/// and 9 of them fit in 2 KiB even with 20-digit counters.
pub const PROC_READ_BUFFER_BYTES: usize = 4096;
/// Load samples kept: 10 min 40 s at the default 1 s interval, longer than a default DPD
/// give-up (~165 s) with room to spare. 8 bytes each.
pub const LOAD_HISTORY_SAMPLES: usize = 640;
/// IKE_SAs whose unanswered request the DPD tracker remembers at once (oldest evicted first).
pub const DPD_TRACKED_IKES_MAX: usize = 16;
/// An unanswered request older than this is forgotten (a missed reply line must not stretch a
/// verdict window past the load history).
pub const DPD_UNANSWERED_MAX_MS: u64 = 10 * 60 * 1000;
/// Verdict window when the start of the unanswered request is unknown (e.g. the log line was
/// missed): strongSwan's default retransmissions give up ~165 s after the first request.
pub const VERDICT_FALLBACK_WINDOW_MS: u64 = 165_000;

/// Largest syslog datagram swandog sends, header included (RFC 3164 allows 1024; 480 keeps every
/// line in one small stack buffer and well inside any syslogd's limit). Longer lines are cut and
/// end in `...`.
pub const SYSLOG_LINE_MAX_BYTES: usize = 480;
/// Least time between two attempts to (re)connect to the syslog socket, so a dead syslogd costs
/// one failed `connect` per second at most, not one per line.
pub const SYSLOG_RECONNECT_INTERVAL_MS: u64 = 1_000;
/// Longest `TZ` value (environment or `/etc/TZ`) read for syslog timestamps.
pub const TZ_TEXT_MAX_BYTES: usize = 64;

/// Children that can be named in `watch` (flags or config file).
pub const WATCHED_CHILDREN_MAX: usize = 32;
/// Longest path or URI in the config (`vici`, `status_file`, `proc_root`); a Unix socket path is
/// at most 108 bytes anyway.
pub const CONFIG_PATH_MAX_BYTES: usize = 128;
/// Largest config file swandog reads; a full commented example is about 4 KiB.
pub const CONFIG_FILE_MAX_BYTES: usize = 16 * 1024;
