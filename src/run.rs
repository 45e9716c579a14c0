//! The smol shell of `swandog run`: moves bytes and time between the outside world and the
//! sans-I/O [`Agent`]. One thread, one `LocalExecutor`, two fixed tasks:
//!
//! * the main loop: VICI events, load samples, signals and timers in; agent actions out;
//! * the command worker: runs VICI commands (list-sas, list-conns, initiate, terminate) one at a
//!   time, each with a hard deadline, so a slow `initiate` never stalls event handling.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, info, log, warn};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::{Async, LocalExecutor, Timer};

use swandog::agent::{
    Action, Agent, CommandDone, CommandError, CommandErrorKind, Job, Millis, Settings,
};
use swandog::limits::{METRICS_MIN_GAP_MS, PROC_READ_BUFFER_BYTES};
use swandog::report::metrics::{render_metrics, ShellFigures};
use swandog::report::render::{self, render_status};
use swandog::report::status::SnapshotFile;
use swandog::report::syslog::LogHandle;
use swandog::sample::load::{LoadSampler, ProcFiles};
use swandog::swanctl_conf;
use swandog::vici::client::{ClientError, Commands, Events, Reconnect, Uri};
use swandog::vici::sa::Event;

/// What the shell needs besides the agent's own settings.
pub struct ShellSettings {
    /// charon's socket.
    pub uri: Uri,
    /// Where /proc is (tests point it at a recorded tree).
    pub proc_root: PathBuf,
    /// Where the status snapshot goes.
    pub status_file: PathBuf,
    /// swanctl.conf, read for route-based children (`None`: off).
    pub swanctl_conf: Option<String>,
    /// Where the Prometheus metrics go, if anywhere.
    pub metrics_file: Option<PathBuf>,
    /// The logger, for its drop counter in the metrics.
    pub log: Option<LogHandle>,
}

/// The route-based children of swanctl.conf (and its includes), for the agent's watch plan:
/// read before the first `list-conns`, then again before a `list-conns` when a file read (or a
/// directory listed) changed its mtime, and after SIGHUP. A file it cannot read is one warning
/// (again only when the problem changes) and never stops anything else.
struct SwanctlConf {
    path: Option<String>,
    read: Option<swanctl_conf::RouteChildren>,
    /// The last problem said, so a broken file is not a line per poll.
    problem: String,
    /// SIGHUP: read again whatever the mtimes say.
    force: bool,
}

impl SwanctlConf {
    fn new(path: Option<String>) -> SwanctlConf {
        SwanctlConf {
            path,
            read: None,
            problem: String::new(),
            force: true,
        }
    }

    /// Reads the files again if they changed (or were never read); the agent gets the result.
    fn refresh(&mut self, agent: &mut Agent) {
        let Some(path) = &self.path else {
            return;
        };
        let stale = match &self.read {
            Some(read) => read.changed(&mut swanctl_conf::DiskFiles),
            None => true,
        };
        if !stale && !core::mem::take(&mut self.force) {
            return;
        }
        self.force = false;
        match swanctl_conf::read_route_children_from_disk(path) {
            Ok(read) => {
                self.problem.clear();
                for note in read.notes() {
                    debug!("{note}");
                }
                let pairs = read
                    .children()
                    .iter()
                    .map(|c| (c.conn.as_str(), c.child.as_str()));
                agent.on_configured_route_based(pairs);
                let before = self.read.as_ref().map_or(&[][..], |r| r.children());
                if before != read.children() {
                    let mut names = String::new();
                    for c in read.children() {
                        if !names.is_empty() {
                            names.push_str(", ");
                        }
                        names.push_str(&c.child);
                    }
                    info!(
                        "{path}: {} route-based children{}{names}",
                        read.children().len(),
                        if names.is_empty() { "" } else { ": " },
                    );
                }
                self.read = Some(read);
            }
            Err(e) => {
                let text = e.to_string();
                if e.is_not_found() && path == swanctl_conf::DEFAULT_SWANCTL_CONF {
                    // No swanctl.conf at the default place: a box configured otherwise.
                    debug!("{text}; route-based children are found in list-sas only");
                } else if text != self.problem {
                    warn!(
                        "cannot read route-based children from swanctl.conf: {text}; \
                         keeping the last ones read, and children seen route-based in list-sas"
                    );
                }
                self.problem = text;
            }
        }
    }
}

/// The agent's view of a client error: the kind it decides by, the text it logs.
fn agent_error(e: &ClientError) -> CommandError {
    let kind = match e {
        ClientError::NotFound(_)
        | ClientError::PermissionDenied(_)
        | ClientError::Refused(_)
        | ClientError::Io(_)
        | ClientError::Closed => CommandErrorKind::Unreachable,
        ClientError::Timeout(_) => CommandErrorKind::Timeout,
        ClientError::Wire(_)
        | ClientError::View(_)
        | ClientError::Oversized(_)
        | ClientError::Unexpected(_) => CommandErrorKind::Malformed,
        ClientError::UnknownCommand(_) | ClientError::UnknownEvent(_) => {
            CommandErrorKind::Unsupported
        }
        ClientError::UnsafeName(_) => CommandErrorKind::Refused,
    };
    CommandError::new(kind, e)
}

/// A streamed listing's outcome as the agent takes it (once per listing, on the stack).
#[allow(clippy::result_large_err)]
fn done<T>(result: &Result<T, ClientError>) -> Result<(), CommandError> {
    result.as_ref().map(|_| ()).map_err(agent_error)
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalRequest {
    Stop,
    Reload,
    Summary,
}

/// Shared by the main loop and the command worker; never borrowed across an await.
struct Shared {
    // Boxed by the caller: a 50 KiB value moved by value through `run` would leave as many
    // copies in the main thread's stack, whose pages stay resident for good.
    agent: RefCell<Box<Agent>>,
    clock: Instant,
    /// SIGHUP: read swanctl.conf again at the next `list-conns`.
    reread_swanctl: std::cell::Cell<bool>,
}

impl Shared {
    fn now(&self) -> Millis {
        self.clock.elapsed().as_millis() as Millis
    }

    fn at(&self, when: Millis) -> Instant {
        self.clock + Duration::from_millis(when)
    }
}

fn own_cpu_us() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| {
        let us = |t: nix::sys::time::TimeVal| {
            (t.tv_sec() as u64).saturating_mul(1_000_000) + t.tv_usec() as u64
        };
        us(u.user_time()) + us(u.system_time())
    })
}

fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn signals() -> std::io::Result<Async<SignalFd>> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        mask.add(s);
    }
    mask.thread_block()?;
    let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    Async::new(fd)
}

async fn next_signal(fd: &Async<SignalFd>) -> SignalRequest {
    loop {
        let got = fd
            .read_with(|sfd| match sfd.read_signal() {
                Ok(Some(info)) => Ok(info.ssi_signo),
                Ok(None) => Err(std::io::ErrorKind::WouldBlock.into()),
                Err(e) => Err(std::io::Error::from(e)),
            })
            .await;
        match got.ok().and_then(|n| Signal::try_from(n as i32).ok()) {
            Some(Signal::SIGTERM | Signal::SIGINT) => return SignalRequest::Stop,
            Some(Signal::SIGHUP) => return SignalRequest::Reload,
            Some(Signal::SIGUSR1) => return SignalRequest::Summary,
            _ => {
                Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits at most `timeout` for SIGTERM / SIGINT / SIGHUP / SIGUSR1 (before the agent runs).
/// Blocks those signals in this thread first, so call it before any other thread starts.
pub fn wait_signal(timeout: Duration) -> Result<Option<SignalRequest>, String> {
    let sigfd = signals().map_err(|e| format!("cannot set up signal handling: {e}"))?;
    Ok(smol::block_on(
        async { Some(next_signal(&sigfd).await) }.or(async {
            Timer::after(timeout).await;
            None
        }),
    ))
}

// Built once per wake-up on the stack and matched at once; boxing events would allocate each.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Event(Result<Event, ClientError>),
    Kick,
    Timer,
    Signal(SignalRequest),
}

/// Runs the agent until SIGTERM / SIGINT. `reload` re-reads the config on SIGHUP.
#[inline(never)]
pub fn run(
    shell: ShellSettings,
    agent: Box<Agent>,
    reload: &mut dyn FnMut() -> Result<Settings, String>,
) -> Result<(), String> {
    let sigfd = signals().map_err(|e| format!("cannot set up signal handling: {e}"))?;
    let shared = Rc::new(Shared {
        agent: RefCell::new(agent),
        reread_swanctl: std::cell::Cell::new(false),
        clock: Instant::now(),
    });
    let ex = LocalExecutor::new();
    let (kick_tx, kick_rx) = smol::channel::bounded::<()>(1);
    let (job_tx, job_rx) = smol::channel::bounded::<()>(1);
    let swanctl = SwanctlConf::new(shell.swanctl_conf.clone());
    ex.spawn(worker(
        shared.clone(),
        shell.uri.clone(),
        swanctl,
        job_rx,
        kick_tx,
    ))
    .detach();
    // Pinned on the heap: the executor's future holds the main loop's (9 KiB on x86_64), and
    // pinned on this stack, it and its moves would stay resident for the whole run.
    smol::future::block_on(Box::pin(
        ex.run(main_loop(shared, shell, sigfd, kick_rx, job_tx, reload)),
    ))
}

async fn main_loop(
    shared: Rc<Shared>,
    shell: ShellSettings,
    sigfd: Async<SignalFd>,
    kick_rx: Receiver<()>,
    job_tx: Sender<()>,
    reload: &mut dyn FnMut() -> Result<Settings, String>,
) -> Result<(), String> {
    let mut events = Events::new(&shell.uri);
    let mut reconnect = Reconnect::default();
    let mut events_retry_at: Option<Instant> = None;
    let mut sampler = LoadSampler::new();
    let proc_files = ProcFiles::new(&shell.proc_root);
    let mut proc_buf = Box::new([0u8; PROC_READ_BUFFER_BYTES]);
    let mut next_sample: Millis = 0;
    let status_file = SnapshotFile::new(&shell.status_file);
    // Kept across wake-ups and re-armed only when the deadline moves: a fresh timer and signal
    // read on every wake-up cost a timerfd re-arm, a cross-thread reactor notification and two
    // epoll re-registrations per charon event.
    let mut timer = Timer::never();
    let mut timer_at: Option<Instant> = None;
    let mut signal = std::pin::pin!(next_signal(&sigfd));
    let mut status_error_logged = false;
    let mut metrics = Metrics::new(&shell);

    loop {
        // Let the command worker run: when events keep arriving, no await below ever blocks,
        // and without this the loop would never give the executor back (no list-sas, no
        // initiate until the flood ends).
        smol::future::yield_now().await;
        // Hand the agent's actions to the world.
        let mut write_status = false;
        {
            let now = shared.now();
            let mut agent = shared.agent.borrow_mut();
            let mut work = false;
            agent.poll(now, &mut |action| match action {
                Action::Log(level, line) => log!(level, "{line}"),
                Action::Work => work = true,
                Action::WriteStatus => write_status = true,
            });
            if work {
                let _ = job_tx.try_send(());
            }
        }
        if write_status {
            let now = shared.now();
            let agent = shared.agent.borrow();
            let written = status_file.write(|out| {
                render_status(&agent.status(now), unix_now_s(), out);
                Ok(())
            });
            match written {
                Ok(()) => status_error_logged = false,
                Err(e) if !status_error_logged => {
                    warn!(
                        "cannot write status file {}: {e} (swandog status will be stale)",
                        shell.status_file.display()
                    );
                    status_error_logged = true;
                }
                Err(_) => {}
            }
            metrics.due = metrics.file.is_some();
        }
        metrics.write_if_due(shared.now(), &shared.agent.borrow());

        let mut wake_at = shared.agent.borrow().next_wake().min(next_sample);
        if let Some(at) = metrics.due_at() {
            wake_at = wake_at.min(at);
        }
        let wake_instant = shared.at(wake_at);
        if timer_at != Some(wake_instant) {
            timer.set_at(wake_instant);
            timer_at = Some(wake_instant);
        }
        let retry_at = events_retry_at;
        let event = async {
            if let Some(at) = retry_at {
                Timer::at(at).await;
            }
            Wake::Event(events.next().await)
        };
        let kicked = async {
            let _ = kick_rx.recv().await;
            Wake::Kick
        };
        let timer_fired = async {
            (&mut timer).await;
            Wake::Timer
        };
        let signalled = async { Wake::Signal(signal.as_mut().await) };
        let wake = signalled.or(event).or(kicked).or(timer_fired).await;
        match wake {
            // A fired timer waits for a new deadline; a finished signal read for a new one.
            Wake::Timer => timer_at = None,
            Wake::Signal(_) => signal.set(next_signal(&sigfd)),
            _ => {}
        }

        let now = shared.now();
        // Whatever woke the loop: under a flood of events the timer branch may never win.
        if now >= next_sample {
            let mut agent = shared.agent.borrow_mut();
            match proc_files.read(&mut proc_buf) {
                Ok(reading) => {
                    if let Some(sample) = sampler.sample(now, &reading) {
                        agent.on_load(now, &sample);
                    }
                }
                Err(e) => agent.on_sample_error(now, &e),
            }
            agent.on_own_cpu(now, own_cpu_us());
            next_sample = now + agent.sample_interval_ms();
            // Lines held back while syslog was away go out once it is back, even if no new
            // line is logged (no extra wake-up: this tick runs anyway).
            swandog::report::syslog::flush_held();
        }
        match wake {
            Wake::Event(Ok(event)) => {
                reconnect.reset();
                events_retry_at = None;
                let mut agent = shared.agent.borrow_mut();
                agent.on_vici_link(now, true, events.alerts);
                agent.on_event(now, &event);
            }
            Wake::Event(Err(e)) if e.breaks_connection() => {
                // The agent says it (once per cause, then reminders) and takes the link down.
                shared
                    .agent
                    .borrow_mut()
                    .on_link_error(now, &agent_error(&e));
                let delay = reconnect.next_delay_ms();
                events_retry_at = Some(Instant::now() + Duration::from_millis(delay));
                debug!("charon unreachable: {e}; next attempt in {delay} ms");
            }
            Wake::Event(Err(e)) => shared
                .agent
                .borrow_mut()
                .on_wire_fault(now, &agent_error(&e)),
            Wake::Kick => {}
            Wake::Timer => {
                if events.is_connected() {
                    // Registered, events or not: the agent takes the link as up (once).
                    shared
                        .agent
                        .borrow_mut()
                        .on_vici_link(now, true, events.alerts);
                }
            }
            Wake::Signal(SignalRequest::Stop) => {
                info!("stopping on signal");
                let agent = shared.agent.borrow();
                let _ = status_file.write(|out| {
                    render_status(&agent.status(now), unix_now_s(), out);
                    Ok(())
                });
                metrics.remove();
                return Ok(());
            }
            Wake::Signal(SignalRequest::Reload) => match reload() {
                Ok(settings) => {
                    shared.reread_swanctl.set(true);
                    shared.agent.borrow_mut().reload(now, settings);
                    info!("config reloaded (history and tunnel state kept)");
                }
                Err(e) => warn!("config not reloaded, keeping the old one: {e}"),
            },
            Wake::Signal(SignalRequest::Summary) => {
                let agent = shared.agent.borrow();
                render::summary(&agent.status(now), &mut |level, line| log!(level, "{line}"));
            }
        }
    }
}

/// The metrics file: rewritten after each status write, at most every [`METRICS_MIN_GAP_MS`]
/// (a write held back by the gap goes out when it ends); removed on a clean stop, so that a
/// stopped swandog does not leave figures that look alive.
struct Metrics {
    file: Option<SnapshotFile>,
    log: Option<LogHandle>,
    due: bool,
    last: Option<Millis>,
    error_logged: bool,
}

impl Metrics {
    fn new(shell: &ShellSettings) -> Metrics {
        Metrics {
            file: shell.metrics_file.as_deref().map(SnapshotFile::new),
            log: shell.log,
            due: false,
            last: None,
            error_logged: false,
        }
    }

    /// When a held-back write is due.
    fn due_at(&self) -> Option<Millis> {
        match (self.due, self.last) {
            (true, Some(last)) => Some(last.saturating_add(METRICS_MIN_GAP_MS)),
            (true, None) => Some(0),
            (false, _) => None,
        }
    }

    fn write_if_due(&mut self, now: Millis, agent: &Agent) {
        let Some(file) = &self.file else {
            return;
        };
        if self.due_at().is_none_or(|at| now < at) {
            return;
        }
        self.due = false;
        self.last = Some(now);
        let figures = ShellFigures {
            cpu_us: own_cpu_us(),
            syslog_dropped: self.log.map_or(0, |l| l.counters().dropped),
        };
        match file.write(|out| render_metrics(&agent.status(now), &figures, out)) {
            Ok(()) => self.error_logged = false,
            Err(e) if !self.error_logged => {
                warn!(
                    "cannot write metrics file {}: {e} (Prometheus will see stale figures)",
                    file.path().display()
                );
                self.error_logged = true;
            }
            Err(_) => {}
        }
    }

    fn remove(&self) {
        if let Some(file) = &self.file {
            let _ = std::fs::remove_file(file.path());
        }
    }
}

async fn worker(
    shared: Rc<Shared>,
    uri: Uri,
    mut swanctl: SwanctlConf,
    job_rx: Receiver<()>,
    kick_tx: Sender<()>,
) {
    let mut commands = Commands::new(&uri);
    loop {
        // Calls wait inside the agent and are taken one at a time (an `initiate`'s deadline
        // starts when it is taken), so no queue between the two can overflow.
        let job = shared.agent.borrow_mut().next_job(shared.now());
        let Some(job) = job else {
            if job_rx.recv().await.is_err() {
                return;
            }
            continue;
        };
        match &job {
            Job::ListSas => {
                // Streamed into the agent IKE_SA by IKE_SA: no table, no limit on their number.
                shared.agent.borrow_mut().on_sas_begin(shared.now());
                let result = commands
                    .list_sas_parts(&mut |ike| shared.agent.borrow_mut().on_sa(ike))
                    .await;
                let now = shared.now();
                shared
                    .agent
                    .borrow_mut()
                    .on_sas_done(now, done(&result).as_ref().map(|_| ()));
            }
            Job::ListConns => {
                if shared.reread_swanctl.replace(false) {
                    swanctl.force = true;
                }
                swanctl.refresh(&mut shared.agent.borrow_mut());
                // Streamed into the plan connection by connection: no table, no limit.
                shared.agent.borrow_mut().on_conns_begin(shared.now());
                let result = commands
                    .list_conns(&mut |conn| shared.agent.borrow_mut().on_conn(conn))
                    .await;
                let now = shared.now();
                shared
                    .agent
                    .borrow_mut()
                    .on_conns_done(now, done(&result).as_ref().map(|_| ()));
            }
            Job::Initiate {
                child,
                ike,
                timeout_ms,
            } => {
                let result = commands
                    .initiate(child, Some(ike), *timeout_ms, &mut |line| {
                        let now = shared.now();
                        shared.agent.borrow_mut().on_control_log(now, child, &line);
                    })
                    .await;
                let now = shared.now();
                shared.agent.borrow_mut().on_command_done(
                    now,
                    CommandDone::Initiated {
                        child,
                        ike,
                        result: &result.map_err(|e| agent_error(&e)),
                    },
                );
            }
            Job::Terminate {
                child,
                child_id,
                timeout_ms,
            } => {
                let result = commands.terminate(Some(*child_id), None, *timeout_ms).await;
                let now = shared.now();
                shared.agent.borrow_mut().on_command_done(
                    now,
                    CommandDone::Terminated {
                        child,
                        result: &result.map_err(|e| agent_error(&e)),
                    },
                );
            }
        }
        let _ = kick_tx.try_send(());
    }
}
