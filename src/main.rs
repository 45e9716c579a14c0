//! The `swandog` command: wiring only. Decisions live in the library's `agent`.

mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use nix::sys::signal::{SigSet, Signal};
use swandog::agent::plan::{PlannedChild, WatchNames};
use swandog::agent::Settings;
use swandog::config::{self, Config, Origin, Word, DEFAULT_CONFIG_PATH};
use swandog::limits::{
    CONFIG_RETRY_INTERVAL_MS, SYSLOG_RECONNECT_INTERVAL_MS, WATCHED_CHILDREN_MAX,
};
use swandog::report::status::{read_snapshot, StatusForm, DEFAULT_STATUS_FILE};
use swandog::report::syslog::{Facility, LogTarget};
use swandog::report::{syslog, table};
use swandog::swanctl_conf;
use swandog::vici::client::{Commands, Uri};
use swandog::vici::sa::IkeSa;

#[derive(FromArgs)]
#[argh(
    description = "swandog watches strongSwan on small routers: for every DPD failure it tells
whether the box was overloaded, and it keeps route-based (VTI / XFRM) tunnels
up by re-initiating them, gently and forever. It logs to syslog.",
    example = "{command_name} run                            the agent (procd / init start it)
{command_name} run --log stderr --watch con1  in the foreground, keeping con1 up
{command_name} status                         load, DPD verdicts, watched tunnels
{command_name} sas                            IKE and CHILD SAs (swanctl --list-sas)
{command_name} check                          settings and origins, watch plan
{command_name} <command> --help               the options of one command",
    note = "Settings: /etc/swandog.conf (key = value lines), overridden by flags.
Signals to `swandog run`: HUP rereads the config, USR1 logs a status summary,
TERM / INT stop it."
)]
struct Cli {
    /// print the version and the target it was built for
    #[argh(switch, short = 'V')]
    version: bool,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Run(RunArgs),
    Status(StatusArgs),
    Sas(SasArgs),
    Check(CheckArgs),
}

/// Declares a subcommand that takes every config key as a flag (flags override the file): called
/// by `swandog::config_key_table!` with the table's rows, so every key is a flag, with the key's
/// help text. `one` keys take an `Option`, `list` keys a repeatable `Vec` (joined with commas).
macro_rules! config_flags {
    ([$(#[$meta:meta])* $args:ident $sub:literal]
     $($form:ident $key:ident $name:ident $help:tt $row:tt)*) => {
        config_flags!(@fields [$(#[$meta])* $args $sub] [] $($form $name $help)*);

        impl $args {
            fn flags(&self) -> FlagSet {
                FlagSet::new(
                    &self.config,
                    &self.overrides,
                    &[$((stringify!($name), &self.$name)),*],
                )
            }
        }
    };
    (@fields $head:tt [$($fields:tt)*] one $name:ident $help:tt $($rest:tt)*) => {
        config_flags!(@fields $head [$($fields)*
            #[argh(option, description = $help)]
            $name: Option<String>,
        ] $($rest)*);
    };
    (@fields $head:tt [$($fields:tt)*] list $name:ident $help:tt $($rest:tt)*) => {
        config_flags!(@fields $head [$($fields)*
            #[argh(option, description = $help)]
            $name: Vec<String>,
        ] $($rest)*);
    };
    (@fields [$(#[$meta:meta])* $args:ident $sub:literal] [$($fields:tt)*]) => {
        #[derive(FromArgs)]
        $(#[$meta])*
        #[argh(subcommand, name = $sub)]
        struct $args {
            /// config file (default /etc/swandog.conf, used if present)
            #[argh(option)]
            config: Option<String>,
            /// key = value file applied like flags over the config file, reread with it on
            /// SIGHUP (the OpenWrt init script writes UCI options there); may name `config`
            #[argh(option)]
            overrides: Option<String>,
            $($fields)*
        }
    };
}

/// A flag's value as the config's text, if it was given.
trait Given {
    fn given(&self) -> Option<String>;
}

impl Given for Option<String> {
    fn given(&self) -> Option<String> {
        self.clone()
    }
}

impl Given for Vec<String> {
    fn given(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.join(","))
    }
}

swandog::config_key_table!(config_flags![
    /// run the agent in the foreground (procd / busybox init keep it running)
    #[argh(
        example = "{command_name}
{command_name} --log stderr --watch con1,con2_1 --role initiator
{command_name} --board mt7621 --config /etc/swandog.conf
kill -HUP $(pidof swandog)   reread the config, keep tunnel state and history
kill -USR1 $(pidof swandog)  log a summary (lines starting `status:`)",
        note = "Every config key is also a flag; flags override /etc/swandog.conf.
`swandog check` lists every setting with its value and where it came from.
While charon or its socket is missing it waits inside, with backoff, so
init's respawn never spins. SIGTERM / SIGINT stop it within a second."
    )]
    RunArgs
    "run"
]);

swandog::config_key_table!(config_flags![
    /// validate the config and show what would be watched, and why
    #[argh(
        example = "{command_name}
{command_name} --config /etc/swandog-test.conf --watch con1",
        note = "Prints every setting with where it came from (default, board, file, flag),
charon's version, the watch plan and the route-based children seen up.
Exits non-zero with one clear line (file, line, fix) when something is wrong."
    )]
    CheckArgs
    "check"
]);

#[derive(FromArgs)]
/// show what the running agent knows: load, DPD failures, watched tunnels
#[argh(
    subcommand,
    name = "status",
    example = "{command_name}
{command_name} --json
{command_name} --status-file /tmp/swandog.status",
    note = "Shows the load sparkline of the last 10 minutes with DPD failures marked,
the watched children (state, since when, re-initiations), each DPD failure
with its verdict, and the DPD rate loaded vs quiet. It reads the snapshot
the running agent writes on every change and every 10 s (60 s when busy);
it does not contact charon."
)]
struct StatusArgs {
    /// the agent's status file (default /var/run/swandog.status)
    #[argh(option)]
    status_file: Option<String>,
    /// print JSON
    #[argh(switch)]
    json: bool,
}

#[derive(FromArgs)]
/// list IKE and CHILD SAs from charon once, like swanctl --list-sas
#[argh(
    subcommand,
    name = "sas",
    example = "{command_name}
{command_name} --json --vici unix:///var/run/charon.vici"
)]
struct SasArgs {
    /// charon's VICI socket (default unix:///var/run/charon.vici)
    #[argh(option)]
    vici: Option<String>,
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,
}

/// The config file given (if any) and every flag given, as key/value text.
#[derive(Clone)]
struct FlagSet {
    config: Option<String>,
    overrides: Option<String>,
    set: Vec<(&'static str, String)>,
}

impl FlagSet {
    /// The flags given among `flags` (each key's name and its field).
    fn new(
        config: &Option<String>,
        overrides: &Option<String>,
        flags: &[(&'static str, &dyn Given)],
    ) -> FlagSet {
        let set = flags
            .iter()
            .filter_map(|&(key, value)| Some((key, value.given()?)))
            .collect();
        FlagSet {
            config: config.clone(),
            overrides: overrides.clone(),
            set,
        }
    }

    /// File (or defaults when the default file is absent), then the overrides file, then flags,
    /// then cross-key checks.
    fn load(&self) -> Result<Config, String> {
        let overrides = match &self.overrides {
            Some(path) => Overrides::read(Path::new(path))?,
            None => Overrides::default(),
        };
        let mut cfg = match self.config.as_ref().or(overrides.config.as_ref()) {
            Some(path) => Config::load_file(Path::new(path)).map_err(|e| e.to_string())?,
            None => match Config::load_file(Path::new(DEFAULT_CONFIG_PATH)) {
                Ok(cfg) => cfg,
                Err(e) if e.is_not_found() => Config::default(),
                Err(e) => return Err(e.to_string()),
            },
        };
        for (line, key, value) in &overrides.set {
            cfg.set(key, value, Origin::Flag).map_err(|e| {
                let text = e.to_string();
                let text = text.strip_prefix("command line: ").unwrap_or(&text);
                format!("{}:{line}: {text}", overrides.name)
            })?;
        }
        for (key, value) in &self.set {
            cfg.set(key, value, Origin::Flag)
                .map_err(|e| e.to_string())?;
        }
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

/// An overrides file (`--overrides`): `key = value` lines as in the config file, each applied
/// like the flag of that name; `config = PATH` names the config file. Checked like the config
/// file (owner, mode, size).
#[derive(Default)]
struct Overrides {
    name: String,
    config: Option<String>,
    set: Vec<(u32, String, String)>,
}

impl Overrides {
    fn read(path: &Path) -> Result<Overrides, String> {
        use std::io::Read;
        let name = path.display().to_string();
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO planted at the path is refused by the check instead of hanging.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| format!("{name}: cannot read it: {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("{name}: cannot read it: {e}"))?;
        config::check_config_file_safe(&name, &meta).map_err(|e| e.to_string())?;
        let mut text = String::new();
        file.take(swandog::limits::CONFIG_FILE_MAX_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{name}: cannot read it: {e}"))?;
        if text.len() > swandog::limits::CONFIG_FILE_MAX_BYTES {
            return Err(format!("{name}: too large for an overrides file"));
        }
        let mut overrides = Overrides {
            name,
            ..Overrides::default()
        };
        for (index, raw) in text.lines().enumerate() {
            let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
            // The config file's grammar: `#` starts a comment at the start or after a blank.
            let cut = raw
                .char_indices()
                .find(|&(i, c)| c == '#' && (i == 0 || raw[..i].ends_with(char::is_whitespace)))
                .map_or(raw.len(), |(i, _)| i);
            let content = raw[..cut].trim();
            if content.is_empty() {
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                return Err(format!(
                    "{}:{line}: {content:?} is not a `key = value` line: write key = value, \
                     or start a comment with #",
                    overrides.name
                ));
            };
            let value = value.trim();
            let value = ['"', '\'']
                .iter()
                .find_map(|&q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)))
                .unwrap_or(value);
            match key.trim() {
                "config" => overrides.config = Some(value.to_string()),
                key => overrides
                    .set
                    .push((line, key.to_string(), value.to_string())),
            }
        }
        Ok(overrides)
    }
}

/// The signals `swandog run` answers (reload, summary). Their default action kills the process,
/// and procd may send a HUP the moment it has (re)started us: blocked before `main` runs at all.
fn reload_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGHUP);
    set.add(Signal::SIGUSR1);
    set
}

/// Runs before `main` and the Rust runtime (an `.init_array` constructor): blocks SIGHUP and
/// SIGUSR1, so a reload signal sent while swandog starts stays pending and is read once the main
/// loop runs, never fatal. Threads started later inherit the mask. SIGTERM / SIGINT stay
/// unblocked (they stop swandog at once) until the signal fd reads them.
extern "C" fn block_reload_signals_before_main() {
    // pthread_sigmask only; nothing here needs the Rust runtime. It cannot fail with a valid
    // `how`, and a failure would only leave the default actions.
    let _ = reload_signals().thread_block();
}

#[used]
#[link_section = ".init_array"]
static BLOCK_RELOAD_SIGNALS: extern "C" fn() = block_reload_signals_before_main;

fn main() -> ExitCode {
    // Parsed on a short-lived thread: argh's generated parser for every config key as a flag
    // has deep frames, and pages of the main thread's stack stay resident for the whole run.
    let cli: Cli = match off_main_stack(argh::from_env) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("{}error: {e}", syslog::stderr_tag());
            return ExitCode::FAILURE;
        }
    };
    if !matches!(cli.command, Some(Command::Run(_))) {
        // Short-lived commands keep the default actions (a hang-up ends them).
        let _ = reload_signals().thread_unblock();
    }
    let result = match cli.command {
        _ if cli.version => {
            println!(
                "swandog {} (built for {})",
                env!("CARGO_PKG_VERSION"),
                env!("SWANDOG_TARGET")
            );
            Ok(())
        }
        None => {
            Err("no command given: try `swandog run`, `swandog status` or `swandog --help`".into())
        }
        Some(Command::Run(args)) => {
            let result = run_agent(args.flags());
            // Lines syslog never took: a last try, then stderr for the warnings and errors.
            syslog::finish();
            result
        }
        Some(Command::Status(args)) => status(args),
        Some(Command::Sas(args)) => sas(args),
        Some(Command::Check(args)) => check(args.flags()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            // Untagged when procd reads stderr: it adds the tag (and the time) itself.
            eprintln!(
                "{}error: {}",
                syslog::stderr_tag(),
                table::terminal_safe(&msg)
            );
            ExitCode::FAILURE
        }
    }
}

fn uri(text: &str) -> Result<Uri, String> {
    Uri::parse(text).map_err(|e| format!("bad VICI URI {text:?}: {e}"))
}

// Own frame: inlined into `main`, every subcommand's locals would sit (stack-probed, so
// resident) under the agent's whole run.
#[inline(never)]
fn sas(args: SasArgs) -> Result<(), String> {
    let uri = uri(args.vici.as_deref().unwrap_or(config::DEFAULT_VICI_URI))?;
    let mut ikes: Vec<IkeSa> = Vec::new();
    smol::block_on(Commands::new(&uri).list_sas(&mut |ike| ikes.push(ike)))
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    if args.json {
        out.push('[');
        for (i, ike) in ikes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = table::write_ike_json(&mut out, ike);
        }
        out.push_str("]\n");
    } else if ikes.is_empty() {
        out.push_str("no IKE_SAs\n");
    } else {
        for ike in &ikes {
            let _ = table::write_ike_text(&mut out, ike);
        }
    }
    print!("{}", table::terminal_safe(&out));
    Ok(())
}

// Own frame: inlined into `main`, every subcommand's locals would sit (stack-probed, so
// resident) under the agent's whole run.
#[inline(never)]
fn status(args: StatusArgs) -> Result<(), String> {
    let path = PathBuf::from(args.status_file.as_deref().unwrap_or(DEFAULT_STATUS_FILE));
    let form = if args.json {
        StatusForm::Json
    } else {
        StatusForm::Human
    };
    let (text, age_s) = read_snapshot(&path, form)?;
    if !args.json {
        println!(
            "swandog status (snapshot {age_s} s old, {})",
            path.display()
        );
        if age_s > 120 {
            println!("WARNING: the snapshot is old: is `swandog run` still running?");
        }
    }
    print!("{}", table::terminal_safe(&text));
    Ok(())
}

// Own frame: inlined into `main`, every subcommand's locals would sit (stack-probed, so
// resident) under the agent's whole run.
#[inline(never)]
fn check(flags: FlagSet) -> Result<(), String> {
    let cfg = flags.load()?;
    match cfg.source_name() {
        "" => println!(
            "config: no file ({DEFAULT_CONFIG_PATH} not found): built-in defaults and flags"
        ),
        file => println!("config: {file}"),
    }
    print!("{}", cfg.describe());
    let uri = uri(&cfg.vici)?;
    let mut commands = Commands::new(&uri);
    smol::block_on(async {
        let version = commands.version().await.map_err(|e| e.to_string())?;
        println!(
            "\ncharon: {} {} on {}, reached at {}",
            version.daemon, version.version, version.machine, uri
        );
        // The same plan the agent makes, from the same streamed listing.
        let mut plan = WatchNames::new(&cfg.watch);
        // The route-based children of swanctl.conf, as the agent reads them.
        let route_conf = match cfg.swanctl_conf.as_str() {
            "" => None,
            path => match swanctl_conf::read_route_children_from_disk(path) {
                Ok(found) => {
                    plan.set_configured(
                        found
                            .children()
                            .iter()
                            .map(|c| (c.conn.as_str(), c.child.as_str())),
                    );
                    println!(
                        "{path}: {} route-based children (if_id / mark)",
                        found.children().len()
                    );
                    for note in found.notes() {
                        println!("  note: {note}");
                    }
                    Some(found)
                }
                Err(e) if e.is_not_found() => {
                    println!("{path}: not found; route-based children are found in list-sas");
                    None
                }
                Err(e) => {
                    println!("{e}: route-based children are found in list-sas only");
                    None
                }
            },
        };
        let mut planned: Vec<PlannedChild> = Vec::new();
        let mut conns = 0usize;
        plan.begin();
        commands
            .list_conns(&mut |c| {
                conns += usize::from(c.part == 0);
                plan.conn(c, &mut |child, ike, reason| {
                    if !planned.iter().any(|p| p.child == *child && p.ike == *ike) {
                        planned.push(PlannedChild {
                            child: child.clone(),
                            ike: ike.clone(),
                            reason,
                        });
                    }
                });
            })
            .await
            .map_err(|e| e.to_string())?;
        plan.end();
        let mut ikes = Vec::new();
        commands
            .list_sas(&mut |ike| ikes.push(ike))
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "connections configured: {conns}, IKE_SAs up: {}, role: {}",
            ikes.len(),
            cfg.role.name()
        );
        if !plan.is_empty() {
            println!("watching {} children:", planned.len());
            for p in &planned {
                println!("  {} (IKE {}): {}", p.child, p.ike, p.reason);
            }
            if planned.len() > WATCHED_CHILDREN_MAX {
                println!(
                    "  ... only the first {WATCHED_CHILDREN_MAX} are kept (WATCHED_CHILDREN_MAX)"
                );
            }
            if plan.missing_count() > 0 {
                println!(
                    "not configured in charon now (the others are kept; these as soon as charon has them):"
                );
                for (name, hint) in plan.missing() {
                    match hint {
                        Some(h) => println!("  {name} (did you mean {h}?)"),
                        None => println!("  {name}"),
                    }
                }
            }
            return Ok(());
        }
        // charon 5.x shows if_id / marks only on SAs, not in list-conns: the SAs tell.
        println!("watching every route-based child (none named with `watch`):");
        let mut any = false;
        for p in &planned {
            any = true;
            let found = route_conf.as_ref().and_then(|f| {
                f.children()
                    .iter()
                    .find(|c| c.conn == p.ike.as_str() && c.child == p.child.as_str())
            });
            match found {
                Some(c) => println!(
                    "  {} (IKE {}): route-based ({}) in swanctl.conf at {}",
                    p.child,
                    p.ike,
                    c.key.name(),
                    c.at
                ),
                None => println!("  {} (IKE {}): {}", p.child, p.ike, p.reason),
            }
        }
        for ike in &ikes {
            for child in ike.children.iter().filter(|c| c.is_route_based()) {
                if planned.iter().any(|p| p.child == child.name) {
                    continue;
                }
                any = true;
                println!(
                    "  {} (IKE {}): route-based, seen in list-sas: up now with if-id {}/{} mark {}/{}",
                    child.name,
                    ike.name,
                    child.if_id_in,
                    child.if_id_out,
                    child.mark_in,
                    child.mark_out
                );
            }
        }
        if !any {
            println!(
                "  none seen yet: a route-based child is found when it is up (if-id or mark \
                 in list-sas);\n  to keep a child up that is down now, name it with `watch`"
            );
        }
        Ok(())
    })
}

/// Applies the configured niceness to this process.
fn apply_nice(nice: i8) {
    if nice == 0 {
        return;
    }
    // SAFETY: setpriority only reads its integer arguments; PRIO_PROCESS with who = 0 means this
    // process. It touches no memory of ours.
    let rc = unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, i32::from(nice)) };
    if rc != 0 {
        log::warn!(
            "cannot set niceness {nice}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Whether init (busybox init, procd; pid 1) started us: it would restart us if we exited.
fn started_by_init() -> bool {
    nix::unistd::getppid().as_raw() == 1
}

impl FlagSet {
    /// Where to log when the config cannot be loaded: the logging flags that parse, else the
    /// defaults (syslog, daemon, info).
    fn log_settings(&self) -> (LogTarget, Facility, log::LevelFilter) {
        let mut cfg = Config::default();
        for (key, value) in &self.set {
            if matches!(*key, "log" | "log_level" | "syslog_facility") {
                let _ = cfg.set(key, value, Origin::Flag);
            }
        }
        (cfg.log, cfg.syslog_facility, cfg.log_level)
    }
}

/// Under init, a broken config must not end in a respawn loop (busybox init restarts a dead
/// process every second, forever): say once what is wrong, then reread the file on SIGHUP and
/// every minute until it loads. `None`: stopped by SIGTERM / SIGINT meanwhile.
fn wait_for_config(flags: &FlagSet, error: String) -> Result<Option<Config>, String> {
    log::error!(
        "cannot start: {error}; waiting for a fixed config (fix it, then kill -HUP {}; \
         rereading it every {} s)",
        std::process::id(),
        CONFIG_RETRY_INTERVAL_MS / 1000
    );
    let mut last = error;
    loop {
        // While syslog has lines held back, look every reconnect interval whether it is back.
        let deadline = std::time::Instant::now() + Duration::from_millis(CONFIG_RETRY_INTERVAL_MS);
        let signal = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let step = match syslog::held_lines() {
                0 => left,
                _ => left.min(Duration::from_millis(SYSLOG_RECONNECT_INTERVAL_MS)),
            };
            match run::wait_signal(step)? {
                None if !left.is_zero() && step < left => syslog::flush_held(),
                signal => break signal,
            }
        };
        if signal == Some(run::SignalRequest::Stop) {
            log::info!("stopping on signal");
            return Ok(None);
        }
        match flags.load() {
            Ok(cfg) => {
                log::info!("config loaded, starting");
                return Ok(Some(cfg));
            }
            Err(e) if e != last => {
                log::error!("config still not usable: {e}");
                last = e;
            }
            Err(_) => {}
        }
    }
}

/// Runs `work` on a short-lived thread and returns what it returns. For the deep one-off work of
/// `swandog run` (parsing the config, building the ~44 KiB agent): on the main thread its frames
/// would leave their stack pages resident under the whole run (every stack page once touched
/// stays). A joined thread's stack is unmapped (musl) or cached for the next thread (glibc). No
/// fallback to the main thread: a box that cannot start a thread cannot start smol's reactor
/// either.
fn off_main_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("swandog-work".into())
            .spawn_scoped(scope, work)
            .map_err(|e| format!("cannot start a thread: {e}"))?
            .join()
            .map_err(|_| "a helper thread failed".to_string())
    })
}

// Own frame: inlined into `main`, every subcommand's locals would sit (stack-probed, so
// resident) under the agent's whole run.
#[inline(never)]
fn run_agent(flags: FlagSet) -> Result<(), String> {
    let Some((log, shell, agent, fixed)) = start_up(&flags)? else {
        return Ok(());
    };
    let mut reload = || reload(&flags, log, &fixed);
    run::run(shell, agent, &mut reload)
}

/// What start-up hands the main loop.
type Started = (
    syslog::LogHandle,
    run::ShellSettings,
    Box<swandog::agent::Agent>,
    FixedAtStart,
);

/// Everything before the main loop: logging, the config (waiting for a usable one when started
/// by init), the agent. Its own frame, gone before the loop starts: its configs and settings
/// would otherwise sit (stack-probed, so resident) under the whole run. `None`: stop quietly.
#[inline(never)]
fn start_up(flags: &FlagSet) -> Result<Option<Started>, String> {
    let first = off_main_stack(|| flags.load())?;
    let (target, facility, level) = match &first {
        Ok(cfg) => (cfg.log, cfg.syslog_facility, cfg.log_level),
        // In a terminal (or a script), a broken config is an error at once.
        Err(e) if !started_by_init() => return Err(e.clone()),
        Err(_) => flags.log_settings(),
    };
    let log =
        syslog::init(target, facility, level).map_err(|e| format!("cannot start logging: {e}"))?;
    let cfg = match first {
        Ok(cfg) => cfg,
        Err(e) => match wait_for_config(flags, e)? {
            Some(cfg) => cfg,
            None => return Ok(None),
        },
    };
    log.set_level(cfg.log_level);
    log.set_facility(cfg.syslog_facility);
    apply_nice(cfg.nice);
    let uri = uri(&cfg.vici)?;
    log::info!(
        "swandog {} starting: charon at {uri}, role {}, watching {}",
        env!("CARGO_PKG_VERSION"),
        cfg.role.name(),
        if cfg.watch.is_empty() {
            "every route-based child".to_string()
        } else {
            cfg.watch.join(",")
        }
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    let settings = cfg.agent_settings();
    let fixed = FixedAtStart::of(&cfg);
    let agent = off_main_stack(move || Box::new(swandog::agent::Agent::new(settings, seed)))?;
    let shell = run::ShellSettings {
        uri,
        proc_root: PathBuf::from(cfg.proc_root.as_str()),
        status_file: PathBuf::from(cfg.status_file.as_str()),
        swanctl_conf: (!cfg.swanctl_conf.is_empty()).then(|| cfg.swanctl_conf.to_string()),
        metrics_file: (!cfg.metrics_file.is_empty())
            .then(|| PathBuf::from(cfg.metrics_file.as_str())),
        log: Some(log),
    };
    Ok(Some((log, shell, agent, fixed)))
}

/// The settings the running agent cannot change in place (its sockets, files and log target).
#[derive(Clone, PartialEq, Eq)]
struct FixedAtStart([(&'static str, String); 6]);

impl FixedAtStart {
    fn of(cfg: &Config) -> FixedAtStart {
        FixedAtStart([
            ("vici", cfg.vici.to_string()),
            ("status_file", cfg.status_file.to_string()),
            ("proc_root", cfg.proc_root.to_string()),
            ("metrics_file", cfg.metrics_file.to_string()),
            ("log", cfg.log.name().to_string()),
            ("swanctl_conf", cfg.swanctl_conf.to_string()),
        ])
    }

    /// `key old -> new` for each setting that differs in `new`.
    fn changes(&self, new: &FixedAtStart) -> String {
        let mut text = String::new();
        for ((key, old), (_, now)) in self.0.iter().zip(&new.0) {
            if old != now {
                if !text.is_empty() {
                    text.push_str(", ");
                }
                text.push_str(&format!("{key} {old} -> {now}"));
            }
        }
        text
    }
}

/// SIGHUP: the config again; its frame, too, only while it runs. A changed setting that is fixed
/// at start is said, not applied (swandog starts no process, itself included: SECURITY.md).
#[inline(never)]
fn reload(
    flags: &FlagSet,
    log: syslog::LogHandle,
    fixed: &FixedAtStart,
) -> Result<Settings, String> {
    let cfg = off_main_stack(|| flags.load())??;
    let now = FixedAtStart::of(&cfg);
    if now != *fixed {
        log::warn!(
            "{} is fixed at start: restart swandog to apply it (the rest is applied now)",
            fixed.changes(&now)
        );
    }
    log.set_level(cfg.log_level);
    log.set_facility(cfg.syslog_facility);
    apply_nice(cfg.nice);
    Ok(cfg.agent_settings())
}
