//! The `swandog` command: wiring only. Decisions live in the library's `agent`.

use std::process::ExitCode;

use argh::FromArgs;
use log::{info, warn};
use swandog::report::table;
use swandog::vici::client::{Commands, Events, Reconnect, Uri, DEFAULT_URI};
use swandog::vici::sa::{Event, IkeSa};

#[derive(FromArgs)]
/// swandog watches strongSwan on small routers: it tells, for every DPD failure, whether the box
/// was overloaded, and keeps route-based (VTI / XFRM) tunnels up by re-initiating them, forever.
///
/// Examples:
///   swandog run --log stderr                 run in the foreground, logging to stderr
///   swandog sas                              list IKE and CHILD SAs, like swanctl --list-sas
///   swandog check --config /etc/swandog.conf validate the config and show what would be watched
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
    Sas(SasArgs),
    Check(CheckArgs),
}

#[derive(FromArgs)]
/// run the agent (started by procd or busybox init; stays in the foreground).
///
/// Example: swandog run --watch con1,con2_1 --log syslog
#[argh(subcommand, name = "run")]
struct RunArgs {
    /// charon's VICI socket (default unix:///var/run/charon.vici)
    #[argh(option)]
    vici: Option<String>,
    /// config file (default /etc/swandog.conf, if present)
    #[argh(option)]
    config: Option<String>,
    /// children to keep up, comma-separated (default: every route-based child)
    #[argh(option)]
    watch: Option<String>,
    /// where to log: syslog (default) or stderr
    #[argh(option)]
    log: Option<String>,
    /// where to write the status snapshot (default /var/run/swandog.status)
    #[argh(option)]
    status_file: Option<String>,
}

#[derive(FromArgs)]
/// list IKE and CHILD SAs from charon, once.
///
/// Example: swandog sas --json
#[argh(subcommand, name = "sas")]
struct SasArgs {
    /// charon's VICI socket (default unix:///var/run/charon.vici)
    #[argh(option)]
    vici: Option<String>,
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,
}

#[derive(FromArgs)]
/// validate the config, connect to charon and print what would be watched.
///
/// Example: swandog check --config /etc/swandog.conf
#[argh(subcommand, name = "check")]
struct CheckArgs {
    /// config file (default /etc/swandog.conf, if present)
    #[argh(option)]
    config: Option<String>,
    /// charon's VICI socket (default unix:///var/run/charon.vici)
    #[argh(option)]
    vici: Option<String>,
}

fn main() -> ExitCode {
    let cli: Cli = argh::from_env();
    let result = match cli.command {
        _ if cli.version => {
            println!(
                "swandog {} ({})",
                env!("CARGO_PKG_VERSION"),
                env!("SWANDOG_TARGET")
            );
            Ok(())
        }
        None => {
            Err("no command given: try `swandog run`, `swandog sas` or `swandog --help`".into())
        }
        Some(Command::Run(args)) => run(args),
        Some(Command::Sas(args)) => sas(args),
        Some(Command::Check(args)) => check(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("swandog: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn uri(text: Option<&str>) -> Result<Uri, String> {
    let text = text.unwrap_or(DEFAULT_URI);
    Uri::parse(text).map_err(|e| format!("bad --vici {text:?}: {e}"))
}

fn sas(args: SasArgs) -> Result<(), String> {
    let uri = uri(args.vici.as_deref())?;
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
    print!("{out}");
    Ok(())
}

fn check(args: CheckArgs) -> Result<(), String> {
    let uri = uri(args.vici.as_deref())?;
    let mut commands = Commands::new(&uri);
    smol::block_on(async {
        let version = commands.version().await.map_err(|e| e.to_string())?;
        println!(
            "charon {} {} on {}",
            version.daemon, version.version, version.machine
        );
        let mut conns = Vec::new();
        commands
            .list_conns(&mut |c| conns.push(c))
            .await
            .map_err(|e| e.to_string())?;
        for conn in &conns {
            for child in &conn.children {
                println!(
                    "  {}/{}{}",
                    conn.name,
                    child.name,
                    if child.route_based {
                        " (route-based)"
                    } else {
                        ""
                    }
                );
            }
        }
        Ok(())
    })
}

fn run(args: RunArgs) -> Result<(), String> {
    let uri = uri(args.vici.as_deref())?;
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()
        .map_err(|e| e.to_string())?;
    info!("swandog {} watching {uri}", env!("CARGO_PKG_VERSION"));
    smol::block_on(async {
        let mut events = Events::new(&uri);
        let mut reconnect = Reconnect::default();
        let mut last_error: Option<String> = None;
        loop {
            match events.next().await {
                Ok(event) => {
                    reconnect.reset();
                    if last_error.take().is_some() {
                        info!("connected to charon at {uri}");
                    }
                    log_event(&event);
                }
                Err(e) if e.breaks_connection() => {
                    let delay = reconnect.next_delay_ms();
                    let text = e.to_string();
                    if last_error.as_deref() != Some(&text) {
                        warn!("{text}; retrying in {delay} ms");
                    }
                    last_error = Some(text);
                    smol::Timer::after(std::time::Duration::from_millis(delay)).await;
                }
                Err(e) => warn!("{e}"),
            }
        }
    })
}

fn log_event(event: &Event) {
    match event {
        Event::IkeUpDown { up, ike } => info!(
            "{}: IKE_SA #{} {} ({})",
            ike.name,
            ike.uniqueid,
            if *up { "up" } else { "down" },
            ike.state
        ),
        Event::ChildUpDown { up, ike } => {
            for child in &ike.children {
                info!(
                    "{}: CHILD_SA #{} of {} {}",
                    child.name,
                    child.uniqueid,
                    ike.name,
                    if *up { "up" } else { "down" }
                );
            }
        }
        Event::Log(_) | Event::Alert { .. } => {}
    }
}
