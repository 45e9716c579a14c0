//! The sans-I/O brain of swandog: takes load samples, SA events and `now`, returns actions.
//!
//! Nothing in here touches a socket, a clock or a file; the smol shell (`run.rs`) feeds it, and
//! it imports nothing from the shell (`vici::client`, `report`, `config`): only the typed views
//! of `vici::sa` / `vici::reply`, `limits` and its own types.
//!
//! **In** (all on [`Agent`], each with the shell's monotonic `now` in [`Millis`]):
//! * load: `on_load` (a `/proc` sample), `on_sample_error`, `on_own_cpu`;
//! * charon's events: `on_vici_link` (registered / lost), `on_link_error`, `on_wire_fault`,
//!   `on_event` (updown, log, alert);
//! * streamed listings: `on_conns_begin` / `on_conn` / `on_conns_done` (`list-conns`, for the
//!   watch plan), `on_sas_begin` / `on_sa` / `on_sas_done` (`list-sas`, to reconcile);
//! * finished calls: `on_control_log` while an `initiate` runs, `on_command_done`;
//! * the configuration: `Agent::new` / `reload` ([`Settings`]), `on_configured_route_based`
//!   (route-based children of swanctl.conf).
//!
//! **Out**:
//! * `poll(now, emit)` hands out [`Action`]s: log lines, "calls are waiting", "rewrite status";
//!   `next_wake()` says when to poll again;
//! * `next_job(now)` hands the command worker one VICI call ([`Job`]) at a time: they wait inside
//!   the agent, so none is lost to a full queue;
//! * `status(now)` is the view `report` renders (status file, `swandog status`, metrics, the
//!   SIGUSR1 lines).
//!
//! Inside: [`plan`] (which children, against charon's configuration as it is now), [`keeper`]
//! (keep them up: backoff, role, stale SAs), [`diagnose`] and [`cause`] (why something failed,
//! classified once), [`correlate`] and [`history`] (DPD failure vs load), [`throttle`] (swandog's
//! own pace), [`units`] (time and figures).

pub mod cause;
pub mod command;
pub mod correlate;
pub mod diagnose;
pub mod history;
pub mod keeper;
mod lines;
pub mod plan;
pub mod role;
pub mod status;
pub mod table;
pub mod throttle;
pub mod units;

pub use units::Millis;

mod machine;
pub use command::{CommandError, CommandErrorKind, Job};
pub use machine::{Action, Agent, CommandDone, Counters, DpdRecord, Line, Settings};
