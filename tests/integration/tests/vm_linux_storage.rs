//! virtio-blk under Linux's own driver (virtio_blk, loaded by the guest
//! agent): reads, writes and flushes that reach the host's image file, a
//! read-only attachment the guest cannot write, and an ext4 file system made
//! on the host, mounted and written in the guest and checked on the host
//! after the VM is gone. One boot.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use hcs_integration_tests::linux_guest::{
    boot_to_agent, linux_vm_doc, pattern, sh, sh_ok, sh_stdin, sha256_hex, shut_down, DISK_FN,
};
use hcs_integration_tests::*;

const MIB: usize = 1 << 20;

fn read_at(path: &Path, offset: usize, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset as u64)
        .unwrap();
    buf
}

fn tool(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

#[test]
fn linux_reads_writes_and_flushes_virtio_blk_disks() {
    if !real_linux_guest_here("vm_linux_storage::linux_reads_writes_and_flushes_virtio_blk_disks") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A read-write raw disk and a read-only one, each filled with its own
    // pattern; an ext4 image made here with two files in it.
    let rw = dir.path().join("rw.img");
    let rw_data = pattern(1, 32 * MIB);
    std::fs::write(&rw, &rw_data).unwrap();
    let ro = dir.path().join("ro.img");
    let ro_data = pattern(2, 8 * MIB);
    std::fs::write(&ro, &ro_data).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("hello.txt"), "hello from the host\n").unwrap();
    let big = pattern(3, 3 * MIB);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let fs = dir.path().join("fs.img");
    let mkfs = tool(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "hcsdata",
            "-d",
            src.to_str().unwrap(),
            fs.to_str().unwrap(),
            "32M",
        ],
    );
    assert!(
        mkfs.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&mkfs.stderr)
    );

    // A fixed VHD (data, then its 512-byte footer) and a raw image whose
    // size is not a multiple of 512: the guest sees the data part and the
    // whole sectors only, and never writes the rest.
    let vhd = dir.path().join("disk.vhd");
    let vhd_data = pattern(7, 4 * MIB);
    let footer = hcs_virtio::block::fixed_vhd_footer(4 * MIB as u64, 2);
    std::fs::write(&vhd, [vhd_data.as_slice(), footer.as_slice()].concat()).unwrap();
    let odd = dir.path().join("odd.img");
    let odd_data = pattern(8, MIB + 100);
    std::fs::write(&odd, &odd_data).unwrap();

    let ns = unique_namespace("vmlinuxblk");
    let doc = linux_vm_doc(
        serde_json::json!({ "VirtualMachine": { "Devices": { "Scsi": {
        "0": { "Attachments": {
            "0": { "Type": "VirtualDisk", "Path": rw, "CachingMode": "Cached" },
            "1": { "Type": "VirtualDisk", "Path": ro, "ReadOnly": true } } },
        "1": { "Attachments": {
            "0": { "Type": "VirtualDisk", "Path": fs, "CachingMode": "Cached" },
            "1": { "Type": "VirtualDisk", "Path": vhd },
            "2": { "Type": "VirtualDisk", "Path": odd } } }
    } } } }),
    );
    let (s, _console) = boot_to_agent(&ns, &doc);

    // Linux sees three disks of the images' sizes, told apart by serial;
    // the Cached ones with a volatile write cache (so Linux sends flushes),
    // the one without CachingMode (HCS's default, Uncached: every write
    // durable before it completes) write-through.
    let out = sh_ok(
        &s,
        &format!(
            "{DISK_FN} for id in 0:0 0:1 1:0; do d=$(disk $id); b=${{d#/dev/}}; \
             echo $id $(blockdev --getsize64 $d) $(cat /sys/block/$b/ro) $(cat /sys/block/$b/queue/write_cache); done"
        ),
    );
    assert_eq!(
        out,
        format!(
            "0:0 {} 0 write back\n0:1 {} 1 write through\n1:0 {} 0 write back\n",
            32 * MIB,
            8 * MIB,
            32 * MIB
        )
    );

    // Reads: every byte of both raw disks.
    let out = sh_ok(&s, &format!("{DISK_FN} sha256sum $(disk 0:0) $(disk 0:1)"));
    let sums: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(sums, [sha256_hex(&rw_data), sha256_hex(&ro_data)], "{out}");

    // Writes: 8 MiB at 8 MiB with fsync (the flush reaches the image: the
    // host reads it at once, the VM still running), then 1 MiB at 20 MiB
    // through the page cache and `sync`.
    let w1 = pattern(4, 8 * MIB);
    let out = sh_stdin(
        &s,
        &format!(
            "{DISK_FN} cat > /tmp/w1 && dd if=/tmp/w1 of=$(disk 0:0) bs=1M seek=8 conv=fsync 2>&1"
        ),
        w1.clone(),
    );
    assert_eq!(out.exit_code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        read_at(&rw, 8 * MIB, 8 * MIB) == w1,
        "the fsync'd write is not in the image"
    );
    let w2 = pattern(5, MIB);
    let out = sh_stdin(
        &s,
        &format!(
            "{DISK_FN} cat > /tmp/w2 && dd if=/tmp/w2 of=$(disk 0:0) bs=64k seek=320 2>&1 && sync"
        ),
        w2.clone(),
    );
    assert_eq!(out.exit_code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        read_at(&rw, 20 * MIB, MIB) == w2,
        "the synced write is not in the image"
    );
    // Read back from the device, not the guest's page cache.
    let out = sh_ok(
        &s,
        &format!(
            "{DISK_FN} d=$(disk 0:0); blockdev --flushbufs $d; echo 3 > /proc/sys/vm/drop_caches; \
             dd if=$d bs=1M skip=8 count=8 2>/dev/null | sha256sum; dd if=$d bs=1M skip=20 count=1 2>/dev/null | sha256sum"
        ),
    );
    let sums: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(sums, [sha256_hex(&w1), sha256_hex(&w2)], "{out}");

    // Many requests in flight: 8 writers with fsync on their own MiB of
    // 24..32 MiB and 4 readers of the read-only disk, all at once.
    let w3 = pattern(6, 8 * MIB);
    let out = sh_stdin(
        &s,
        &format!(
            "{DISK_FN} d=$(disk 0:0); r=$(disk 0:1); cat > /tmp/w3 || exit 1; echo 3 > /proc/sys/vm/drop_caches; \
             for i in 0 1 2 3 4 5 6 7; do dd if=/tmp/w3 of=$d bs=64k skip=$((i*16)) seek=$((384+i*16)) count=16 conv=fsync 2>/dev/null & pids=\"$pids $!\"; done; \
             for i in 1 2 3 4; do sha256sum $r & pids=\"$pids $!\"; done; \
             for pid in $pids; do wait $pid || exit 2; done"
        ),
        w3.clone(),
    );
    assert_eq!(out.exit_code, 0, "{} {}", out.stdout, out.stderr);
    let ro_sum = sha256_hex(&ro_data);
    let sums: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(sums, [ro_sum.as_str(); 4], "{}", out.stdout);
    assert!(
        read_at(&rw, 24 * MIB, 8 * MIB) == w3,
        "the parallel writes are not in the image"
    );

    // The VHD's last 64 KiB and the odd image's last whole sector are
    // written; a write past either end fails.
    let tail = pattern(9, 64 * 1024);
    let out = sh_stdin(
        &s,
        &format!(
            "{DISK_FN} v=$(disk 1:1); o=$(disk 1:2); cat > /tmp/tail || exit 1; \
             echo $(blockdev --getsize64 $v) $(blockdev --getsize64 $o); \
             dd if=/tmp/tail of=$v bs=64k seek=63 conv=fsync 2>/dev/null || exit 2; \
             dd if=/tmp/tail of=$o bs=512 count=1 seek=2047 conv=fsync 2>/dev/null || exit 3; \
             dd if=/tmp/tail of=$v bs=512 count=1 seek=8192 conv=fsync 2>/dev/null && exit 4; \
             dd if=/tmp/tail of=$o bs=512 count=1 seek=2048 conv=fsync 2>/dev/null && exit 5; exit 0"
        ),
        tail.clone(),
    );
    assert_eq!(out.exit_code, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, format!("{} {}\n", 4 * MIB, MIB));

    // The read-only disk refuses writes, also after `blockdev --setrw`.
    let out = sh(
        &s,
        &format!(
            "{DISK_FN} d=$(disk 0:1); dd if=/dev/zero of=$d bs=4096 count=1 conv=fsync && exit 1; \
             blockdev --setrw $d; dd if=/dev/zero of=$d bs=4096 count=1 conv=fsync && exit 2; exit 0"
        ),
    );
    assert_eq!(
        out.exit_code, 0,
        "a write to the read-only disk succeeded: {}",
        out.stderr
    );

    // The host's ext4: mounted, read, written, unmounted cleanly.
    let out = sh_stdin(
        &s,
        &format!(
            "{DISK_FN} set -e; mkdir -p /mnt/data; mount -t ext4 $(disk 1:0) /mnt/data; \
             cat /mnt/data/hello.txt; sha256sum /mnt/data/big.bin; \
             echo 'written in the guest' > /mnt/data/guest.txt; cat > /mnt/data/guest.bin; \
             mkdir /mnt/data/dir; seq 1 1000 > /mnt/data/dir/seq; \
             umount /mnt/data; mount -t ext4 -o ro $(disk 1:0) /mnt/data; \
             echo 3 > /proc/sys/vm/drop_caches; sha256sum /mnt/data/guest.bin; umount /mnt/data"
        ),
        w2.clone(),
    );
    assert_eq!(out.exit_code, 0, "{} {}", out.stdout, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0], "hello from the host");
    assert!(lines[1].starts_with(&sha256_hex(&big)), "{}", lines[1]);
    assert!(lines[2].starts_with(&sha256_hex(&w2)), "{}", lines[2]);

    // The driver unloaded and loaded again: every device is reset and set
    // up anew; the disks come back with their serials and contents.
    let out = sh_ok(
        &s,
        &format!(
            "rmmod virtio_blk && [ -z \"$(ls /sys/block | grep ^vd)\" ] && \
             insmod $(find /lib/modules -name virtio_blk.ko) && {DISK_FN} \
             sha256sum $(disk 0:1) && dd if=$(disk 0:0) bs=1M skip=8 count=8 2>/dev/null | sha256sum"
        ),
    );
    let sums: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        sums,
        [sha256_hex(&ro_data), sha256_hex(&w1)],
        "after the reload: {out}"
    );

    shut_down(&s);
    drop(s);
    assert!(leftovers(&ns).is_empty());

    // The images after the VM: the raw writes where they were put and
    // nothing else changed; the file system clean, with the guest's files.
    let mut want = rw_data.clone();
    want[8 * MIB..16 * MIB].copy_from_slice(&w1);
    want[20 * MIB..21 * MIB].copy_from_slice(&w2);
    want[24 * MIB..32 * MIB].copy_from_slice(&w3);
    assert!(
        std::fs::read(&rw).unwrap() == want,
        "rw.img is not what the guest wrote"
    );
    assert!(
        std::fs::read(&ro).unwrap() == ro_data,
        "the read-only image changed"
    );
    let mut want = vhd_data.clone();
    want[4 * MIB - 64 * 1024..].copy_from_slice(&tail);
    want.extend_from_slice(&footer);
    assert!(
        std::fs::read(&vhd).unwrap() == want,
        "disk.vhd: data or footer wrong"
    );
    let mut want = odd_data.clone();
    want[MIB - 512..MIB].copy_from_slice(&tail[..512]);
    assert!(std::fs::read(&odd).unwrap() == want, "odd.img: wrong");
    let fsck = tool("e2fsck", &["-f", "-n", fs.to_str().unwrap()]);
    assert!(
        fsck.status.success(),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let cat = |file: &str| {
        tool(
            "debugfs",
            &["-R", &format!("cat {file}"), fs.to_str().unwrap()],
        )
        .stdout
    };
    assert_eq!(
        String::from_utf8_lossy(&cat("/guest.txt")),
        "written in the guest\n"
    );
    assert!(cat("/guest.bin") == w2, "guest.bin differs");
    let want_seq: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&cat("/dir/seq")), want_seq);
    assert_eq!(
        String::from_utf8_lossy(&cat("/hello.txt")),
        "hello from the host\n"
    );
}
