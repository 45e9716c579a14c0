//! The status snapshot: written atomically by the running agent, read by `swandog status`.
//!
//! The file holds one JSON line (what `swandog status --json` prints) followed by the human form
//! (what `swandog status` prints), both rendered from one status view of the agent
//! ([`render`](super::render)), so the reader needs no parser. The metrics file uses the same
//! atomic, chunked writer ([`SnapshotFile`]). It is written to a fresh temporary file beside the target (created exclusively,
//! never following a symlink, mode 0644) and renamed over it.
//!
//! ```
//! use swandog::report::status::sparkline;
//! let mut line = String::new();
//! sparkline(&mut line, &[0, 500, 1000]).unwrap();
//! assert_eq!(line, "▁▅█");
//! ```

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::limits::{STATUS_FILE_MAX_BYTES, STATUS_WRITE_CHUNK_BYTES};

/// Default place of the snapshot (tmpfs on routers: no flash wear).
pub const DEFAULT_STATUS_FILE: &str = "/var/run/swandog.status";

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One block character per busy share (‰): ▁ for idle up to █ for fully busy.
pub fn sparkline(out: &mut impl core::fmt::Write, busy_permille: &[u16]) -> core::fmt::Result {
    for &b in busy_permille {
        let i = (usize::from(b.min(1000)) * (BLOCKS.len() - 1) + 500) / 1000;
        out.write_char(BLOCKS[i])?;
    }
    Ok(())
}

fn temp_path(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(".tmp{}", std::process::id()));
    target.with_file_name(name)
}

/// Writes `contents` to `target` the way [`SnapshotFile`] does, from one buffer (tests only:
/// swandog streams its files).
#[cfg(test)]
fn write_atomic(target: &Path, contents: &[u8]) -> io::Result<()> {
    replace(target, &temp_path(target), |file| file.write_all(contents))
}

/// Replaces `target` atomically: a reader sees the old file or the new one, whole. The temporary
/// file is created with `O_EXCL | O_NOFOLLOW`, so a planted file or symlink under its name is
/// removed (unlinking a symlink never touches what it points to) rather than written through;
/// `rename` replaces a symlink at `target` instead of following it.
fn replace(
    target: &Path,
    tmp: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> io::Result<()> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(tmp)
    };
    let mut file = match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(tmp)?;
            open()?
        }
        other => other?,
    };
    let written = fill(&mut file);
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(tmp, target)) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    Ok(())
}

/// The snapshot file of a running agent: written as often as the status changes, so its paths
/// are built once and the text is streamed to the file through a small stack buffer, never
/// collected in memory (with full tables it is ~30 KiB). Same guarantees as `replace`: a reader sees the old file or the new one, whole.
///
/// ```
/// use core::fmt::Write;
/// use swandog::report::status::SnapshotFile;
///
/// let path = std::env::temp_dir().join(format!("swandog-doc-{}.status", std::process::id()));
/// let file = SnapshotFile::new(&path);
/// file.write(|out| write!(out, "{{}}\n{}\n", "all quiet")).unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\nall quiet\n");
/// # std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    target: PathBuf,
    tmp: PathBuf,
}

impl SnapshotFile {
    /// The snapshot at `target` (nothing is written yet).
    pub fn new(target: &Path) -> SnapshotFile {
        SnapshotFile {
            target: target.to_path_buf(),
            tmp: temp_path(target),
        }
    }

    /// Where the snapshot goes.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Replaces the snapshot with what `render` writes.
    pub fn write(
        &self,
        render: impl FnOnce(&mut ChunkedText<'_>) -> core::fmt::Result,
    ) -> io::Result<()> {
        replace(&self.target, &self.tmp, |file| {
            let mut out = ChunkedText {
                file,
                buf: [0; STATUS_WRITE_CHUNK_BYTES],
                len: 0,
                error: None,
            };
            let rendered = render(&mut out);
            out.flush()?;
            rendered.map_err(|_| io::Error::other("status text could not be formatted"))
        })
    }
}

/// A `fmt::Write` into a file through a fixed buffer of [`STATUS_WRITE_CHUNK_BYTES`].
pub struct ChunkedText<'a> {
    file: &'a mut std::fs::File,
    buf: [u8; STATUS_WRITE_CHUNK_BYTES],
    len: usize,
    error: Option<io::Error>,
}

impl ChunkedText<'_> {
    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let result = self.file.write_all(&self.buf[..self.len]);
        self.len = 0;
        result
    }
}

impl core::fmt::Write for ChunkedText<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // Bytes, not chars: a multi-byte character may straddle two chunks.
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                if let Err(e) = self.flush() {
                    self.error = Some(e);
                    return Err(core::fmt::Error);
                }
            }
            let n = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

/// What `swandog status` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusForm {
    /// The JSON line.
    Json,
    /// The human form.
    Human,
}

/// Reads a snapshot and returns the requested part, with how old it is (seconds).
pub fn read_snapshot(path: &Path, form: StatusForm) -> Result<(String, u64), String> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!(
            "no status file at {}: is `swandog run` running? (or pass --status-file PATH)",
            path.display()
        ),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    let age_s = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(0, |d| d.as_secs());
    let mut text = String::new();
    file.take(STATUS_FILE_MAX_BYTES as u64)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (json, human) = text.split_once('\n').unwrap_or((&text, ""));
    if !json.starts_with('{') {
        return Err(format!(
            "{} is not a swandog status file (it should start with a JSON line)",
            path.display()
        ));
    }
    Ok(match form {
        StatusForm::Json => (format!("{json}\n"), age_s),
        StatusForm::Human => (human.to_string(), age_s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("swandog-status-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn snapshot_is_replaced_whole_and_read_back_in_both_forms() {
        let dir = scratch("rw");
        let path = dir.join("swandog.status");
        write_atomic(&path, b"{\"a\":1}\nfirst\n").unwrap();
        write_atomic(&path, b"{\"a\":2}\nsecond\n").unwrap();
        assert_eq!(
            read_snapshot(&path, StatusForm::Json).unwrap().0,
            "{\"a\":2}\n"
        );
        assert_eq!(
            read_snapshot(&path, StatusForm::Human).unwrap().0,
            "second\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o644
        );
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[test]
    fn planted_symlinks_are_never_followed() {
        let dir = scratch("link");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.join("swandog.status");
        // A symlink planted at the temporary name, and one at the target itself.
        std::os::unix::fs::symlink(&victim, temp_path(&path)).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, b"{}\nok\n").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\nok\n");
    }

    #[test]
    fn streamed_snapshot_longer_than_the_chunk_is_written_whole_and_atomically() {
        use core::fmt::Write as _;
        let dir = scratch("chunked");
        let path = dir.join("swandog.status");
        let file = SnapshotFile::new(&path);
        // Three-byte sparkline blocks after an odd prefix: some straddle two chunks.
        let line = format!("x{}", "▁▂▃▄▅▆▇█".repeat(13));
        let head = "{\"big\":true}\n";
        file.write(|out| {
            out.write_str(head)?;
            for _ in 0..100 {
                writeln!(out, "{line}")?;
            }
            Ok(())
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), head.len() + 100 * (line.len() + 1));
        assert!(text.len() > 10 * STATUS_WRITE_CHUNK_BYTES);
        let (human, _) = read_snapshot(&path, StatusForm::Human).unwrap();
        assert!(human.lines().all(|l| l == line));
        // A failed render leaves the old snapshot and no temporary file.
        let err = file.write(|_| Err(core::fmt::Error)).unwrap_err();
        assert!(err.to_string().contains("could not be formatted"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn missing_or_foreign_file_gives_a_clear_error() {
        let dir = scratch("err");
        let err = read_snapshot(&dir.join("none"), StatusForm::Human).unwrap_err();
        assert!(err.contains("is `swandog run` running?"), "{err}");
        std::fs::write(dir.join("foreign"), b"hello\n").unwrap();
        let err = read_snapshot(&dir.join("foreign"), StatusForm::Json).unwrap_err();
        assert!(err.contains("not a swandog status file"), "{err}");
    }

    #[test]
    fn sparkline_maps_idle_to_low_and_busy_to_full_blocks() {
        let mut s = String::new();
        sparkline(&mut s, &[0, 140, 290, 430, 570, 710, 860, 1000, 5000]).unwrap();
        assert_eq!(s, "▁▂▃▄▅▆▇██");
    }
}
