//! Reads strongSwan's `swanctl.conf` the way `swanctl --load-all` does (settings syntax,
//! `include` with globs) to find every **route-based child**: one configured with `if_id_in`,
//! `if_id_out`, `mark_in` or `mark_out` (a number or `%unique`), so it can be kept up even if it
//! was never seen up.
//!
//! ```
//! use swandog::swanctl_conf::{read_route_children, MemFiles};
//!
//! let mut files = MemFiles::default();
//! files.add("/etc/swanctl/swanctl.conf", "include conf.d/*.conf\n");
//! files.add(
//!     "/etc/swanctl/conf.d/site.conf",
//!     "connections { site { children { lan { if_id_in = 42 } } } }\n",
//! );
//! let found = read_route_children(&mut files, "/etc/swanctl/swanctl.conf").unwrap();
//! let child = &found.children()[0];
//! assert_eq!((child.conn.as_str(), child.child.as_str()), ("site", "lan"));
//! assert_eq!(child.at.to_string(), "/etc/swanctl/conf.d/site.conf:1");
//! ```
//!
//! Syntax (strongswan.conf(5), as its lexer reads it): `name { ... }` sections (also
//! `name : ref, ref { ... }`, whose references are noted, not followed), `key = value` up to the
//! end of the line, a `#` comment or a `}`; values may be `"quoted"` with `\n \t \" \\` escapes;
//! `include PATTERN` anywhere, relative to the including file's directory, shell wildcards
//! (`* ? [a-z] [!a]`), sorted, a pattern that matches nothing ignored (as strongSwan does).
//! Included settings extend the section the `include` is in; a later value replaces an earlier.
//!
//! Bounded: the limits in [`crate::limits`] (`SWANCTL_CONF_*`). What the reader cannot read is
//! one [`SwanctlConfError`] naming the file and line; what it can read around (a bad `if_id`
//! value, a child beyond the cap) is a [`Note`] or an overflow count. It never panics.
//! Files are reached through [`ConfFiles`] ([`DiskFiles`] on a router, [`MemFiles`] in tests).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::time::SystemTime;

use crate::limits::{
    NAME_MAX_BYTES, SWANCTL_CONF_CHILDREN_MAX, SWANCTL_CONF_FILES_MAX, SWANCTL_CONF_FILE_MAX_BYTES,
    SWANCTL_CONF_GLOB_ENTRIES_MAX, SWANCTL_CONF_INCLUDE_DEPTH_MAX, SWANCTL_CONF_NOTES_MAX,
    SWANCTL_CONF_PATH_MAX_BYTES, SWANCTL_CONF_SECTION_DEPTH_MAX,
};

/// Where swanctl reads its configuration on OpenWrt and Debian.
pub const DEFAULT_SWANCTL_CONF: &str = "/etc/swanctl/swanctl.conf";

/// A child setting that makes it route-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKey {
    /// `if_id_in` (XFRM interface id, inbound).
    IfIdIn,
    /// `if_id_out`.
    IfIdOut,
    /// `mark_in` (classic VTI mark, inbound).
    MarkIn,
    /// `mark_out`.
    MarkOut,
}

impl RouteKey {
    /// In the order a child's deciding key is chosen.
    pub const ALL: [RouteKey; 4] = [
        RouteKey::IfIdIn,
        RouteKey::IfIdOut,
        RouteKey::MarkIn,
        RouteKey::MarkOut,
    ];

    /// The key as written in swanctl.conf.
    pub fn name(self) -> &'static str {
        match self {
            RouteKey::IfIdIn => "if_id_in",
            RouteKey::IfIdOut => "if_id_out",
            RouteKey::MarkIn => "mark_in",
            RouteKey::MarkOut => "mark_out",
        }
    }

    fn from_name(name: &[u8]) -> Option<RouteKey> {
        RouteKey::ALL
            .into_iter()
            .find(|k| k.name().as_bytes() == name)
    }

    fn index(self) -> usize {
        self as usize
    }

    fn is_mark(self) -> bool {
        matches!(self, RouteKey::MarkIn | RouteKey::MarkOut)
    }
}

/// The value of a route key that is set (0 and empty mean "not set" to strongSwan).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteValue {
    /// A fixed interface id or mark value (for a mark, without its `/mask`).
    Number(u32),
    /// `%unique`: a fresh value per CHILD_SA.
    Unique,
    /// `%unique-dir`: a fresh value per CHILD_SA and direction.
    UniqueDir,
}

impl fmt::Display for RouteValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteValue::Number(n) => write!(f, "{n}"),
            RouteValue::Unique => f.write_str("%unique"),
            RouteValue::UniqueDir => f.write_str("%unique-dir"),
        }
    }
}

/// A file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The file's path as the reader opened it (includes joined to their directory).
    pub file: String,
    /// 1-based line.
    pub line: u32,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", Shown(&self.file), self.line)
    }
}

/// A path in a message: control characters escaped, so a message stays one line.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// A route-based child found in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteChild {
    /// The connection (`connections.<conn>`).
    pub conn: String,
    /// The child (`connections.<conn>.children.<child>`), the name `initiate` takes.
    pub child: String,
    /// The first of `if_id_in`, `if_id_out`, `mark_in`, `mark_out` that is set.
    pub key: RouteKey,
    /// Its value.
    pub value: RouteValue,
    /// Where that value was set (the last assignment, as strongSwan keeps the last).
    pub at: Place,
}

/// Something the reader read around: the rest of the configuration is still used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where.
    pub at: Place,
    /// What.
    pub what: NoteKind,
}

/// The kinds of [`Note`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// A route key's value is neither a number nor `%unique` / `%unique-dir`: this setting is
    /// ignored (swanctl would refuse the connection).
    BadValue {
        /// The key.
        key: RouteKey,
        /// The value as written (cut to 64 bytes).
        value: String,
    },
    /// A connection or child name longer than swandog stores, or not UTF-8: not watched.
    UnusableName {
        /// The name (lossy, cut to 64 bytes).
        name: String,
    },
    /// A connection or child section inherits (`name : ref`); inherited keys are not followed.
    InheritanceNotFollowed {
        /// The section's name.
        section: String,
    },
    /// An `include` matched no file, or named none (strongSwan ignores it too).
    IncludeMatchedNothing {
        /// The pattern as joined to the including file's directory.
        pattern: String,
    },
    /// An included path is not a regular file or cannot be opened: skipped, as strongSwan
    /// skips it.
    IncludeSkipped {
        /// The path.
        path: String,
        /// Why.
        why: String,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.at)?;
        match &self.what {
            NoteKind::BadValue { key, value } => write!(
                f,
                "{} = {value:?} is not a number, %unique or %unique-dir: ignored (swanctl refuses it too)",
                key.name()
            ),
            NoteKind::UnusableName { name } => write!(
                f,
                "name {name:?} is longer than {NAME_MAX_BYTES} bytes or not UTF-8: its child is not watched"
            ),
            NoteKind::InheritanceNotFollowed { section } => write!(
                f,
                "section {section:?} inherits from other sections: route keys it inherits are not seen; \
                 set if_id_in / if_id_out in the child itself or name it in watch"
            ),
            NoteKind::IncludeMatchedNothing { pattern } => {
                write!(f, "include {pattern:?} matches no file (ignored, as swanctl does)")
            }
            NoteKind::IncludeSkipped { path, why } => {
                write!(f, "include: {}: {why}: skipped (as swanctl does)", Shown(path))
            }
        }
    }
}

/// Everything found in one read of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteChildren {
    children: Vec<RouteChild>,
    children_overflow: u32,
    notes: Vec<Note>,
    notes_overflow: u32,
    watched: Vec<(String, Option<SystemTime>)>,
}

impl RouteChildren {
    /// The route-based children, in the order they first appear.
    pub fn children(&self) -> &[RouteChild] {
        &self.children
    }

    /// Route-key settings of children beyond [`SWANCTL_CONF_CHILDREN_MAX`] (not kept).
    pub fn children_overflow(&self) -> u32 {
        self.children_overflow
    }

    /// The route-based child named `child`, if any.
    pub fn find(&self, child: &str) -> Option<&RouteChild> {
        self.children.iter().find(|c| c.child == child)
    }

    /// What was read around, at most [`SWANCTL_CONF_NOTES_MAX`].
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Notes beyond [`SWANCTL_CONF_NOTES_MAX`] (not kept).
    pub fn notes_overflow(&self) -> u32 {
        self.notes_overflow
    }

    /// The files read and the directories listed for globs, in reading order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.watched.iter().map(|(p, _)| p.as_str())
    }

    /// True when a file read or a directory listed has changed its mtime (or appeared or
    /// vanished) since: time to read again.
    pub fn changed<F: ConfFiles>(&self, fs: &mut F) -> bool {
        self.watched.iter().any(|(p, m)| fs.mtime(p) != *m)
    }
}

/// Why a file could not be read or listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    /// It does not exist.
    NotFound,
    /// It is a directory or a device, not a file (or, listing, not a directory).
    NotAFile,
    /// It holds more than the size asked for.
    TooLarge,
    /// The directory has more entries than asked for.
    TooManyEntries,
    /// Any other error, as the OS says it.
    Io(String),
}

/// How the reader reaches files: the disk ([`DiskFiles`]) or memory ([`MemFiles`]).
pub trait ConfFiles {
    /// The whole file, if it holds at most `max_bytes`.
    fn read(&mut self, path: &str, max_bytes: usize) -> Result<Vec<u8>, FileError>;
    /// The names in a directory (no `.` and `..`), if there are at most `max_entries`.
    fn list_dir(&mut self, dir: &str, max_entries: usize) -> Result<Vec<String>, FileError>;
    /// The modification time, `None` when it does not exist.
    fn mtime(&mut self, path: &str) -> Option<SystemTime>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskFiles;

/// Least capacity of a file read: above the size from which malloc maps an allocation on its own
/// (musl: 128 KiB less its header; glibc: `M_MMAP_THRESHOLD`, 128 KiB by default), so freeing it
/// unmaps it. Only the pages the file fills are ever touched.
const READ_BUFFER_MIN_BYTES: usize = 132 * 1024;

impl ConfFiles for DiskFiles {
    fn read(&mut self, path: &str, max_bytes: usize) -> Result<Vec<u8>, FileError> {
        let file = std::fs::File::open(path).map_err(io_error)?;
        let meta = file.metadata().map_err(io_error)?;
        if !meta.is_file() {
            return Err(FileError::NotAFile);
        }
        if meta.len() > max_bytes as u64 {
            return Err(FileError::TooLarge);
        }
        // Sized to the file at once (growing by doubling would touch up to twice its size), and
        // never below READ_BUFFER_MIN_BYTES: an allocation that large is mapped on its own by
        // musl's and glibc's malloc and goes back to the kernel when the read is done, instead of
        // leaving its pages resident in the heap for the rest of the run (measured: the 16 KiB
        // Debian example swanctl.conf left 20 KiB of anonymous memory behind without this). The
        // length can change between the stat and the read: bound the read itself too.
        let mut bytes = Vec::with_capacity((meta.len() as usize + 1).max(READ_BUFFER_MIN_BYTES));
        file.take(max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        if bytes.len() > max_bytes {
            return Err(FileError::TooLarge);
        }
        Ok(bytes)
    }

    fn list_dir(&mut self, dir: &str, max_entries: usize) -> Result<Vec<String>, FileError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            if names.len() == max_entries {
                return Err(FileError::TooManyEntries);
            }
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn mtime(&mut self, path: &str) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }
}

fn io_error(e: std::io::Error) -> FileError {
    match e.kind() {
        std::io::ErrorKind::NotFound => FileError::NotFound,
        _ if e.raw_os_error() == Some(nix::libc::ENOTDIR) => FileError::NotAFile,
        _ if e.raw_os_error() == Some(nix::libc::EISDIR) => FileError::NotAFile,
        _ => FileError::Io(e.to_string()),
    }
}

/// Files in memory, for tests and the fuzz target. Directories are implied by file paths;
/// every file has the same fixed mtime unless [`MemFiles::touch`]ed.
#[derive(Clone, Debug, Default)]
pub struct MemFiles {
    files: BTreeMap<String, (Vec<u8>, u64)>,
}

impl MemFiles {
    /// Adds (or replaces) a file.
    pub fn add(&mut self, path: &str, text: impl AsRef<[u8]>) {
        let stamp = self.files.get(path).map_or(0, |f| f.1);
        self.files
            .insert(path.to_string(), (text.as_ref().to_vec(), stamp));
    }

    /// Removes a file.
    pub fn remove(&mut self, path: &str) {
        self.files.remove(path);
    }

    /// Gives a file a newer mtime.
    pub fn touch(&mut self, path: &str) {
        if let Some(f) = self.files.get_mut(path) {
            f.1 += 1;
        }
    }

    fn dir_prefix(dir: &str) -> String {
        if dir.ends_with('/') {
            dir.to_string()
        } else {
            format!("{dir}/")
        }
    }
}

impl ConfFiles for MemFiles {
    fn read(&mut self, path: &str, max_bytes: usize) -> Result<Vec<u8>, FileError> {
        if let Some((bytes, _)) = self.files.get(path) {
            return match bytes.len() > max_bytes {
                true => Err(FileError::TooLarge),
                false => Ok(bytes.clone()),
            };
        }
        match self.list_dir(path, usize::MAX) {
            Ok(_) => Err(FileError::NotAFile),
            Err(_) => Err(FileError::NotFound),
        }
    }

    fn list_dir(&mut self, dir: &str, max_entries: usize) -> Result<Vec<String>, FileError> {
        let prefix = MemFiles::dir_prefix(dir);
        let mut names: Vec<String> = Vec::new();
        for path in self.files.keys() {
            if let Some(rest) = path.strip_prefix(&prefix) {
                let name = rest.split('/').next().unwrap_or(rest);
                if !name.is_empty() && names.last().map(String::as_str) != Some(name) {
                    if names.len() == max_entries {
                        return Err(FileError::TooManyEntries);
                    }
                    names.push(name.to_string());
                }
            }
        }
        if names.is_empty() {
            return Err(FileError::NotFound);
        }
        Ok(names)
    }

    fn mtime(&mut self, path: &str) -> Option<SystemTime> {
        let base = SystemTime::UNIX_EPOCH;
        if let Some((_, stamp)) = self.files.get(path) {
            return Some(base + std::time::Duration::from_secs(1 + stamp));
        }
        // A directory's mtime: the number of entries stands in for "changed".
        let n = self.list_dir(path, usize::MAX).ok()?.len() as u64;
        Some(base + std::time::Duration::from_secs(1_000_000 + n))
    }
}

/// What the reader cannot read: the file, the line (0: the file as a whole) and the problem.
/// Displays as one line: `/etc/swanctl/swanctl.conf:12: section "children" opened on line 7 is
/// not closed: add a '}'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwanctlConfError {
    file: String,
    line: u32,
    problem: Problem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Problem {
    NotFound,
    NotAFile,
    Unreadable(String),
    TooLarge,
    Syntax(String),
    UnterminatedString,
    Unclosed { name: String, line: u32 },
    UnexpectedClose,
    SectionTooDeep,
    IncludeTooDeep,
    IncludeLoop(String),
    TooManyFiles,
    GlobTooLarge(String),
    PathTooLong,
}

impl SwanctlConfError {
    fn at(file: &str, line: u32, problem: Problem) -> SwanctlConfError {
        SwanctlConfError {
            file: file.to_string(),
            line,
            problem,
        }
    }

    /// True when the main file does not exist (normal on a box that does not use swanctl).
    pub fn is_not_found(&self) -> bool {
        self.problem == Problem::NotFound
    }

    /// The file the problem is in.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line the problem is on, if it is on one.
    pub fn line(&self) -> Option<u32> {
        (self.line > 0).then_some(self.line)
    }
}

impl fmt::Display for SwanctlConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: ", Shown(&self.file))?,
            n => write!(f, "{}:{n}: ", Shown(&self.file))?,
        }
        match &self.problem {
            Problem::NotFound => f.write_str("no such file"),
            Problem::NotAFile => f.write_str("not a regular file"),
            Problem::Unreadable(e) => write!(f, "cannot read it: {e}"),
            Problem::TooLarge => write!(
                f,
                "larger than {SWANCTL_CONF_FILE_MAX_BYTES} bytes: is this a swanctl.conf?"
            ),
            Problem::Syntax(what) => f.write_str(what),
            Problem::UnterminatedString => {
                f.write_str("string not terminated: add the closing '\"'")
            }
            Problem::Unclosed { name, line } => write!(
                f,
                "section {name:?} opened on line {line} is not closed at the end of the file: add a '}}'"
            ),
            Problem::UnexpectedClose => {
                f.write_str("'}' closes no section of this file: remove it or open the section first")
            }
            Problem::SectionTooDeep => write!(
                f,
                "sections nested deeper than {SWANCTL_CONF_SECTION_DEPTH_MAX}: is a '}}' missing?"
            ),
            Problem::IncludeTooDeep => write!(
                f,
                "includes nested deeper than {SWANCTL_CONF_INCLUDE_DEPTH_MAX} files: look for an include loop"
            ),
            Problem::IncludeLoop(path) => write!(
                f,
                "include loop: {} is already being read (it includes itself, directly or through \
                 other files): remove one of the include lines",
                Shown(path)
            ),
            Problem::TooManyFiles => write!(
                f,
                "more than {SWANCTL_CONF_FILES_MAX} files included: narrow the include patterns"
            ),
            Problem::GlobTooLarge(dir) => write!(
                f,
                "include: {} has more than {SWANCTL_CONF_GLOB_ENTRIES_MAX} entries to match: narrow the pattern",
                Shown(dir)
            ),
            Problem::PathTooLong => write!(
                f,
                "include path longer than {SWANCTL_CONF_PATH_MAX_BYTES} bytes"
            ),
        }
    }
}

impl std::error::Error for SwanctlConfError {}

/// Reads the configuration at `path` and every file it includes; finds the route-based children.
pub fn read_route_children<F: ConfFiles>(
    fs: &mut F,
    path: &str,
) -> Result<RouteChildren, SwanctlConfError> {
    let path = normalize(path);
    if path.len() > SWANCTL_CONF_PATH_MAX_BYTES {
        return Err(SwanctlConfError::at(&path, 0, Problem::PathTooLong));
    }
    let mut reader = Reader {
        fs,
        stack: Vec::new(),
        open_files: Vec::new(),
        files_read: 0,
        tracked: Vec::new(),
        found: RouteChildren::default(),
    };
    reader.read_file(&path, None)?;
    let mut found = reader.found;
    for t in reader.tracked {
        if let Some((key, (value, at))) = RouteKey::ALL
            .into_iter()
            .find_map(|k| t.keys[k.index()].clone().map(|v| (k, v)))
        {
            found.children.push(RouteChild {
                conn: t.conn,
                child: t.child,
                key,
                value,
                at,
            });
        }
    }
    Ok(found)
}

/// [`read_route_children`] from the disk.
pub fn read_route_children_from_disk(path: &str) -> Result<RouteChildren, SwanctlConfError> {
    read_route_children(&mut DiskFiles, path)
}

/// A child that has had a route key set, with each key's current value.
struct Tracked {
    conn: String,
    child: String,
    keys: [Option<(RouteValue, Place)>; 4],
}

struct Reader<'f, F: ConfFiles> {
    fs: &'f mut F,
    /// Section names from the top, across includes (an include adds to its section).
    stack: Vec<String>,
    /// The include chain being read (for loops).
    open_files: Vec<String>,
    files_read: usize,
    tracked: Vec<Tracked>,
    found: RouteChildren,
}

impl<F: ConfFiles> Reader<'_, F> {
    /// Reads one file. `from` is the include line (None for the main file). A file that does
    /// not exist, is not a regular file or cannot be opened is an error for the main file; for
    /// an include it is `Ok(false)` (not there) or a note and `Ok(true)` (there, skipped).
    fn read_file(&mut self, path: &str, from: Option<&Place>) -> Result<bool, SwanctlConfError> {
        let (at_file, at_line) = from.map_or((path, 0), |p| (p.file.as_str(), p.line));
        if self.open_files.iter().any(|f| f == path) {
            return Err(SwanctlConfError::at(
                at_file,
                at_line,
                Problem::IncludeLoop(path.to_string()),
            ));
        }
        if self.open_files.len() > SWANCTL_CONF_INCLUDE_DEPTH_MAX {
            return Err(SwanctlConfError::at(
                at_file,
                at_line,
                Problem::IncludeTooDeep,
            ));
        }
        if self.files_read >= SWANCTL_CONF_FILES_MAX {
            return Err(SwanctlConfError::at(
                at_file,
                at_line,
                Problem::TooManyFiles,
            ));
        }
        let mtime = self.fs.mtime(path);
        let bytes = match self.fs.read(path, SWANCTL_CONF_FILE_MAX_BYTES) {
            Ok(b) => b,
            Err(FileError::NotFound) if from.is_some() => return Ok(false),
            Err(e @ (FileError::NotAFile | FileError::Io(_))) if from.is_some() => {
                let why = match e {
                    FileError::Io(e) => e,
                    _ => "not a regular file".to_string(),
                };
                let (file, line) = (at_file.to_string(), at_line);
                let path = path.to_string();
                self.note(&file, line, NoteKind::IncludeSkipped { path, why });
                return Ok(true);
            }
            Err(e) => {
                let problem = match e {
                    FileError::NotFound => Problem::NotFound,
                    FileError::NotAFile | FileError::TooManyEntries => Problem::NotAFile,
                    FileError::TooLarge => Problem::TooLarge,
                    FileError::Io(e) => Problem::Unreadable(e),
                };
                return Err(SwanctlConfError::at(path, 0, problem));
            }
        };
        self.files_read += 1;
        self.watch(path, mtime, from)?;
        self.open_files.push(path.to_string());
        let result = self.parse(&bytes, path);
        self.open_files.pop();
        result.map(|()| true)
    }

    fn watch(
        &mut self,
        path: &str,
        mtime: Option<SystemTime>,
        from: Option<&Place>,
    ) -> Result<(), SwanctlConfError> {
        if self.found.watched.iter().any(|(p, _)| p == path) {
            return Ok(());
        }
        // Files are capped above; directories listed for globs share the same cap.
        if self.found.watched.len() >= 2 * SWANCTL_CONF_FILES_MAX {
            let (file, line) = from.map_or((path, 0), |p| (p.file.as_str(), p.line));
            return Err(SwanctlConfError::at(file, line, Problem::TooManyFiles));
        }
        self.found.watched.push((path.to_string(), mtime));
        Ok(())
    }

    fn note(&mut self, file: &str, line: u32, what: NoteKind) {
        if self.found.notes.len() < SWANCTL_CONF_NOTES_MAX {
            let at = Place {
                file: file.to_string(),
                line,
            };
            self.found.notes.push(Note { at, what });
        } else {
            self.found.notes_overflow = self.found.notes_overflow.saturating_add(1);
        }
    }

    fn parse(&mut self, text: &[u8], file: &str) -> Result<(), SwanctlConfError> {
        let mut cur = Cursor {
            text,
            pos: 0,
            line: 1,
        };
        // Line of each section this file opened (it must close them).
        let mut opened: Vec<u32> = Vec::new();
        loop {
            cur.skip_blank();
            let Some(b) = cur.peek() else { break };
            let line = cur.line;
            if b == b'}' {
                cur.pos += 1;
                if opened.pop().is_none() {
                    return Err(SwanctlConfError::at(file, line, Problem::UnexpectedClose));
                }
                self.stack.pop();
                continue;
            }
            if !is_name_byte(b) {
                let what = if b == b'"' {
                    "unexpected string: quotes are only allowed in values".to_string()
                } else {
                    format!(
                        "unexpected {:?}: expected a section name, a key or '}}'",
                        char::from(b)
                    )
                };
                return Err(SwanctlConfError::at(file, line, Problem::Syntax(what)));
            }
            let name = cur.take_name();
            if name == b"include" && cur.include_follows() {
                let pattern = cur.include_pattern(file)?;
                if pattern.is_empty() {
                    let pattern = String::new();
                    self.note(file, line, NoteKind::IncludeMatchedNothing { pattern });
                } else {
                    self.include(&pattern, file, line)?;
                }
                continue;
            }
            cur.skip_blank();
            match cur.peek() {
                Some(b'{') => {
                    cur.pos += 1;
                    self.open_section(name, false, file, line)?;
                    opened.push(line);
                }
                Some(b':') => {
                    cur.pos += 1;
                    cur.skip_references();
                    cur.skip_blank();
                    if cur.peek() != Some(b'{') {
                        let what = format!(
                            "expected '{{' after the references of section {:?}",
                            lossy(name)
                        );
                        return Err(SwanctlConfError::at(file, cur.line, Problem::Syntax(what)));
                    }
                    cur.pos += 1;
                    self.open_section(name, true, file, line)?;
                    opened.push(line);
                }
                Some(b'=') => {
                    cur.pos += 1;
                    let value = cur.value(file)?;
                    self.setting(name, &value, file, line);
                }
                _ => {
                    let what = format!(
                        "expected '=' or '{{' after {:?}: write key = value or name {{ ... }}",
                        lossy(name)
                    );
                    return Err(SwanctlConfError::at(file, cur.line, Problem::Syntax(what)));
                }
            }
        }
        if let Some(&open_line) = opened.last() {
            let name = self.stack.last().cloned().unwrap_or_default();
            return Err(SwanctlConfError::at(
                file,
                cur.line,
                Problem::Unclosed {
                    name,
                    line: open_line,
                },
            ));
        }
        Ok(())
    }

    fn open_section(
        &mut self,
        name: &[u8],
        inherits: bool,
        file: &str,
        line: u32,
    ) -> Result<(), SwanctlConfError> {
        if self.stack.len() >= SWANCTL_CONF_SECTION_DEPTH_MAX {
            return Err(SwanctlConfError::at(file, line, Problem::SectionTooDeep));
        }
        self.stack.push(lossy(name));
        let is_conn = self.stack.len() == 2 && self.stack[0] == "connections";
        if inherits && (is_conn || self.child_path().is_some()) {
            let section = lossy(name);
            self.note(file, line, NoteKind::InheritanceNotFollowed { section });
        }
        Ok(())
    }

    /// (conn, child) when the current section is `connections.<conn>.children.<child>`.
    fn child_path(&self) -> Option<(&str, &str)> {
        match self.stack.as_slice() {
            [c, conn, ch, child] if c == "connections" && ch == "children" => {
                Some((conn.as_str(), child.as_str()))
            }
            _ => None,
        }
    }

    fn setting(&mut self, key: &[u8], value: &[u8], file: &str, line: u32) {
        let Some(key) = RouteKey::from_name(key) else {
            return;
        };
        let Some((conn, child)) = self.child_path() else {
            return;
        };
        let (conn, child) = (conn.to_string(), child.to_string());
        for name in [&conn, &child] {
            if name.len() > NAME_MAX_BYTES || name.contains(char::REPLACEMENT_CHARACTER) {
                let name = cut(name.as_bytes());
                self.note(file, line, NoteKind::UnusableName { name });
                return;
            }
        }
        let value = match parse_route_value(value, key.is_mark()) {
            Ok(v) => v,
            Err(()) => {
                let value = cut(value);
                self.note(file, line, NoteKind::BadValue { key, value });
                return;
            }
        };
        let at = Place {
            file: file.to_string(),
            line,
        };
        let slot = value.map(|v| (v, at));
        if let Some(t) = self
            .tracked
            .iter_mut()
            .find(|t| t.conn == conn && t.child == child)
        {
            t.keys[key.index()] = slot;
        } else if slot.is_some() {
            if self.tracked.len() < SWANCTL_CONF_CHILDREN_MAX {
                let mut keys: [Option<(RouteValue, Place)>; 4] = Default::default();
                keys[key.index()] = slot;
                self.tracked.push(Tracked { conn, child, keys });
            } else {
                self.found.children_overflow = self.found.children_overflow.saturating_add(1);
            }
        }
    }

    fn include(&mut self, pattern: &str, file: &str, line: u32) -> Result<(), SwanctlConfError> {
        let joined = if pattern.starts_with('/') {
            pattern.to_string()
        } else {
            match file.rfind('/') {
                Some(i) => format!("{}/{pattern}", &file[..i]),
                None => pattern.to_string(),
            }
        };
        let joined = normalize(&joined);
        if joined.len() > SWANCTL_CONF_PATH_MAX_BYTES {
            return Err(SwanctlConfError::at(file, line, Problem::PathTooLong));
        }
        let from = Place {
            file: file.to_string(),
            line,
        };
        let mut any = false;
        if !has_wildcard(&joined) {
            let path = unescape(&joined);
            any = self.read_file(&path, Some(&from))?;
            if !any {
                // Watch the directory, so the file appearing later is noticed.
                let dir = parent(&path);
                let mtime = self.fs.mtime(&dir);
                self.watch(&dir, mtime, Some(&from))?;
            }
        } else {
            for path in self.expand(&joined, &from)? {
                any |= self.read_file(&path, Some(&from))?;
            }
        }
        if !any {
            self.note(
                file,
                line,
                NoteKind::IncludeMatchedNothing { pattern: joined },
            );
        }
        Ok(())
    }

    /// The paths a pattern with wildcards matches, sorted (as glob(3) does).
    fn expand(&mut self, pattern: &str, from: &Place) -> Result<Vec<String>, SwanctlConfError> {
        let too_large = |dir: &str| {
            SwanctlConfError::at(
                &from.file,
                from.line,
                Problem::GlobTooLarge(dir.to_string()),
            )
        };
        let mut paths = vec![if pattern.starts_with('/') {
            "/".to_string()
        } else {
            String::new()
        }];
        for comp in pattern.split('/').filter(|c| !c.is_empty()) {
            if !has_wildcard(comp) {
                let comp = unescape(comp);
                for p in &mut paths {
                    push_component(p, &comp);
                }
                continue;
            }
            let mut next = Vec::new();
            for p in &paths {
                let dir = if p.is_empty() { "." } else { p.as_str() };
                let mtime = self.fs.mtime(dir);
                let names = match self.fs.list_dir(dir, SWANCTL_CONF_GLOB_ENTRIES_MAX) {
                    Ok(names) => names,
                    Err(FileError::TooManyEntries) => return Err(too_large(dir)),
                    Err(_) => continue,
                };
                self.watch(dir, mtime, Some(from))?;
                let mut matched: Vec<String> = names
                    .into_iter()
                    .filter(|n| glob_match(comp.as_bytes(), n.as_bytes()))
                    .collect();
                sort_small(&mut matched);
                for n in matched {
                    if next.len() == SWANCTL_CONF_GLOB_ENTRIES_MAX {
                        return Err(too_large(dir));
                    }
                    let mut q = p.clone();
                    push_component(&mut q, &n);
                    next.push(q);
                }
            }
            paths = next;
        }
        sort_small(&mut paths);
        Ok(paths)
    }
}

/// A byte position in one file's text.
struct Cursor<'t> {
    text: &'t [u8],
    pos: usize,
    line: u32,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn newline(&mut self) {
        self.line = self.line.saturating_add(1);
    }

    /// Skips spaces, tabs, CRs, newlines and `#` comments.
    fn skip_blank(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.newline();
                }
                b'#' => self.skip_comment(),
                _ => break,
            }
        }
    }

    /// Skips to the end of the line (not past the newline).
    fn skip_comment(&mut self) {
        while let Some(b) = self.peek() {
            if b == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }

    fn take_name(&mut self) -> &'t [u8] {
        let start = self.pos;
        while self.peek().is_some_and(is_name_byte) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// After the word `include`: true (and the blanks skipped) when spaces or tabs and then
    /// something other than `=` follow, as strongSwan's lexer decides.
    fn include_follows(&mut self) -> bool {
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            return false;
        }
        let mut p = self.pos;
        while matches!(self.text.get(p), Some(b' ' | b'\t')) {
            p += 1;
        }
        if self.text.get(p) == Some(&b'=') {
            return false;
        }
        self.pos = p;
        true
    }

    /// The include pattern: up to a blank, `#`, `}` or the end of the line; `\"`, `\#`, `\}`
    /// and `\ ` escape; a quoted part ends the pattern.
    fn include_pattern(&mut self, file: &str) -> Result<String, SwanctlConfError> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            match b {
                b'\n' | b'#' | b'}' => break,
                b' ' | b'\t' => {
                    self.pos += 1;
                    break;
                }
                b'\r' => self.pos += 1,
                b'"' => {
                    self.pos += 1;
                    self.string(&mut out, file)?;
                    break;
                }
                b'\\' => match self.text.get(self.pos + 1) {
                    Some(&e @ (b'"' | b'#' | b'}' | b' ')) => {
                        out.push(e);
                        self.pos += 2;
                    }
                    _ => {
                        out.push(b'\\');
                        self.pos += 1;
                    }
                },
                _ => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        Ok(lossy(&out))
    }

    /// A quoted string's body (the opening quote already taken), appended to `out`.
    fn string(&mut self, out: &mut Vec<u8>, file: &str) -> Result<(), SwanctlConfError> {
        let start_line = self.line;
        loop {
            let Some(b) = self.peek() else {
                return Err(SwanctlConfError::at(
                    file,
                    start_line,
                    Problem::UnterminatedString,
                ));
            };
            self.pos += 1;
            match b {
                b'"' => return Ok(()),
                b'\r' => {}
                b'\n' => {
                    self.newline();
                    out.push(b'\n');
                }
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(SwanctlConfError::at(
                            file,
                            start_line,
                            Problem::UnterminatedString,
                        ));
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        // An escaped line end joins the lines.
                        b'\n' => self.newline(),
                        b'\r' if self.peek() == Some(b'\n') => {
                            self.pos += 1;
                            self.newline();
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }

    /// A value: words and quoted strings up to the end of the line, a `#` or a `}` (the last
    /// two are left for the section parser), joined by one space.
    fn value(&mut self, file: &str) -> Result<Vec<u8>, SwanctlConfError> {
        let mut out: Vec<u8> = Vec::new();
        let mut first = true;
        loop {
            self.skip_spaces();
            match self.peek() {
                None | Some(b'\n' | b'#' | b'}') => return Ok(out),
                Some(b'"') => {
                    self.pos += 1;
                    if !first {
                        out.push(b' ');
                    }
                    self.string(&mut out, file)?;
                }
                Some(_) => {
                    if !first {
                        out.push(b' ');
                    }
                    while let Some(b) = self.peek() {
                        if matches!(b, b'#' | b'}' | b'"' | b'\r' | b'\n' | b'\t' | b' ') {
                            break;
                        }
                        out.push(b);
                        self.pos += 1;
                    }
                }
            }
            first = false;
        }
    }

    /// `name[.name]*[, name[.name]*]*` after `section :` (the parser then wants a `{`).
    fn skip_references(&mut self) {
        loop {
            self.skip_blank();
            while self.peek().is_some_and(|b| b == b'.' || is_name_byte(b)) {
                self.pos += 1;
            }
            self.skip_blank();
            if self.peek() != Some(b',') {
                return;
            }
            self.pos += 1;
        }
    }
}

/// Bytes a section name or key may hold (strongswan.conf(5): any but `. , : { } = " #` and
/// blanks).
fn is_name_byte(b: u8) -> bool {
    !matches!(
        b,
        b'.' | b',' | b':' | b'{' | b'}' | b'=' | b'"' | b'#' | b'\n' | b'\t' | b' ' | b'\r'
    )
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// At most 64 bytes of `bytes`, as text, for notes.
fn cut(bytes: &[u8]) -> String {
    lossy(&bytes[..bytes.len().min(64)])
}

/// `Ok(None)` when the key is unset (empty or 0), `Err` when the value is unusable. strongSwan
/// reads the numbers with strtoul base 0: decimal, `0x` hex, a leading `0` octal; a mark may
/// carry a `/mask`.
fn parse_route_value(value: &[u8], is_mark: bool) -> Result<Option<RouteValue>, ()> {
    let text = core::str::from_utf8(value).map_err(|_| ())?.trim();
    let (text, mask) = match text.split_once('/') {
        Some((v, m)) if is_mark => (v, Some(m)),
        _ => (text, None),
    };
    if let Some(mask) = mask {
        parse_number(mask).ok_or(())?;
    }
    match text {
        "" => Ok(None),
        "%unique" => Ok(Some(RouteValue::Unique)),
        "%unique-dir" => Ok(Some(RouteValue::UniqueDir)),
        _ => match parse_number(text).ok_or(())? {
            0 => Ok(None),
            n => Ok(Some(RouteValue::Number(n))),
        },
    }
}

fn parse_number(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if text.len() > 1 && text.starts_with('0') {
        u32::from_str_radix(&text[1..], 8).ok()
    } else if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// Collapses `//`, `/./` and `x/..` (lexically: loops are found by path, not by inode).
fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => path[..i].to_string(),
        None => ".".to_string(),
    }
}

/// Sorts a short list (at most `SWANCTL_CONF_GLOB_ENTRIES_MAX`) by insertion: a few hundred
/// bytes of code where the standard sort costs kilobytes on a router.
fn sort_small(v: &mut [String]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1] > v[j] {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

fn push_component(path: &mut String, comp: &str) {
    if !path.is_empty() && !path.ends_with('/') {
        path.push('/');
    }
    path.push_str(comp);
}

/// True when `pattern` holds an unescaped `*`, `?` or `[`.
fn has_wildcard(pattern: &str) -> bool {
    let mut escaped = false;
    for b in pattern.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
    }
    false
}

/// Drops the backslash of each `\x`.
fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// fnmatch(3) for one path component: `*`, `?`, `[set]`, `[!set]` / `[^set]` with ranges,
/// `\x`; a leading `.` of `name` must be matched by a literal `.` (as sh and glob(3) do).
/// Iterative with one backtrack point: O(len(pattern) * len(name)).
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => match class_match(pattern, p, name[n]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                // No closing ']': a literal '['.
                None => (name[n] == b'[').then_some(p + 1),
            },
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == name[n]).then_some(p + 2),
            Some(&c) => (c == name[n]).then_some(p + 1),
            None => None,
        };
        match step {
            Some(next) => {
                p = next;
                n += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    p = sp;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the bracket expression at `pattern[open]`: `Some((matched, index after
/// ']'))`, or `None` when it has no closing `]`.
fn class_match(pattern: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &lo = pattern.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&hi| hi != b']') {
            let hi = pattern[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenWrt: /etc/swanctl/swanctl.conf includes the UCI-generated file and conf.d/*.conf.
    fn openwrt() -> MemFiles {
        let mut fs = MemFiles::default();
        fs.add(
            "/etc/swanctl/swanctl.conf",
            "# swanctl.conf of OpenWrt's strongswan-swanctl package\n\
             connections {\n\
             \x20   # Include config snippets\n\
             \x20   include conf.d/*.conf\n\
             }\n\
             pools {\n\
             \x20   include conf.d/*.conf\n\
             }\n\
             secrets {\n\
             \x20   include conf.d/*.conf\n\
             }\n\
             include /var/swanctl/swanctl.conf\n",
        );
        // As /etc/init.d/swanctl writes it from UCI `config tunnel` sections with if_id.
        fs.add(
            "/var/swanctl/swanctl.conf",
            "# generated by /etc/init.d/swanctl\n\
             connections {\n\
             \x20 hq {\n\
             \x20   remote_addrs = 198.51.100.1\n\
             \x20   local {\n\
             \x20     auth = psk\n\
             \x20   }\n\
             \x20   children {\n\
             \x20     lan {\n\
             \x20       local_ts = 0.0.0.0/0\n\
             \x20       if_id_in = 42\n\
             \x20       if_id_out = 42\n\
             \x20     }\n\
             \x20     office {\n\
             \x20       local_ts = 192.0.2.0/24\n\
             \x20       start_action = trap\n\
             \x20     }\n\
             \x20   }\n\
             \x20 }\n\
             }\n\
             secrets {\n\
             \x20 ike-hq {\n\
             \x20   secret = \"a # not a comment } nor a brace\"\n\
             \x20 }\n\
             }\n",
        );
        fs
    }

    fn read(fs: &mut MemFiles, path: &str) -> RouteChildren {
        match read_route_children(fs, path) {
            Ok(found) => found,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err(fs: &mut MemFiles, path: &str) -> String {
        match read_route_children(fs, path) {
            Ok(found) => panic!("expected an error, read {found:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn names(found: &RouteChildren) -> Vec<String> {
        found
            .children()
            .iter()
            .map(|c| {
                format!(
                    "{}.{} {}={} @{}",
                    c.conn,
                    c.child,
                    c.key.name(),
                    c.value,
                    c.at
                )
            })
            .collect()
    }

    #[test]
    fn openwrt_layout_finds_the_uci_tunnel_and_leaves_the_policy_based_child() {
        let mut fs = openwrt();
        let found = read(&mut fs, "/etc/swanctl/swanctl.conf");
        assert_eq!(
            names(&found),
            ["hq.lan if_id_in=42 @/var/swanctl/swanctl.conf:11"]
        );
        assert!(found.find("office").is_none());
        assert_eq!(found.children_overflow(), 0);
    }

    #[test]
    fn conf_d_snippets_are_included_into_their_section_in_sorted_order() {
        let mut fs = openwrt();
        // Included inside `connections { }`: the snippet's top level is a connection.
        fs.add(
            "/etc/swanctl/conf.d/20-vti.conf",
            "branch { children { vti { mark_in = 0x10/0xffffffff\n mark_out = 16 } } }\n",
        );
        fs.add(
            "/etc/swanctl/conf.d/10-xfrm.conf",
            "depot {\n children {\n  x { if_id_out = %unique }\n }\n}\n",
        );
        fs.add("/etc/swanctl/conf.d/.hidden.conf", "broken {");
        fs.add("/etc/swanctl/conf.d/readme.txt", "broken {");
        let found = read(&mut fs, "/etc/swanctl/swanctl.conf");
        assert_eq!(
            names(&found),
            [
                "depot.x if_id_out=%unique @/etc/swanctl/conf.d/10-xfrm.conf:3",
                "branch.vti mark_in=16 @/etc/swanctl/conf.d/20-vti.conf:1",
                "hq.lan if_id_in=42 @/var/swanctl/swanctl.conf:11",
            ]
        );
    }

    #[test]
    fn a_missing_generated_file_and_empty_conf_d_are_notes_not_errors() {
        let mut fs = MemFiles::default();
        fs.add(
            "/etc/swanctl/swanctl.conf",
            "connections {\n include conf.d/*.conf\n}\ninclude /var/swanctl/swanctl.conf\n",
        );
        let found = read(&mut fs, "/etc/swanctl/swanctl.conf");
        assert!(found.children().is_empty());
        let notes: Vec<String> = found.notes().iter().map(|n| n.to_string()).collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with(
            "/etc/swanctl/swanctl.conf:2: include \"/etc/swanctl/conf.d/*.conf\" matches no file"
        ));
        assert!(notes[1]
            .starts_with("/etc/swanctl/swanctl.conf:4: include \"/var/swanctl/swanctl.conf\""));
    }

    #[test]
    fn an_empty_include_and_an_included_directory_are_skipped_with_a_note() {
        let mut fs = MemFiles::default();
        fs.add(
            "/etc/main",
            "include \"\"\ninclude sub\nconnections { a { children { b { if_id_in = 1 } } } }\n",
        );
        fs.add("/etc/sub/x", "");
        let found = read(&mut fs, "/etc/main");
        assert_eq!(names(&found), ["a.b if_id_in=1 @/etc/main:3"]);
        let notes: Vec<String> = found.notes().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            notes,
            [
                "/etc/main:1: include \"\" matches no file (ignored, as swanctl does)",
                "/etc/main:2: include: /etc/sub: not a regular file: skipped (as swanctl does)"
            ]
        );
    }

    #[test]
    fn a_later_value_replaces_an_earlier_one_and_zero_or_empty_unsets() {
        let mut fs = MemFiles::default();
        fs.add(
            "/s.conf",
            "connections { a { children {\n\
             c1 { if_id_in = 7 }\n\
             c2 { if_id_in = 7 }\n\
             c3 { mark_in = 5 }\n\
             } } }\n\
             include more.conf\n",
        );
        fs.add(
            "/more.conf",
            "connections { a { children {\n\
             c1 { if_id_in = 0 }\n\
             c2 { if_id_in = 9 }\n\
             c3 { mark_in =\n if_id_out = 0x0 }\n\
             } } }\n",
        );
        let found = read(&mut fs, "/s.conf");
        assert_eq!(names(&found), ["a.c2 if_id_in=9 @/more.conf:3"]);
    }

    #[test]
    fn values_quoted_octal_hex_and_unique_dir_are_read_as_strongswan_does() {
        let mut fs = MemFiles::default();
        fs.add(
            "/s.conf",
            "connections{a{children{\n\
             q { if_id_in = \"42\" }\n\
             o { if_id_in = 010 }\n\
             h { if_id_out = 0X2a }\n\
             u { mark_out = %unique-dir/0xff }\n\
             }}}",
        );
        let found = read(&mut fs, "/s.conf");
        assert_eq!(
            names(&found),
            [
                "a.q if_id_in=42 @/s.conf:2",
                "a.o if_id_in=8 @/s.conf:3",
                "a.h if_id_out=42 @/s.conf:4",
                "a.u mark_out=%unique-dir @/s.conf:5",
            ]
        );
    }

    #[test]
    fn a_bad_value_is_a_note_with_its_line_and_the_rest_is_kept() {
        let mut fs = MemFiles::default();
        fs.add(
            "/s.conf",
            "connections { a { children {\n b { if_id_in = forty-two }\n c { if_id_in = 3 }\n d { mark_in = 1/x }\n} } }\n",
        );
        let found = read(&mut fs, "/s.conf");
        assert_eq!(names(&found), ["a.c if_id_in=3 @/s.conf:3"]);
        let notes: Vec<String> = found.notes().iter().map(|n| n.to_string()).collect();
        assert_eq!(notes.len(), 2);
        assert!(notes[0].starts_with("/s.conf:2: if_id_in = \"forty-two\" is not a number"));
        assert!(notes[1].starts_with("/s.conf:4: mark_in = \"1/x\""));
    }

    #[test]
    fn route_keys_outside_a_child_section_are_not_children() {
        let mut fs = MemFiles::default();
        fs.add(
            "/s.conf",
            "if_id_in = 1\nconnections { a { if_id_in = 2\n children { if_id_in = 3\n c { sub { if_id_in = 4 } } } } }\nsecrets { if_id_in = 5 }\n",
        );
        let found = read(&mut fs, "/s.conf");
        assert!(found.children().is_empty(), "{:?}", names(&found));
    }

    #[test]
    fn comments_braces_and_newlines_are_where_strongswan_puts_them() {
        let mut fs = MemFiles::default();
        fs.add(
            "/s.conf",
            "# top { comment\nconnections # trailing { comment\n{\n  a { children { b { if_id_in = 12 # the id }\n } } }\n  c { children { d { if_id_out = 13 } } } }\n",
        );
        let found = read(&mut fs, "/s.conf");
        assert_eq!(
            names(&found),
            ["a.b if_id_in=12 @/s.conf:4", "c.d if_id_out=13 @/s.conf:6"]
        );
    }

    #[test]
    fn a_key_named_include_is_a_key_and_include_with_quotes_and_escapes_works() {
        let mut fs = MemFiles::default();
        fs.add(
            "/etc/s.conf",
            "include = not a file\ninclude \"my dir/a b.conf\"\ninclude esc\\ aped.conf # comment\n",
        );
        fs.add(
            "/etc/my dir/a b.conf",
            "connections { a { children { b { if_id_in = 1 } } } }",
        );
        fs.add(
            "/etc/esc aped.conf",
            "connections { e { children { f { if_id_in = 2 } } } }",
        );
        let found = read(&mut fs, "/etc/s.conf");
        assert_eq!(
            names(&found),
            [
                "a.b if_id_in=1 @/etc/my dir/a b.conf:1",
                "e.f if_id_in=2 @/etc/esc aped.conf:1"
            ]
        );
    }

    #[test]
    fn include_paths_are_relative_to_the_including_file_at_every_level() {
        let mut fs = MemFiles::default();
        fs.add("/etc/swanctl/swanctl.conf", "include sub/one.conf\n");
        fs.add("/etc/swanctl/sub/one.conf", "include ../two/two.conf\n");
        fs.add(
            "/etc/swanctl/two/two.conf",
            "connections { a { children { b { if_id_in = 1 } } } }",
        );
        let found = read(&mut fs, "/etc/swanctl/swanctl.conf");
        assert_eq!(
            names(&found),
            ["a.b if_id_in=1 @/etc/swanctl/two/two.conf:1"]
        );
        assert_eq!(
            found.paths().collect::<Vec<_>>(),
            [
                "/etc/swanctl/swanctl.conf",
                "/etc/swanctl/sub/one.conf",
                "/etc/swanctl/two/two.conf"
            ]
        );
    }

    #[test]
    fn an_include_loop_is_an_error_naming_the_include_line() {
        let mut fs = MemFiles::default();
        fs.add("/a.conf", "connections {}\ninclude b.conf\n");
        fs.add("/b.conf", "\n\ninclude ./a.conf\n");
        assert_eq!(
            err(&mut fs, "/a.conf"),
            "/b.conf:3: include loop: /a.conf is already being read (it includes itself, directly or \
             through other files): remove one of the include lines"
        );
        // A file including itself through a glob.
        let mut fs = MemFiles::default();
        fs.add("/d/x.conf", "include *.conf\n");
        assert!(err(&mut fs, "/d/x.conf").starts_with("/d/x.conf:1: include loop: /d/x.conf"));
    }

    #[test]
    fn includes_nested_too_deep_are_an_error() {
        let mut fs = MemFiles::default();
        for i in 0..=SWANCTL_CONF_INCLUDE_DEPTH_MAX + 1 {
            fs.add(&format!("/f{i}.conf"), format!("include f{}.conf\n", i + 1));
        }
        let e = err(&mut fs, "/f0.conf");
        assert!(e.contains("includes nested deeper than 8 files"), "{e}");
        // Exactly the cap is fine.
        let mut fs = MemFiles::default();
        for i in 0..SWANCTL_CONF_INCLUDE_DEPTH_MAX {
            fs.add(&format!("/f{i}.conf"), format!("include f{}.conf\n", i + 1));
        }
        fs.add(
            &format!("/f{SWANCTL_CONF_INCLUDE_DEPTH_MAX}.conf"),
            "connections { a { children { b { if_id_in = 1 } } } }",
        );
        assert_eq!(read(&mut fs, "/f0.conf").children().len(), 1);
    }

    #[test]
    fn too_many_files_and_too_large_files_are_errors() {
        let mut fs = MemFiles::default();
        fs.add("/d/main", "include /d/c/*\n");
        for i in 0..SWANCTL_CONF_FILES_MAX {
            fs.add(&format!("/d/c/{i:03}"), "");
        }
        let e = err(&mut fs, "/d/main");
        assert!(
            e.starts_with("/d/main:1: more than 64 files included"),
            "{e}"
        );

        let mut fs = MemFiles::default();
        fs.add("/big", vec![b'#'; SWANCTL_CONF_FILE_MAX_BYTES + 1]);
        assert!(err(&mut fs, "/big").starts_with("/big: larger than 65536 bytes"));
        fs.add("/main", "\ninclude big\n");
        assert!(err(&mut fs, "/main").starts_with("/big: larger than"));
    }

    #[test]
    fn a_glob_over_a_huge_directory_is_an_error() {
        let mut fs = MemFiles::default();
        fs.add("/main", "include /d/*.conf\n");
        for i in 0..=SWANCTL_CONF_GLOB_ENTRIES_MAX {
            fs.add(&format!("/d/{i}.x"), "");
        }
        let e = err(&mut fs, "/main");
        assert!(
            e.starts_with("/main:1: include: /d has more than 256 entries"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_name_file_line_and_fix() {
        let cases: &[(&str, &str)] = &[
            ("a {\n b = 1\n", "/s:3: section \"a\" opened on line 1 is not closed at the end of the file: add a '}'"),
            ("a = 1\n}\n", "/s:2: '}' closes no section of this file"),
            ("a\nb = 1\n", "/s:2: expected '=' or '{' after \"a\""),
            ("a = \"open\n\n", "/s:1: string not terminated"),
            ("a = \"x\\", "/s:1: string not terminated"),
            ("\"quoted\" = 1\n", "/s:1: unexpected string"),
            ("a.b = 1\n", "/s:1: expected '=' or '{' after \"a\""),
            ("= 1\n", "/s:1: unexpected '='"),
            ("a : b c {\n", "/s:1: expected '{' after the references of section \"a\""),
        ];
        for (text, want) in cases {
            let mut fs = MemFiles::default();
            fs.add("/s", text);
            let got = err(&mut fs, "/s");
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
            assert!(!got.contains('\n'), "{got:?}");
        }
    }

    #[test]
    fn a_section_opened_in_one_file_must_close_in_it() {
        let mut fs = MemFiles::default();
        fs.add("/main", "connections {\ninclude part\n}\n");
        fs.add("/part", "a { children {\n");
        assert!(err(&mut fs, "/main").starts_with("/part:2: section \"children\" opened on line 1"));
        fs.add("/part", "}\n");
        assert!(err(&mut fs, "/main").starts_with("/part:1: '}' closes no section"));
    }

    #[test]
    fn sections_nested_too_deep_are_an_error() {
        let mut fs = MemFiles::default();
        fs.add("/s", "a{".repeat(SWANCTL_CONF_SECTION_DEPTH_MAX + 1));
        assert!(err(&mut fs, "/s").contains("sections nested deeper than 16"));
        let ok = format!(
            "{}{}",
            "a{".repeat(SWANCTL_CONF_SECTION_DEPTH_MAX),
            "}".repeat(SWANCTL_CONF_SECTION_DEPTH_MAX)
        );
        fs.add("/s", ok);
        assert!(read(&mut fs, "/s").children().is_empty());
    }

    #[test]
    fn the_main_file_missing_is_not_found_and_other_errors_are_not() {
        let mut fs = MemFiles::default();
        let e = read_route_children(&mut fs, "/etc/swanctl/swanctl.conf").unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "/etc/swanctl/swanctl.conf: no such file");
        fs.add("/etc/swanctl/swanctl.conf/x", "");
        let e = read_route_children(&mut fs, "/etc/swanctl/swanctl.conf").unwrap_err();
        assert!(!e.is_not_found());
        assert_eq!(
            e.to_string(),
            "/etc/swanctl/swanctl.conf: not a regular file"
        );
    }

    #[test]
    fn children_beyond_the_cap_are_counted() {
        let mut text = String::from("connections { a { children {\n");
        for i in 0..SWANCTL_CONF_CHILDREN_MAX + 3 {
            text.push_str(&format!("c{i} {{ if_id_in = {} }}\n", i + 1));
        }
        text.push_str("} } }\n");
        let mut fs = MemFiles::default();
        fs.add("/s", text);
        let found = read(&mut fs, "/s");
        assert_eq!(found.children().len(), SWANCTL_CONF_CHILDREN_MAX);
        assert_eq!(found.children_overflow(), 3);
    }

    #[test]
    fn notes_beyond_the_cap_are_counted_and_long_names_are_noted() {
        let mut text = String::from("connections { a { children {\n");
        for i in 0..SWANCTL_CONF_NOTES_MAX + 2 {
            text.push_str(&format!("c{i} {{ if_id_in = x }}\n"));
        }
        text.push_str(&format!(
            "{} {{ if_id_in = 1 }}\n",
            "n".repeat(NAME_MAX_BYTES + 1)
        ));
        text.push_str("} } }\n");
        let mut fs = MemFiles::default();
        fs.add("/s", text);
        let found = read(&mut fs, "/s");
        assert!(found.children().is_empty());
        assert_eq!(found.notes().len(), SWANCTL_CONF_NOTES_MAX);
        assert_eq!(found.notes_overflow(), 3);
    }

    #[test]
    fn inheriting_sections_are_noted() {
        let mut fs = MemFiles::default();
        fs.add(
            "/s",
            "tpl { if_id_in = 1 }\nconnections { a : conn-defaults, other.x {\n children { b : tpl { esp_proposals = aes128 } } } }\n",
        );
        let found = read(&mut fs, "/s");
        assert!(found.children().is_empty());
        let notes: Vec<String> = found.notes().iter().map(|n| n.to_string()).collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("/s:2: section \"a\" inherits"));
        assert!(notes[1].starts_with("/s:3: section \"b\" inherits"));
    }

    #[test]
    fn changed_sees_an_edited_file_and_a_new_snippet() {
        let mut fs = openwrt();
        let found = read(&mut fs, "/etc/swanctl/swanctl.conf");
        assert!(!found.changed(&mut fs));
        fs.touch("/var/swanctl/swanctl.conf");
        assert!(found.changed(&mut fs));

        let mut fs = openwrt();
        fs.add("/etc/swanctl/conf.d/a.conf", "");
        let found = read(&mut fs, "/etc/swanctl/swanctl.conf");
        assert!(!found.changed(&mut fs));
        fs.add("/etc/swanctl/conf.d/b.conf", "");
        assert!(found.changed(&mut fs));

        // The generated file appearing later (swanctl's init script writes it at start).
        let mut fs = openwrt();
        fs.remove("/var/swanctl/swanctl.conf");
        fs.add("/var/swanctl/strongswan.conf", "");
        let found = read(&mut fs, "/etc/swanctl/swanctl.conf");
        assert!(found.children().is_empty());
        fs.add("/var/swanctl/swanctl.conf", "");
        assert!(found.changed(&mut fs));
    }

    #[test]
    fn glob_match_follows_fnmatch() {
        let yes: &[(&str, &str)] = &[
            ("*.conf", "a.conf"),
            ("*.conf", "conf.conf"),
            ("a?c", "abc"),
            ("[a-c]x", "bx"),
            ("[!a-c]x", "dx"),
            ("[^a]x", "bx"),
            ("[]]", "]"),
            ("[a-]", "-"),
            ("\\*", "*"),
            ("*", "x"),
            ("*a*b*c", "xxaxxbxxc"),
            ("[", "["),
            (".*", ".hidden"),
            ("", ""),
        ];
        let no: &[(&str, &str)] = &[
            ("*.conf", "a.conf~"),
            ("*", ".hidden"),
            ("?x", ".x"),
            ("[a-c]x", "dx"),
            ("[!a-c]x", "ax"),
            ("\\*", "a"),
            ("a?c", "ac"),
            ("*a*b*c", "xxaxxbxx"),
            ("", "a"),
        ];
        for (p, n) in yes {
            assert!(
                glob_match(p.as_bytes(), n.as_bytes()),
                "{p} should match {n}"
            );
        }
        for (p, n) in no {
            assert!(
                !glob_match(p.as_bytes(), n.as_bytes()),
                "{p} should not match {n}"
            );
        }
    }

    #[test]
    fn sort_small_sorts_like_the_standard_sort() {
        let mut v: Vec<String> = ["b.conf", "a.conf", "10.conf", "", "b.conf", "Z", "2.conf"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut want = v.clone();
        want.sort();
        sort_small(&mut v);
        assert_eq!(v, want);
    }

    #[test]
    fn control_characters_in_paths_keep_messages_on_one_line() {
        let mut fs = MemFiles::default();
        fs.add("/etc/main", "include \"a\\nb/\"\n");
        fs.add("/etc/a\nb/x", "");
        let found = read(&mut fs, "/etc/main");
        assert_eq!(
            found.notes()[0].to_string(),
            "/etc/main:1: include: /etc/a\\u{a}b: not a regular file: skipped (as swanctl does)"
        );
    }

    #[test]
    fn globs_in_directory_components_expand_too() {
        let mut fs = MemFiles::default();
        fs.add("/etc/main", "include /etc/site-*/ipsec/*.conf\n");
        fs.add(
            "/etc/site-b/ipsec/x.conf",
            "connections { b { children { x { if_id_in = 2 } } } }",
        );
        fs.add(
            "/etc/site-a/ipsec/x.conf",
            "connections { a { children { x2 { if_id_in = 1 } } } }",
        );
        fs.add("/etc/site-c/other", "");
        let found = read(&mut fs, "/etc/main");
        assert_eq!(
            names(&found),
            [
                "a.x2 if_id_in=1 @/etc/site-a/ipsec/x.conf:1",
                "b.x if_id_in=2 @/etc/site-b/ipsec/x.conf:1"
            ]
        );
    }

    /// The fuzz target's checks on a fixed-seed run of mutated OpenWrt layouts (CI has no
    /// nightly): never a panic, one-line errors, children at real lines.
    #[test]
    fn mutated_configs_never_panic_and_point_at_real_lines() {
        let base = openwrt();
        let paths = ["/etc/swanctl/swanctl.conf", "/var/swanctl/swanctl.conf"];
        let tokens: [&[u8]; 12] = [
            b"{",
            b"}",
            b"\"",
            b"\\",
            b"#",
            b"\n",
            b"include ",
            b"*",
            b"=",
            b":",
            b"../",
            b"if_id_in = 7\n",
        ];
        let mut seed: u64 = 0x5eed_2026;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        for _ in 0..3000 {
            let mut fs = base.clone();
            let path = paths[next(2)];
            let mut text = fs.read(path, usize::MAX).unwrap_or_default();
            for _ in 0..1 + next(4) {
                let at = next(text.len() + 1);
                match next(3) {
                    0 => {
                        let end = (at + next(8)).min(text.len());
                        text.drain(at..end);
                    }
                    1 => text
                        .splice(at..at, tokens[next(tokens.len())].iter().copied())
                        .for_each(drop),
                    _ => text.insert(at, next(256) as u8),
                }
            }
            fs.add(path, &text);
            match read_route_children(&mut fs, paths[0]) {
                Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
                Ok(found) => {
                    for c in found.children() {
                        let file = fs.read(&c.at.file, usize::MAX).unwrap_or_default();
                        let lines = file.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
                        assert!(c.at.line >= 1 && c.at.line <= lines, "{c:?}");
                    }
                    for n in found.notes() {
                        assert!(!n.to_string().contains('\n'), "{n}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_disk_reader_reads_a_real_tree() {
        let dir = std::env::temp_dir().join(format!("swandog-swanctl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conf_d = dir.join("conf.d");
        std::fs::create_dir_all(&conf_d).unwrap();
        std::fs::write(
            dir.join("swanctl.conf"),
            "connections {\n include conf.d/*.conf\n}\n",
        )
        .unwrap();
        std::fs::write(
            conf_d.join("t.conf"),
            "t { children { c { if_id_in = 5 } } }\n",
        )
        .unwrap();
        std::fs::create_dir(conf_d.join("dir.conf")).unwrap();
        let main = dir.join("swanctl.conf");
        let main = main.to_str().unwrap();
        let found = read_route_children_from_disk(main).unwrap();
        assert_eq!(found.children().len(), 1);
        assert_eq!(found.notes().len(), 1);
        let note = found.notes()[0].to_string();
        assert!(
            note.contains("/conf.d/dir.conf: not a regular file: skipped"),
            "{note}"
        );
        assert_eq!(found.children()[0].at.line, 1);
        assert!(!found.changed(&mut DiskFiles));
        std::fs::write(conf_d.join("u.conf"), "").unwrap();
        let changed = found.changed(&mut DiskFiles);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(changed, "a new snippet changes conf.d's mtime");
    }
}
