//! The few system calls nix does not wrap (raw `clone`, `openat2`,
//! `close_range`, pty ioctls), each behind a small safe function.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// What a `fork`-like clone returned.
pub(crate) enum Forked {
    /// In the parent: the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// `clone(flags | SIGCHLD)` without a new stack: the child continues here on
/// a copy of the parent's stack, like `fork`, but in the namespaces `flags`
/// create. Needed because `fork` cannot create a child that is PID 1 of a new
/// pid namespace owned by a new user namespace in one step.
///
/// Only call this from a single-threaded process (the monitor is one): the
/// child then holds no lock another thread could own.
pub(crate) fn clone_fork(flags: libc::c_int) -> io::Result<Forked> {
    // SAFETY: a raw clone without CLONE_VM and with a null stack duplicates
    // the address space like fork(2); the arguments are plain integers and
    // null pointers, which the kernel accepts for these flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Plain `fork`.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: the monitor is single-threaded when it forks, so the child
    // inherits no lock held by a thread that does not exist in it.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `openat2(dirfd, path, flags, RESOLVE_IN_ROOT | extra)`: resolve `path` as
/// if `dirfd` were `/`, so symlinks in a container image cannot lead out of it.
pub(crate) fn openat2_in_root(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: u64,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags;
    how.resolve = libc::RESOLVE_IN_ROOT | resolve;
    loop {
        // SAFETY: `path` is NUL-terminated, `how` is a valid open_how whose
        // size we pass, and the descriptor returned is ours alone.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if rc >= 0 {
            // SAFETY: the kernel returned a new descriptor owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EAGAIN) && err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Mark every descriptor from `first` up close-on-exec.
pub(crate) fn cloexec_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags; no
    // descriptor is closed, so no Rust owner is invalidated.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// Close every descriptor from `first` up, except those in `keep`.
/// Used only in a freshly cloned child that is about to become init and
/// owns nothing else it needs.
pub(crate) fn close_all_except(first: i32, keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= first).collect();
    keep.sort_unstable();
    let mut lo = first;
    for k in keep.into_iter().chain(std::iter::once(i32::MAX)) {
        if k > lo {
            let hi = if k == i32::MAX {
                u32::MAX
            } else {
                (k - 1) as u32
            };
            // SAFETY: in the init child no Rust value depends on these
            // descriptors any more (the child never returns to the monitor's code).
            unsafe {
                libc::syscall(libc::SYS_close_range, lo as u32, hi, 0u32);
            }
        }
        lo = k.saturating_add(1);
    }
}

/// Open the slave side of a pty master (`TIOCGPTPEER`), without a path lookup.
pub(crate) fn pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let rc = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(rc) })
}

/// Unlock a pty master (`TIOCSPTLCK` 0), as `unlockpt` does.
pub(crate) fn pty_unlock(master: BorrowedFd<'_>) -> io::Result<()> {
    let zero: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer we pass.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &zero) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `dup2(fd, target)`: make `target` (0, 1 or 2) a copy of `fd`. The target
/// number is not owned by any Rust value, so nothing closes it behind us
/// (nix's `dup2_raw` returns an `OwnedFd` that would).
pub(crate) fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table; `fd` is open.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set a terminal's window size.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize through the pointer we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make `fd` the controlling terminal of the calling session leader.
pub(crate) fn set_controlling_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bring the loopback interface of the current network namespace up.
pub(crate) fn loopback_up() -> io::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    // SAFETY: ifreq is plain data; zero is a valid initial value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags of the named interface in `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the union member ifru_flags is what SIOCGIFFLAGS wrote.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Leave the process now, without running destructors or atexit handlers
/// that belong to the parent's copy of the program.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

// The new mount API (Linux 5.2+). A container's root and its bind mounts are
// built by the monitor, with the host's credentials, as detached mounts, and
// attached by the init inside the container's namespaces. A container with
// a user namespace could not build them itself: its root maps to an
// unprivileged host uid that may not even traverse /run/hcs.

/// `fsconfig` commands (linux/mount.h).
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn fd_result(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// A filesystem context being configured (`fsopen`).
pub(crate) struct FsContext(OwnedFd);

impl FsContext {
    /// `fsopen(fstype)`.
    pub(crate) fn open(fstype: &CStr) -> io::Result<FsContext> {
        // SAFETY: fsopen reads a NUL-terminated name and returns a descriptor.
        fd_result(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), libc::FSOPEN_CLOEXEC) })
            .map(FsContext)
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`.
    pub(crate) fn set(&self, key: &CStr, value: &CStr) -> io::Result<()> {
        // SAFETY: both strings are NUL-terminated and live across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `fsconfig(FSCONFIG_CMD_CREATE)` then `fsmount`: a detached mount.
    pub(crate) fn mount(self) -> io::Result<OwnedFd> {
        // SAFETY: no pointers; the context descriptor is ours.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fsmount takes the context descriptor and flag words.
        fd_result(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.0.as_raw_fd(),
                libc::FSMOUNT_CLOEXEC,
                0,
            )
        })
    }
}

/// A null device (char 1:3) open read-write that is no file of the host:
/// made in a tmpfs that is mounted nowhere and removed at once. A process
/// given the host's /dev/null as its stdio could chmod or chown the host's
/// node through /proc/self/fd/N; this inode is its alone.
pub(crate) fn private_null() -> io::Result<OwnedFd> {
    let fs = FsContext::open(c"tmpfs")?;
    fs.set(c"size", c"4k")?;
    let mnt = fs.mount()?;
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o666);
    nix::sys::stat::mknodat(
        &mnt,
        c"null",
        nix::sys::stat::SFlag::S_IFCHR,
        mode,
        nix::sys::stat::makedev(1, 3),
    )?;
    let fd = nix::fcntl::openat(
        &mnt,
        c"null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )?;
    // The open node keeps working once unlinked and the mount is gone.
    nix::unistd::unlinkat(&mnt, c"null", nix::unistd::UnlinkatFlags::NoRemoveDir)?;
    Ok(fd)
}

/// `open_tree(path, OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of the
/// mount tree at `path` (a recursive bind mount not yet attached anywhere).
pub(crate) fn clone_tree(path: &CStr) -> io::Result<OwnedFd> {
    let flags =
        libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: open_tree reads a NUL-terminated path and returns a descriptor.
    fd_result(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })
}

/// `open_tree(path, OPEN_TREE_CLONE)`: a detached copy of the mount at
/// `path` alone (a plain bind mount, without the mounts below it).
pub(crate) fn clone_mount(path: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    // SAFETY: open_tree reads a NUL-terminated path and returns a descriptor.
    fd_result(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })
}

/// `MOUNT_ATTR_*` (linux/mount.h).
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x04;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub(crate) const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub(crate) const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub(crate) const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub(crate) const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub(crate) const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

/// Change the attributes of a detached mount (tree): set and clear
/// `MOUNT_ATTR_*` bits, and set its propagation (`MS_PRIVATE`, `MS_SLAVE`,
/// ...; 0 leaves it), on every mount of the tree when `recursive`.
pub(crate) fn set_mount_attr(
    mnt: BorrowedFd<'_>,
    set: u64,
    clear: u64,
    propagation: u64,
    recursive: bool,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr reads `attr` (whose size we pass) and an empty path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make a detached mount tree read-only (`mount_setattr`).
pub(crate) fn make_read_only(mnt: BorrowedFd<'_>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (whose size we pass) and an empty path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `MOVE_MOUNT_T_EMPTY_PATH` (linux/mount.h).
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Attach a detached mount onto the directory or file `target` refers to
/// (`move_mount` from and to descriptors, no path lookup).
pub(crate) fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: move_mount reads two empty paths; both descriptors are open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setdomainname(2)` in the calling process's UTS namespace.
pub(crate) fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: setdomainname reads `len` bytes from the pointer, which the
    // string provides.
    if unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kind of namespace `fd` refers to (its `CLONE_NEW*` flag), through
/// the nsfs ioctl NS_GET_NSTYPE; `None` if it is no namespace.
pub(crate) fn namespace_type(fd: &impl AsRawFd) -> Option<i32> {
    // NS_GET_NSTYPE is _IO(0xb7, 0x3) (linux/nsfs.h); libc does not name it.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: the ioctl takes no argument and only reads the descriptor.
    let t = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    (t >= 0).then_some(t)
}
