//! Route-based discovery against a real lab: a route-based child that comes up after swandog
//! started (charon started later, a tunnel brought up by hand) is watched at once, from its
//! `child-updown` event, not at the next reconciling poll (30 s, or 120 s on a busy box).
//! Needs root and the lab's packages.

mod common;

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use common::{lab_disabled, scratch_dir, swandog, wait_for, Lab};

#[test]
fn a_route_based_child_coming_up_later_is_watched_at_once() {
    if lab_disabled("a_route_based_child_coming_up_later_is_watched_at_once") {
        return;
    }
    let lab = Lab::up("tdisc");
    lab.must(&["terminate", "a", "con2_1"]);
    let dir = scratch_dir("discovery");
    let log = dir.join("log");
    let mut child = swandog()
        .args(["run", "--log", "stderr", "--vici"])
        .arg(lab.uri("a"))
        .arg("--status-file")
        .arg(dir.join("status"))
        .stdin(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let text = || fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(15), || text()
            .contains("con2_2: watching"))
        .is_some(),
        "{}",
        text()
    );
    assert!(!text().contains("con2_1: watching"), "{}", text());

    lab.must(&["initiate", "a", "con2_1"]);
    let took = wait_for(Duration::from_secs(5), || {
        text().contains("con2_1: watching")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        took.is_some(),
        "con2_1 not watched within 5 s of coming up (the poll is 30 s):\n{}",
        text()
    );
    let _ = fs::remove_dir_all(&dir);
}
