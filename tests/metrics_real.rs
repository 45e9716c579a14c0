//! The metrics file read by the real engines (issue 15): swandog runs against the real lab with
//! `--metrics-file`; Debian's `prometheus-node-exporter` (textfile collector only) reads it
//! without a scrape error; `promtool check metrics` and `promtool check rules` accept the file
//! and `board/prometheus/swandog.rules.yml`; a real Prometheus server on loopback (1 s scrape
//! and evaluation, the shipped rules with their `for:` cut to 2 s) sees `SwandogTunnelDown`
//! fire while the lab's link is broken and clear after the heal. Hostile names (a quote, a
//! backslash, a newline, from a scripted VICI peer) still give a file node exporter accepts.
//!
//! Needs root (the lab), and `prometheus` + `prometheus-node-exporter` (scripts/setup.sh).
//! Every process started here is stopped by its pid.

mod common;
#[path = "common/fake_vici.rs"]
mod fake_vici;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::labkit::{Json, Swandog};
use common::{lab_disabled, scratch_dir, wait_for, Lab};
use fake_vici::{FakeVici, Mode};
use swandog::vici::wire::{PacketType, Writer};

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/board/prometheus/swandog.rules.yml"
);

/// A process started by this test: SIGTERM by pid on drop, SIGKILL if it lingers.
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn start(what: &'static str, cmd: &mut Command, log: &Path) -> Proc {
        let log = std::fs::File::create(log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} (install it: scripts/setup.sh): {e}"));
        Proc { child, what }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let gone = wait_for(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if gone.is_none() {
            eprintln!("{} did not stop on SIGTERM: SIGKILL", self.what);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().unwrap().port()
}

/// `GET path` over plain HTTP/1.0 on loopback: (status code, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// `query` percent-encoded for a URL.
fn url_encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Node exporter with only the textfile collector, reading `dir`.
fn node_exporter(dir: &Path, port: u16, log: &Path) -> Proc {
    let p = Proc::start(
        "prometheus-node-exporter",
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!("--collector.textfile.directory={}", dir.display())),
        log,
    );
    let ready = wait_for(Duration::from_secs(15), || {
        http_get(port, "/metrics").is_some_and(|(c, _)| c == 200)
    });
    assert!(
        ready.is_some(),
        "node exporter not answering on {port}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    p
}

/// One scrape of node exporter's /metrics.
fn scrape(port: u16) -> String {
    let (code, body) = http_get(port, "/metrics").expect("node exporter answers");
    assert_eq!(code, 200, "{body}");
    body
}

/// The value of the sample whose line starts with `series` (name and labels, exactly).
fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// `promtool ARGS`, stdin from `input`; (success, stdout + stderr).
fn promtool(args: &[&str], input: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new("promtool");
    cmd.args(args);
    if let Some(f) = input {
        cmd.stdin(std::fs::File::open(f).expect("input file"));
    }
    let out = cmd
        .output()
        .expect("cannot run promtool (install prometheus: scripts/setup.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The shipped rules with every `for:` cut to `for_s` seconds (the conditions are the same).
fn fast_rules(dir: &Path, for_s: u32) -> PathBuf {
    let text = std::fs::read_to_string(RULES).expect("rules file");
    let mut cut = 0;
    let fast: String = text
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => {
                cut += 1;
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}for: {for_s}s\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert!(cut >= 3, "expected `for:` lines in {RULES}");
    let path = dir.join("swandog-fast.rules.yml");
    std::fs::write(&path, fast).unwrap();
    path
}

/// The alerts Prometheus holds: (alertname, state, child label) of each.
fn alerts(port: u16) -> Vec<(String, String, String)> {
    let Some((200, body)) = http_get(port, "/api/v1/alerts") else {
        return Vec::new();
    };
    let Ok(json) = Json::parse(&body) else {
        return Vec::new();
    };
    let Some(list) = json.get("data").and_then(|d| d.get("alerts")) else {
        return Vec::new();
    };
    list.items()
        .iter()
        .map(|a| {
            let label = |k: &str| {
                a.get("labels")
                    .and_then(|l| l.get(k))
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let state = a.get("state").and_then(Json::as_str).unwrap_or("");
            (label("alertname"), state.to_string(), label("child"))
        })
        .collect()
}

fn tunnel_down_firing(port: u16, child: &str) -> bool {
    alerts(port)
        .iter()
        .any(|(n, s, c)| n == "SwandogTunnelDown" && s == "firing" && c == child)
}

/// Lines of `text` with swandog's figures (for the record in the test output).
fn swandog_lines(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("swandog_") || l.starts_with("node_textfile_scrape_error"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn real_node_exporter_and_prometheus_fire_and_clear_the_tunnel_down_alert() {
    if lab_disabled("real_node_exporter_and_prometheus_fire_and_clear_the_tunnel_down_alert") {
        return;
    }
    let dir = scratch_dir("metrics-real");
    let textfiles = dir.join("textfile");
    std::fs::create_dir_all(&textfiles).unwrap();
    let prom_file = textfiles.join("swandog.prom");

    // The shipped rules are valid as they are.
    let (ok, out) = promtool(&["check", "rules", RULES], None);
    assert!(
        ok && out.contains("SUCCESS"),
        "promtool check rules:\n{out}"
    );

    let lab = Lab::up("metr");
    let agent = Swandog::start(
        "metrics-real",
        &lab.uri("a"),
        &[
            "--metrics-file",
            prom_file.to_str().unwrap(),
            "--backoff-cap-ms",
            "4000",
        ],
    );
    let child_up = |text: &str, child: &str| {
        value_of(
            text,
            &format!("swandog_child_up{{child=\"{child}\",ike=\"con2\"}}"),
        )
    };
    let file_text = || std::fs::read_to_string(&prom_file).unwrap_or_default();
    let up = wait_for(Duration::from_secs(30), || {
        let t = file_text();
        child_up(&t, "con2_1") == Some(1.0) && child_up(&t, "con2_2") == Some(1.0)
    });
    assert!(
        up.is_some(),
        "metrics file never showed con2_1 and con2_2 up:\n{}\n{}",
        file_text(),
        agent.log()
    );
    let mode = std::fs::metadata(&prom_file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o644
    );

    // promtool's own parser and linter.
    let (ok, out) = promtool(&["check", "metrics"], Some(&prom_file));
    assert!(ok, "promtool check metrics:\n{out}\n{}", file_text());
    assert!(out.trim().is_empty(), "promtool lint findings:\n{out}");

    // A real node exporter reads it whole.
    let ne_port = free_port();
    let _ne = node_exporter(&textfiles, ne_port, &dir.join("node-exporter.log"));
    let scraped = scrape(ne_port);
    assert_eq!(
        value_of(&scraped, "node_textfile_scrape_error"),
        Some(0.0),
        "{scraped}"
    );
    assert_eq!(child_up(&scraped, "con2_1"), Some(1.0), "{scraped}");
    assert_eq!(
        value_of(&scraped, "swandog_charon_connected"),
        Some(1.0),
        "{scraped}"
    );

    // A real Prometheus scraping that node exporter, evaluating the shipped rules.
    let prom_port = free_port();
    let rules = fast_rules(&dir, 2);
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{ne_port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let _prom = Proc::start(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        &dir.join("prometheus.log"),
    );
    let prom_log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let query = format!(
        "/api/v1/query?query={}",
        url_encode("swandog_child_up{child=\"con2_1\"}")
    );
    let scraping = wait_for(Duration::from_secs(60), || {
        http_get(prom_port, &query).is_some_and(|(c, b)| c == 200 && b.contains("\"con2_1\""))
    });
    assert!(
        scraping.is_some(),
        "Prometheus never had swandog_child_up for con2_1:\n{}",
        prom_log()
    );
    assert!(
        !tunnel_down_firing(prom_port, "con2_1"),
        "{:?}",
        alerts(prom_port)
    );

    // Break the link: DPD gives up, swandog's re-initiations fail, the alert fires.
    let broke = Instant::now();
    lab.must(&["break"]);
    let fired = wait_for(Duration::from_secs(60), || {
        tunnel_down_firing(prom_port, "con2_1")
    });
    assert!(
        fired.is_some(),
        "SwandogTunnelDown never fired for con2_1: {:?}\n{}\n{}",
        alerts(prom_port),
        file_text(),
        agent.log()
    );
    let during = scrape(ne_port);
    eprintln!(
        "SwandogTunnelDown firing {:?} after the break; alerts: {:?}",
        broke.elapsed(),
        alerts(prom_port)
    );
    eprintln!(
        "node exporter scrape while broken:\n{}",
        swandog_lines(&during)
    );
    if let Some((_, body)) = http_get(prom_port, "/api/v1/alerts") {
        eprintln!("GET /api/v1/alerts while broken:\n{body}");
    }
    assert_eq!(child_up(&during, "con2_1"), Some(0.0), "{during}");
    assert!(
        value_of(
            &during,
            "swandog_child_down_seconds{child=\"con2_1\",ike=\"con2\"}"
        )
        .is_some_and(|s| s > 0.0),
        "{during}"
    );

    // swandog keeps trying; each failed attempt is counted with charon's reason.
    let failures = "swandog_child_failures_total{cause=\"no-reply\",child=\"con2_1\"}";
    let counted = wait_for(Duration::from_secs(30), || {
        value_of(&scrape(ne_port), failures).is_some_and(|n| n >= 1.0)
    });
    let before_heal = scrape(ne_port);
    assert!(
        counted.is_some(),
        "no failed attempt of con2_1 counted as no-reply:\n{}\n{}",
        swandog_lines(&before_heal),
        agent.log()
    );
    assert!(tunnel_down_firing(prom_port, "con2_1"));
    eprintln!(
        "node exporter scrape {:?} after the break, alert firing:\n{}",
        broke.elapsed(),
        swandog_lines(&before_heal)
    );
    if let Some((_, body)) = http_get(
        prom_port,
        &format!("/api/v1/query?query={}", url_encode("ALERTS")),
    ) {
        eprintln!("GET /api/v1/query?query=ALERTS:\n{body}");
    }

    // Heal: swandog brings the children back, the alert clears.
    let healed = Instant::now();
    lab.must(&["heal"]);
    let cleared = wait_for(Duration::from_secs(60), || {
        !alerts(prom_port)
            .iter()
            .any(|(n, _, c)| n == "SwandogTunnelDown" && c == "con2_1")
    });
    assert!(
        cleared.is_some(),
        "SwandogTunnelDown still held after the heal: {:?}\n{}\n{}",
        alerts(prom_port),
        file_text(),
        agent.log()
    );
    eprintln!(
        "SwandogTunnelDown cleared {:?} after the heal",
        healed.elapsed()
    );
    let after = scrape(ne_port);
    assert_eq!(child_up(&after, "con2_1"), Some(1.0), "{after}");
    assert_eq!(
        value_of(&after, "node_textfile_scrape_error"),
        Some(0.0),
        "{after}"
    );
    // The outage left its counters: DPD failures by verdict, swandog's re-initiations.
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("swandog_dpd_failures_total{ike=\"con2\"")),
        "{after}"
    );
    assert!(
        value_of(&after, "swandog_reinitiations_total{child=\"con2_1\"}").is_some(),
        "{after}"
    );
    // The verdict and cause lines of this run (docs/OPERATING.md quotes them).
    for l in agent.log().lines().filter(|l| {
        l.contains("DPD failure [") || l.contains(": down (") || l.contains("re-initiation failed")
    }) {
        eprintln!("swandog: {l}");
    }
    drop(agent);
    // A clean stop takes the file away: a stopped swandog leaves no live-looking figures.
    assert!(!prom_file.exists(), "metrics file left after SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `child-updown` up event for a route-based child `child` of IKE_SA `ike` (names as given).
fn child_up_event(ike: &str, child: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut w = Writer::new(&mut buf, PacketType::Event, Some(b"child-updown")).unwrap();
    w.key_value(b"up", b"yes").unwrap();
    w.section_start(ike.as_bytes()).unwrap();
    w.key_value(b"uniqueid", b"77").unwrap();
    w.key_value(b"state", b"ESTABLISHED").unwrap();
    w.key_value(b"local-host", b"192.0.2.1").unwrap();
    w.key_value(b"remote-host", b"192.0.2.2").unwrap();
    w.section_start(b"child-sas").unwrap();
    w.section_start(b"x-78").unwrap();
    w.key_value(b"name", child.as_bytes()).unwrap();
    w.key_value(b"uniqueid", b"78").unwrap();
    w.key_value(b"state", b"INSTALLED").unwrap();
    w.key_value(b"if-id-in", b"0000002c").unwrap();
    w.key_value(b"if-id-out", b"0000002c").unwrap();
    for _ in 0..3 {
        w.section_end().unwrap();
    }
    w.finish().unwrap().to_vec()
}

#[test]
fn hostile_names_still_give_a_file_node_exporter_accepts() {
    // No lab, but the same limit: an emulated run cannot start swandog or node exporter.
    if lab_disabled("hostile_names_still_give_a_file_node_exporter_accepts") {
        return;
    }
    let dir = scratch_dir("metrics-hostile");
    let textfiles = dir.join("textfile");
    std::fs::create_dir_all(&textfiles).unwrap();
    let prom_file = textfiles.join("swandog.prom");
    let fake = FakeVici::start(&dir.join("charon.vici"), Mode::Healthy);
    let agent = Swandog::start(
        "metrics-hostile",
        &fake.uri(),
        &["--metrics-file", prom_file.to_str().unwrap()],
    );
    // Once swandog is registered (an event between two registrations is another matter).
    let (connected, _) = agent.wait_status(Duration::from_secs(20), |s| {
        s.get("vici")
            .and_then(|v| v.get("connected"))
            .and_then(Json::as_bool)
            == Some(true)
    });
    assert!(connected, "swandog never connected:\n{}", agent.log());
    let (ike, child) = ("evil\"ike\nx", "c\\h\"ld\nup 1");
    fake.push(child_up_event(ike, child));
    let series = "swandog_child_up{child=\"c\\\\h\\\"ld\\nup 1\",ike=\"evil\\\"ike\\nx\"}";
    let text = || std::fs::read_to_string(&prom_file).unwrap_or_default();
    let seen = wait_for(Duration::from_secs(20), || {
        value_of(&text(), series).is_some()
    });
    assert!(
        seen.is_some(),
        "no escaped series {series} in:\n{}\n{}",
        text(),
        agent.log()
    );
    let (ok, out) = promtool(&["check", "metrics"], Some(&prom_file));
    assert!(ok, "promtool check metrics:\n{out}\n{}", text());

    let ne_port = free_port();
    let _ne = node_exporter(&textfiles, ne_port, &dir.join("node-exporter.log"));
    let scraped = scrape(ne_port);
    assert_eq!(
        value_of(&scraped, "node_textfile_scrape_error"),
        Some(0.0),
        "{scraped}"
    );
    assert!(
        value_of(&scraped, series).is_some(),
        "node exporter lost the hostile series:\n{}",
        swandog_lines(&scraped)
    );
    drop(agent);
    drop(fake);
    let _ = std::fs::remove_dir_all(&dir);
}
