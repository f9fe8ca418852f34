//! Opening saved-state files for reading without blocking on, or mapping,
//! anything that is not a regular file.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why [`open_regular`] refused a file.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The open or fstat failed.
    Io(io::Error),
    /// The path is not a regular file; the kind in words.
    NotRegular(&'static str),
}

/// A file type in words, for errors.
pub(crate) fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "file of unknown type"
    }
}

/// Open `path` read-only, refusing anything but a regular file. The open
/// is O_NONBLOCK, so a FIFO with no writer cannot block it (a plain open
/// would wait forever), and the type is checked on the open descriptor, so
/// the file checked is the file read. With `nofollow` a symlink is refused.
pub(crate) fn open_regular(path: &Path, nofollow: bool) -> Result<File, OpenError> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if nofollow => OpenError::NotRegular("symlink"),
            // A unix socket cannot be opened at all.
            Some(libc::ENXIO) => OpenError::NotRegular("socket or device without a driver"),
            _ => OpenError::Io(e),
        })?;
    let ft = file.metadata().map_err(OpenError::Io)?.file_type();
    if !ft.is_file() {
        return Err(OpenError::NotRegular(kind_of(ft)));
    }
    // Reads of a regular file never block; clear the flag all the same so
    // the descriptor behaves like any other.
    // SAFETY: F_SETFL on a descriptor this function owns; it only sets the
    // status flags.
    if unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_SETFL, 0) } < 0 {
        return Err(OpenError::Io(io::Error::last_os_error()));
    }
    Ok(file)
}

/// Whether a save may rename a new file over `path`: nothing there, or a
/// regular file. Anything else (a device node, FIFO, socket, symlink,
/// directory) is not a saved state and is left alone.
pub(crate) fn check_replaceable(path: &Path) -> Result<(), OpenError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => Err(OpenError::NotRegular(kind_of(m.file_type()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OpenError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking_and_a_file_opens() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            open_regular(&fifo, false),
            Err(OpenError::NotRegular("FIFO"))
        ));
        assert!(matches!(
            open_regular(dir.path(), false),
            Err(OpenError::NotRegular("directory"))
        ));
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        open_regular(&f, true).unwrap();
        open_regular(&link, false).unwrap();
        assert!(matches!(
            open_regular(&link, true),
            Err(OpenError::NotRegular("symlink"))
        ));
    }
}
