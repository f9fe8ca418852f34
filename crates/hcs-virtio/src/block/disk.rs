//! Disk images: raw files and fixed VHDs.
//!
//! A fixed VHD is the raw disk followed by a 512-byte footer that starts
//! with the cookie `conectix` (big-endian fields; disk type at byte 60,
//! current size at byte 48, checksum at byte 64). Only the data part is
//! exposed to the guest (a choice: HCS attaches fixed VHDs, and the footer
//! is metadata, not disk). Dynamic and differencing VHDs (block allocation
//! tables, parents; a copy of the footer at offset 0), VHDX (`vhdxfile` at
//! offset 0), qcow2 (`QFI\xfb`) and sparse VMDK (`KDMV`) are refused with an
//! error that names the format: attached raw, the guest would read their
//! metadata as its disk, and its writes would corrupt the image.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes in a sector, the unit of virtio-blk addresses.
pub const SECTOR_SIZE: u64 = 512;
/// Size of a VHD footer.
pub const VHD_FOOTER_SIZE: u64 = 512;
const VHD_COOKIE: &[u8; 8] = b"conectix";
const VHD_TYPE_FIXED: u32 = 2;
const VHD_TYPE_DYNAMIC: u32 = 3;
const VHD_TYPE_DIFFERENCING: u32 = 4;

/// Why a disk image cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The file could not be opened.
    #[error("opening disk image {path}: {source}")]
    Open {
        /// The image.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Its size or footer could not be read.
    #[error("reading disk image {path}: {source}")]
    Read {
        /// The image.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A dynamic or differencing VHD, which only Hyper-V's VHD parser
    /// understands; convert it to a fixed VHD or a raw image.
    #[error("disk image {path} is a {kind} VHD; only raw images and fixed VHDs are supported (convert it, e.g. `qemu-img convert -O raw`)")]
    UnsupportedVhd {
        /// The image.
        path: PathBuf,
        /// "dynamic" or "differencing".
        kind: &'static str,
    },
    /// An image format this VMM does not parse (VHDX, qcow2, VMDK).
    #[error("disk image {path} is a {format} image (signature {signature:?} at offset 0); only raw images and fixed VHDs are supported (convert it, e.g. `qemu-img convert -O raw`)")]
    UnsupportedFormat {
        /// The image.
        path: PathBuf,
        /// "VHDX", "qcow2", "VMDK".
        format: &'static str,
        /// The signature found.
        signature: &'static str,
    },
    /// A VHD footer that does not add up.
    #[error("disk image {path} has a bad VHD footer: {why}")]
    BadVhdFooter {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The format of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// The whole file is the disk.
    Raw,
    /// The disk followed by a VHD footer.
    FixedVhd,
}

/// How the host caches an image (`Attachment.CachingMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Host page cache for reads and writes; a write is durable after the
    /// guest's flush (`fdatasync`). The guest is told the cache is volatile
    /// (`VIRTIO_BLK_F_FLUSH`). `Cached`.
    #[default]
    WriteBack,
    /// Reads cached; every write durable before it completes (`O_DSYNC`).
    /// `ReadOnlyCached`.
    WriteThrough,
    /// Writes durable before they complete (`O_DSYNC`) and nothing kept in
    /// the host's page cache: the pages of every transfer are dropped
    /// (`POSIX_FADV_DONTNEED`) once it is done. `Uncached`. (Not `O_DIRECT`,
    /// whose alignment rules depend on the file system, and which tmpfs
    /// refuses.)
    Uncached,
}

/// An open disk image.
#[derive(Debug)]
pub struct DiskImage {
    file: File,
    path: PathBuf,
    format: DiskFormat,
    size: u64,
    read_only: bool,
    cache: CacheMode,
    /// `fdatasync` calls made, for tests and statistics.
    syncs: AtomicU64,
}

impl DiskImage {
    /// Open `path` (read-only if `read_only`) and detect its format.
    pub fn open(path: impl AsRef<Path>, read_only: bool) -> Result<DiskImage, DiskError> {
        DiskImage::open_with(path, read_only, CacheMode::WriteBack)
    }

    /// Open `path` like [`DiskImage::open`], cached as `cache` says.
    pub fn open_with(
        path: impl AsRef<Path>,
        read_only: bool,
        cache: CacheMode,
    ) -> Result<DiskImage, DiskError> {
        let path = path.as_ref().to_path_buf();
        let flags = match cache {
            CacheMode::WriteBack => 0,
            CacheMode::WriteThrough | CacheMode::Uncached => libc::O_DSYNC,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(flags)
            .open(&path)
            .map_err(|source| DiskError::Open {
                path: path.clone(),
                source,
            })?;
        // Seeking works for block devices too, whose metadata length is 0.
        let file_len = file
            .seek(SeekFrom::End(0))
            .map_err(|source| DiskError::Read {
                path: path.clone(),
                source,
            })?;
        if cache == CacheMode::Uncached {
            // No readahead: it would cache pages the guest never asked for.
            advise(&file, &path, 0, 0, libc::POSIX_FADV_RANDOM);
        }
        let (format, size) = detect(&file, &path, file_len)?;
        if cache == CacheMode::Uncached {
            // Nor keep what detecting the format read.
            advise(&file, &path, 0, 0, libc::POSIX_FADV_DONTNEED);
        }
        if size % SECTOR_SIZE != 0 {
            tracing::warn!(
                path = %path.display(),
                size,
                "disk image size is not a multiple of 512; the last partial sector is not visible"
            );
        }
        Ok(DiskImage {
            file,
            path,
            format,
            size,
            read_only,
            cache,
            syncs: AtomicU64::new(0),
        })
    }

    /// How the host caches it.
    pub fn cache_mode(&self) -> CacheMode {
        self.cache
    }

    /// How many times written data was made durable with `fdatasync`.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The open file's status flags (`F_GETFL`), for tests.
    #[cfg(test)]
    pub(crate) fn status_flags(&self) -> libc::c_int {
        // SAFETY: F_GETFL on a descriptor we own reads its flags, nothing else.
        unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_GETFL) }
    }

    /// With [`CacheMode::Uncached`], drop the pages of a finished transfer
    /// from the host's page cache (clean ones: writes were `O_DSYNC`).
    fn uncache(&self, offset: u64, len: usize) {
        if self.cache != CacheMode::Uncached {
            return;
        }
        let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
            return;
        };
        advise(&self.file, &self.path, off, n, libc::POSIX_FADV_DONTNEED);
    }

    /// The image's format.
    pub fn format(&self) -> DiskFormat {
        self.format
    }

    /// Bytes of disk data (without a VHD footer).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The disk's capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.size / SECTOR_SIZE
    }

    /// Whether the image was opened read-only.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read `buf.len()` bytes at byte `offset` of the disk data.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.check_range(offset, buf.len())?;
        self.file.read_exact_at(buf, offset)?;
        self.uncache(offset, buf.len());
        Ok(())
    }

    /// Write `buf` at byte `offset` of the disk data.
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        if self.read_only {
            return Err(std::io::Error::from_raw_os_error(libc::EROFS));
        }
        self.check_range(offset, buf.len())?;
        self.file.write_all_at(buf, offset)?;
        self.uncache(offset, buf.len());
        Ok(())
    }

    /// Make written data durable.
    pub(crate) fn flush(&self) -> std::io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data()
    }

    /// Never touch the VHD footer or beyond, whatever the caller checked.
    fn check_range(&self, offset: u64, len: usize) -> std::io::Result<()> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }
}

/// `posix_fadvise`; a failure only costs page-cache use, so it is logged.
fn advise(file: &File, path: &Path, offset: libc::off_t, len: libc::off_t, advice: libc::c_int) {
    // SAFETY: posix_fadvise only advises the kernel about our own open
    // file; no memory is passed.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, advice) };
    if rc != 0 {
        tracing::debug!(path = %path.display(), rc, advice, "posix_fadvise failed");
    }
}

/// Signatures at offset 0 of image formats that are not raw disks.
const FOREIGN_FORMATS: [(&[u8], &str, &str); 3] = [
    (b"vhdxfile", "VHDX", "vhdxfile"),
    (b"QFI\xfb", "qcow2", "QFI\\xfb"),
    (b"KDMV", "VMDK", "KDMV"),
];

/// Detect the format of a file of `file_len` bytes.
fn detect(file: &File, path: &Path, file_len: u64) -> Result<(DiskFormat, u64), DiskError> {
    let read = |buf: &mut [u8], at| {
        file.read_exact_at(buf, at)
            .map_err(|source| DiskError::Read {
                path: path.into(),
                source,
            })
    };
    let mut head = [0u8; VHD_FOOTER_SIZE as usize];
    let head_len = usize::try_from(file_len.min(VHD_FOOTER_SIZE)).unwrap_or(0);
    read(&mut head[..head_len], 0)?;
    for (magic, format, signature) in FOREIGN_FORMATS {
        if head.starts_with(magic) && head_len >= magic.len() {
            return Err(DiskError::UnsupportedFormat {
                path: path.into(),
                format,
                signature,
            });
        }
    }
    if file_len < VHD_FOOTER_SIZE {
        return Ok((DiskFormat::Raw, file_len));
    }
    let mut footer = [0u8; VHD_FOOTER_SIZE as usize];
    file.read_exact_at(&mut footer, file_len - VHD_FOOTER_SIZE)
        .map_err(|source| DiskError::Read {
            path: path.into(),
            source,
        })?;
    if &footer[..8] == VHD_COOKIE {
        let data = file_len - VHD_FOOTER_SIZE;
        return parse_footer(&footer, data)
            .map(|size| (DiskFormat::FixedVhd, size))
            .map_err(|e| e.into_error(path));
    }
    // Dynamic and differencing VHDs carry a copy of the footer at the start
    // of the file (and their real footer at the end, which may be damaged
    // or cut off). Without a fixed footer at the end, a file that starts
    // with the cookie is such a VHD, never a raw disk.
    if head.starts_with(VHD_COOKIE) {
        let disk_type = be32(&head, 60);
        return Err(match dynamic_kind(disk_type) {
            Some(kind) => DiskError::UnsupportedVhd {
                path: path.into(),
                kind,
            },
            None => DiskError::BadVhdFooter {
                path: path.into(),
                why: format!(
                    "a VHD footer copy at offset 0 (disk type {disk_type}) but no valid footer at \
                     the end; a dynamic or differencing VHD cannot be attached"
                ),
            },
        });
    }
    Ok((DiskFormat::Raw, file_len))
}

enum FooterError {
    Unsupported(&'static str),
    Bad(String),
}

impl FooterError {
    fn into_error(self, path: &Path) -> DiskError {
        match self {
            FooterError::Unsupported(kind) => DiskError::UnsupportedVhd {
                path: path.into(),
                kind,
            },
            FooterError::Bad(why) => DiskError::BadVhdFooter {
                path: path.into(),
                why,
            },
        }
    }
}

/// The disk size a footer describes, for `data` bytes before it.
fn parse_footer(footer: &[u8; 512], data: u64) -> Result<u64, FooterError> {
    if !checksum_ok(footer) {
        return Err(FooterError::Bad(format!(
            "checksum {:#010x} does not match {:#010x}",
            be32(footer, 64),
            checksum(footer)
        )));
    }
    let disk_type = be32(footer, 60);
    if let Some(kind) = dynamic_kind(disk_type) {
        return Err(FooterError::Unsupported(kind));
    }
    if disk_type != VHD_TYPE_FIXED {
        return Err(FooterError::Bad(format!("unknown disk type {disk_type}")));
    }
    let current = be64(footer, 48);
    if current > data {
        return Err(FooterError::Bad(format!(
            "it says the disk holds {current} bytes but the file has {data} bytes before the footer"
        )));
    }
    if current % SECTOR_SIZE != 0 {
        return Err(FooterError::Bad(format!(
            "disk size {current} is not a multiple of 512"
        )));
    }
    Ok(current)
}

fn dynamic_kind(disk_type: u32) -> Option<&'static str> {
    match disk_type {
        VHD_TYPE_DYNAMIC => Some("dynamic"),
        VHD_TYPE_DIFFERENCING => Some("differencing"),
        _ => None,
    }
}

/// One's complement of the byte sum, without the checksum field (64..68).
pub(crate) fn checksum(footer: &[u8; 512]) -> u32 {
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |acc, (_, &b)| acc.wrapping_add(u32::from(b)));
    !sum
}

fn checksum_ok(footer: &[u8; 512]) -> bool {
    be32(footer, 64) == checksum(footer)
}

fn be32(b: &[u8; 512], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(v)
}

fn be64(b: &[u8; 512], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

/// A VHD footer for a fixed disk of `size` bytes (tests and tools).
pub fn fixed_vhd_footer(size: u64, disk_type: u32) -> [u8; 512] {
    let mut f = [0u8; 512];
    f[..8].copy_from_slice(VHD_COOKIE);
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    let data_offset = if disk_type == VHD_TYPE_FIXED {
        u64::MAX
    } else {
        512
    };
    f[16..24].copy_from_slice(&data_offset.to_be_bytes());
    f[28..32].copy_from_slice(b"hcs ");
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    f[60..64].copy_from_slice(&disk_type.to_be_bytes());
    let sum = checksum(&f);
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn image(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    #[test]
    fn raw_image_is_the_whole_file() {
        let f = image(&[7u8; 4096]);
        let d = DiskImage::open(f.path(), false).unwrap();
        assert_eq!(d.format(), DiskFormat::Raw);
        assert_eq!(d.sectors(), 8);
    }

    #[test]
    fn tiny_raw_image_has_no_footer() {
        let f = image(&[1u8; 100]);
        let d = DiskImage::open(f.path(), true).unwrap();
        assert_eq!(d.format(), DiskFormat::Raw);
        assert_eq!(d.sectors(), 0);
    }

    #[test]
    fn fixed_vhd_exposes_only_the_data() {
        let mut bytes = vec![0xabu8; 8192];
        bytes.extend_from_slice(&fixed_vhd_footer(8192, VHD_TYPE_FIXED));
        let f = image(&bytes);
        let d = DiskImage::open(f.path(), false).unwrap();
        assert_eq!(d.format(), DiskFormat::FixedVhd);
        assert_eq!(d.size(), 8192);
        assert_eq!(d.sectors(), 16);
        let mut buf = [0u8; 512];
        assert!(
            d.read_at(&mut buf, 8192).is_err(),
            "the footer is not disk data"
        );
        assert!(d.write_at(&buf, 8192).is_err());
        d.read_at(&mut buf, 8192 - 512).unwrap();
        assert_eq!(buf, [0xab; 512]);
    }

    #[test]
    fn dynamic_and_differencing_vhds_are_refused() {
        for (t, kind) in [
            (VHD_TYPE_DYNAMIC, "dynamic"),
            (VHD_TYPE_DIFFERENCING, "differencing"),
        ] {
            let footer = fixed_vhd_footer(1 << 20, t);
            let mut bytes = footer.to_vec();
            bytes.extend_from_slice(&[0u8; 2048]);
            bytes.extend_from_slice(&footer);
            let f = image(&bytes);
            let err = DiskImage::open(f.path(), true).unwrap_err();
            assert!(
                matches!(err, DiskError::UnsupportedVhd { kind: k, .. } if k == kind),
                "{err}"
            );
            assert!(err.to_string().contains(kind));
        }
    }

    #[test]
    fn vhdx_qcow2_and_vmdk_images_are_refused_naming_the_format() {
        for (magic, format) in [
            (&b"vhdxfile"[..], "VHDX"),
            (&b"QFI\xfb\0\0\0\x03"[..], "qcow2"),
            (&b"KDMV\x01\0\0\0"[..], "VMDK"),
        ] {
            let mut bytes = magic.to_vec();
            bytes.resize(1 << 20, 0);
            let f = image(&bytes);
            for read_only in [true, false] {
                let err = DiskImage::open(f.path(), read_only).unwrap_err();
                assert!(
                    matches!(err, DiskError::UnsupportedFormat { format: k, .. } if k == format),
                    "{format}: {err}"
                );
                let msg = err.to_string();
                assert!(
                    msg.contains(format) && msg.contains(&f.path().display().to_string()),
                    "{msg}"
                );
            }
            // Even an image smaller than a sector.
            let f = image(magic);
            assert!(DiskImage::open(f.path(), true).is_err(), "{format}, tiny");
        }
    }

    #[test]
    fn a_vhd_footer_copy_at_offset_0_without_a_fixed_footer_is_refused() {
        // A dynamic VHD cut short (no footer at the end), and one whose
        // copy's checksum is off: neither is a raw disk.
        let footer = fixed_vhd_footer(1 << 20, VHD_TYPE_DYNAMIC);
        let mut bytes = footer.to_vec();
        bytes.extend_from_slice(&[0u8; 4096]);
        let err = DiskImage::open(image(&bytes).path(), true).unwrap_err();
        assert!(
            matches!(
                err,
                DiskError::UnsupportedVhd {
                    kind: "dynamic",
                    ..
                }
            ),
            "{err}"
        );
        bytes[100] ^= 1;
        let err = DiskImage::open(image(&bytes).path(), true).unwrap_err();
        assert!(
            matches!(
                err,
                DiskError::UnsupportedVhd {
                    kind: "dynamic",
                    ..
                }
            ),
            "{err}"
        );
        let mut odd = fixed_vhd_footer(1 << 20, 9).to_vec();
        odd.extend_from_slice(&[0u8; 4096]);
        let err = DiskImage::open(image(&odd).path(), true).unwrap_err();
        assert!(matches!(err, DiskError::BadVhdFooter { .. }), "{err}");
    }

    #[test]
    fn vhd_footer_with_bad_checksum_or_size_is_refused() {
        let mut footer = fixed_vhd_footer(4096, VHD_TYPE_FIXED);
        footer[100] ^= 1;
        let mut bytes = vec![0u8; 4096];
        bytes.extend_from_slice(&footer);
        let err = DiskImage::open(image(&bytes).path(), true).unwrap_err();
        assert!(matches!(err, DiskError::BadVhdFooter { .. }), "{err}");

        let mut bytes = vec![0u8; 4096];
        bytes.extend_from_slice(&fixed_vhd_footer(8192, VHD_TYPE_FIXED));
        let err = DiskImage::open(image(&bytes).path(), true).unwrap_err();
        assert!(err.to_string().contains("8192"), "{err}");
    }

    #[test]
    fn read_only_image_refuses_writes() {
        let f = image(&[0u8; 1024]);
        let d = DiskImage::open(f.path(), true).unwrap();
        assert!(d.write_at(&[1; 512], 0).is_err());
        d.flush().unwrap();
    }

    #[test]
    fn missing_image_names_the_path() {
        let err = DiskImage::open("/nonexistent/disk.vhd", true).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/disk.vhd"));
    }
}
