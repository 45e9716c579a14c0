//! The swanctl.conf reader on any set of files: the input is split at NUL bytes into the main
//! file and files it may include (OpenWrt's layout plus conf.d snippets). It never panics, its
//! errors are one line naming a file, and what it finds stays within its caps and points at a
//! real line of a real file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swandog::limits::{SWANCTL_CONF_CHILDREN_MAX, SWANCTL_CONF_NOTES_MAX};
use swandog::swanctl_conf::{read_route_children, MemFiles};

const MAIN: &str = "/etc/swanctl/swanctl.conf";
const PATHS: [&str; 4] = [
    MAIN,
    "/var/swanctl/swanctl.conf",
    "/etc/swanctl/conf.d/a.conf",
    "/etc/swanctl/conf.d/sub/b.conf",
];

fuzz_target!(|data: &[u8]| {
    let mut files = MemFiles::default();
    let mut texts: Vec<(String, &[u8])> = Vec::new();
    for (i, part) in data.split(|&b| b == 0).enumerate().take(16) {
        let path = match PATHS.get(i) {
            Some(p) => p.to_string(),
            None => format!("/etc/swanctl/conf.d/{i}.conf"),
        };
        files.add(&path, part);
        texts.push((path, part));
    }
    match read_route_children(&mut files, MAIN) {
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.contains('\n'), "multi-line error: {shown:?}");
            assert!(shown.starts_with(e.file()), "{shown:?}");
        }
        Ok(found) => {
            assert!(found.children().len() <= SWANCTL_CONF_CHILDREN_MAX);
            assert!(found.notes().len() <= SWANCTL_CONF_NOTES_MAX);
            for child in found.children() {
                let (_, text) = texts
                    .iter()
                    .find(|(p, _)| *p == child.at.file)
                    .unwrap_or_else(|| panic!("child {child:?} in a file that was not given"));
                let lines = text.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
                assert!(child.at.line >= 1 && child.at.line <= lines, "{child:?}");
                assert!(!child.conn.is_empty() && !child.child.is_empty());
            }
            for note in found.notes() {
                assert!(!note.to_string().contains('\n'), "{note:?}");
            }
            assert!(!found.changed(&mut files), "nothing changed since the read");
        }
    }
});
