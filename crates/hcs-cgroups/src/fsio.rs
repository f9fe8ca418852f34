//! Small, allocation-light helpers to read and write cgroupfs files.
//!
//! cgroupfs files take one value per `write(2)`, so every write here is a
//! single system call on a file opened without `O_CREAT`/`O_TRUNC`; reads of
//! single-value files go through a stack buffer.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::CgroupError;

/// Writes `value` to `path` with one `write(2)`.
pub(crate) fn write_raw(path: &Path, value: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    let n = f.write(value)?;
    if n != value.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", value.len()),
        ));
    }
    Ok(())
}

/// Writes `value` to `dir/name`, turning a failure into [`CgroupError::Write`].
pub(crate) fn write_file(dir: &Path, name: &str, value: &[u8]) -> Result<(), CgroupError> {
    let path = dir.join(name);
    write_raw(&path, value).map_err(|source| CgroupError::Write {
        value: String::from_utf8_lossy(value).into_owned(),
        path,
        source,
    })
}

/// Reads a whole file into a `String`.
pub(crate) fn read_string(path: &Path) -> io::Result<String> {
    let mut s = String::new();
    File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

/// Reads a small file into `buf` and returns its content with surrounding
/// white space removed. Falls back to a heap read when the buffer is too small.
pub(crate) fn read_small<'a>(path: &Path, buf: &'a mut SmallBuf) -> io::Result<&'a str> {
    let mut f = File::open(path)?;
    let mut len = 0;
    loop {
        let n = f.read(&mut buf.stack[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if len == buf.stack.len() {
            // Too long for the stack buffer: read the rest onto the heap.
            buf.heap.clear();
            buf.heap.extend_from_slice(&buf.stack);
            f.read_to_end(&mut buf.heap)?;
            return to_str(&buf.heap);
        }
    }
    to_str(&buf.stack[..len])
}

fn to_str(bytes: &[u8]) -> io::Result<&str> {
    std::str::from_utf8(bytes)
        .map(str::trim)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Scratch space for [`read_small`].
pub(crate) struct SmallBuf {
    stack: [u8; 256],
    heap: Vec<u8>,
}

impl SmallBuf {
    pub(crate) fn new() -> SmallBuf {
        SmallBuf {
            stack: [0; 256],
            heap: Vec::new(),
        }
    }
}

/// Reads `dir/name` as a trimmed string, mapping errors to [`CgroupError::Read`].
pub(crate) fn read_trimmed(dir: &Path, name: &str) -> Result<String, CgroupError> {
    let path = dir.join(name);
    let mut buf = SmallBuf::new();
    match read_small(&path, &mut buf) {
        Ok(s) => Ok(s.to_owned()),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Reads `dir/name` as one unsigned number. `Ok(None)` when the file does not
/// exist (the controller or kernel feature is absent); parse failures are errors.
/// `max` (cgroup v2 for "no limit") reads as `u64::MAX`.
pub(crate) fn read_opt_u64(dir: &Path, name: &str) -> Result<Option<u64>, CgroupError> {
    let path = dir.join(name);
    let mut buf = SmallBuf::new();
    match read_small(&path, &mut buf) {
        Ok(s) => parse_u64_or_max(&path, s).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Parses a decimal `u64`, or `max` as `u64::MAX`.
pub(crate) fn parse_u64_or_max(path: &Path, s: &str) -> Result<u64, CgroupError> {
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse::<u64>()
        .map_err(|e| parse_error(path, format!("not an unsigned number: {e}"), s))
}

/// Builds a [`CgroupError::Parse`].
pub(crate) fn parse_error(path: &Path, reason: impl Into<String>, text: &str) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        reason: reason.into(),
        text: text.to_owned(),
    }
}

/// Formats an unsigned number into a stack buffer (no allocation).
pub(crate) struct NumBuf {
    buf: [u8; 20],
    start: usize,
}

impl NumBuf {
    pub(crate) fn new(mut v: u64) -> NumBuf {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        NumBuf { buf, start: i }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// `rmdir(2)` returning the raw error so callers can tell EBUSY from ENOENT.
pub(crate) fn rmdir(path: &Path) -> io::Result<()> {
    std::fs::remove_dir(path)
}

/// Lists the sub-directories (child cgroups) of `dir`.
pub(crate) fn child_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbuf_formats_like_display() {
        for v in [0u64, 1, 9, 10, 12345, u64::MAX] {
            assert_eq!(NumBuf::new(v).as_bytes(), v.to_string().as_bytes());
        }
    }

    #[test]
    fn parse_u64_or_max_rejects_garbage() {
        let p = Path::new("/x");
        assert_eq!(parse_u64_or_max(p, "42").unwrap(), 42);
        assert_eq!(parse_u64_or_max(p, "max").unwrap(), u64::MAX);
        assert!(matches!(
            parse_u64_or_max(p, "-1"),
            Err(CgroupError::Parse { .. })
        ));
        assert!(matches!(
            parse_u64_or_max(p, ""),
            Err(CgroupError::Parse { .. })
        ));
    }

    #[test]
    fn read_small_handles_long_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let long = "7".repeat(1000);
        std::fs::write(&p, format!("{long}\n")).unwrap();
        let mut buf = SmallBuf::new();
        assert_eq!(read_small(&p, &mut buf).unwrap(), long);
        std::fs::write(&p, " 12 \n").unwrap();
        assert_eq!(read_small(&p, &mut buf).unwrap(), "12");
    }
}
