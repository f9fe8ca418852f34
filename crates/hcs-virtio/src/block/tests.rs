use std::io::Write;
use std::sync::atomic::Ordering;

use vm_memory::{Address, Bytes, GuestAddress};

use super::*;
use crate::testing::{counting_interrupt, memory, read_bytes, Buf, Driver, Rng, MEM_SIZE};

const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x20_0000;
const STATUS: u64 = 0x30_0000;

fn image(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

/// A disk of `sectors` sectors where byte i of sector s is (s + i) as u8.
fn patterned(sectors: u64) -> Vec<u8> {
    (0..sectors * 512)
        .map(|i| ((i / 512) + (i % 512)) as u8)
        .collect()
}

fn device(path: &std::path::Path, read_only: bool) -> Block {
    Block::open(&BlockConfig {
        path: path.into(),
        read_only,
        id: "hcs-disk-0123456789abcdef".into(),
        options: BlockOptions::default(),
    })
    .unwrap()
}

struct Rig<'a> {
    mem: &'a GuestMemoryMmap,
    driver: Driver<'a>,
    blk: Block,
    irqs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<'a> Rig<'a> {
    fn new(mem: &'a GuestMemoryMmap, blk: Block, qsize: u16) -> Self {
        let driver = Driver::new(mem, 0, qsize);
        let (interrupt, irqs) = counting_interrupt();
        let mut blk = blk;
        blk.activate(DeviceQueues {
            mem: mem.clone(),
            queues: vec![driver.queue()],
            interrupt,
            acked_features: 0,
        })
        .unwrap();
        Rig {
            mem,
            driver,
            blk,
            irqs,
        }
    }

    fn header(&self, kind: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&h, GuestAddress(HDR)).unwrap();
        self.mem.write_obj(0xeeu8, GuestAddress(STATUS)).unwrap();
    }

    /// Submit a chain and serve it; returns (used len, status byte).
    fn submit(&mut self, bufs: &[Buf]) -> (u32, u8) {
        let before = self.driver.used_idx();
        let head = self.driver.add(bufs);
        self.blk.queue_notify(0);
        assert_eq!(
            self.driver.used_idx(),
            before.wrapping_add(1),
            "request returned to the used ring"
        );
        let (id, len) = self.driver.used(before);
        assert_eq!(id, u32::from(head));
        (len, self.mem.read_obj(GuestAddress(STATUS)).unwrap())
    }

    fn request(&mut self, kind: u32, sector: u64, data_len: u32, device_writes: bool) -> (u32, u8) {
        self.header(kind, sector);
        self.submit(&[
            Buf(HDR, 16, false),
            Buf(DATA, data_len, device_writes),
            Buf(STATUS, 1, true),
        ])
    }
}

#[test]
fn config_space_and_features() {
    let f = image(&patterned(8));
    let blk = device(f.path(), false);
    let mut cap = [0u8; 8];
    blk.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 8);
    let mut seg = [0u8; 4];
    blk.read_config(12, &mut seg);
    assert_eq!(u32::from_le_bytes(seg), SEG_MAX);
    assert_eq!(blk.features() & VIRTIO_BLK_F_RO, 0);
    assert_ne!(blk.features() & VIRTIO_BLK_F_FLUSH, 0);
    assert_eq!(blk.device_type(), 2);
    assert_ne!(device(f.path(), true).features() & VIRTIO_BLK_F_RO, 0);
}

#[test]
fn reads_sectors() {
    let f = image(&patterned(8));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 2, 1024, true),
        (1025, VIRTIO_BLK_S_OK)
    );
    assert_eq!(
        read_bytes(&mem, DATA, 1024),
        patterned(8)[1024..2048].to_vec()
    );
    assert!(rig.irqs.load(Ordering::SeqCst) >= 1);
}

#[test]
fn writes_and_flushes() {
    let f = image(&patterned(8));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    mem.write_slice(&[0x5a; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(
        rig.request(VIRTIO_BLK_T_OUT, 7, 512, false),
        (1, VIRTIO_BLK_S_OK)
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_FLUSH, 0, 0, false).1,
        VIRTIO_BLK_S_OK
    );
    let bytes = std::fs::read(f.path()).unwrap();
    assert_eq!(&bytes[7 * 512..], &[0x5a; 512][..]);
    assert_eq!(&bytes[..7 * 512], &patterned(7)[..]);
}

#[test]
fn flush_without_data_buffer() {
    let f = image(&patterned(1));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    rig.header(VIRTIO_BLK_T_FLUSH, 0);
    assert_eq!(
        rig.submit(&[Buf(HDR, 16, false), Buf(STATUS, 1, true)]),
        (1, VIRTIO_BLK_S_OK)
    );
}

#[test]
fn get_id() {
    let f = image(&patterned(1));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    assert_eq!(
        rig.request(VIRTIO_BLK_T_GET_ID, 0, 20, true),
        (21, VIRTIO_BLK_S_OK)
    );
    assert_eq!(read_bytes(&mem, DATA, 20), b"hcs-disk-0123456789a".to_vec());
}

#[test]
fn read_only_disk_refuses_writes() {
    let f = image(&patterned(4));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), true), 16);
    mem.write_slice(&[0x77; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(
        rig.request(VIRTIO_BLK_T_OUT, 0, 512, false),
        (1, VIRTIO_BLK_S_IOERR)
    );
    assert_eq!(std::fs::read(f.path()).unwrap(), patterned(4));
    // Reads still work.
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 0, 512, true),
        (513, VIRTIO_BLK_S_OK)
    );
}

#[test]
fn out_of_range_sectors_fail() {
    let f = image(&patterned(4));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 4, 512, true).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 3, 1024, true).1,
        VIRTIO_BLK_S_IOERR,
        "straddles the end"
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, u64::MAX, 512, true).1,
        VIRTIO_BLK_S_IOERR,
        "overflow"
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, u64::MAX / 512, 512, true).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_OUT, 4, 512, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 0, 100, true).1,
        VIRTIO_BLK_S_IOERR,
        "not whole sectors"
    );
    assert_eq!(std::fs::read(f.path()).unwrap(), patterned(4));
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 3, 512, true),
        (513, VIRTIO_BLK_S_OK),
        "last sector"
    );
}

#[test]
fn fixed_vhd_hides_its_footer() {
    let mut bytes = patterned(4);
    bytes.extend_from_slice(&fixed_vhd_footer(4 * 512, 2));
    let f = image(&bytes);
    let mem = memory();
    let blk = device(f.path(), false);
    assert_eq!(blk.disk().format(), DiskFormat::FixedVhd);
    let mut cap = [0u8; 8];
    blk.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 4);
    let mut rig = Rig::new(&mem, blk, 16);
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 4, 512, true).1,
        VIRTIO_BLK_S_IOERR,
        "the footer is not a sector"
    );
    mem.write_slice(&[1; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(
        rig.request(VIRTIO_BLK_T_OUT, 4, 512, false).1,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_OUT, 3, 512, false).1,
        VIRTIO_BLK_S_OK
    );
    let after = std::fs::read(f.path()).unwrap();
    assert_eq!(
        &after[4 * 512..],
        &fixed_vhd_footer(4 * 512, 2)[..],
        "footer intact"
    );
}

#[test]
fn unsupported_request_type() {
    let f = image(&patterned(1));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    assert_eq!(rig.request(11, 0, 16, false), (1, VIRTIO_BLK_S_UNSUPP));
}

#[test]
fn buffer_outside_guest_memory_fails_the_request_only() {
    let f = image(&patterned(4));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    rig.header(VIRTIO_BLK_T_IN, 0);
    let r = rig.submit(&[
        Buf(HDR, 16, false),
        Buf(MEM_SIZE - 256, 512, true),
        Buf(STATUS, 1, true),
    ]);
    assert_eq!(r, (1, VIRTIO_BLK_S_IOERR));
    rig.header(VIRTIO_BLK_T_IN, 0);
    let r = rig.submit(&[
        Buf(HDR, 16, false),
        Buf(u64::MAX - 100, 512, true),
        Buf(STATUS, 1, true),
    ]);
    assert_eq!(r, (1, VIRTIO_BLK_S_IOERR));
    // Header outside memory.
    let r = rig.submit(&[
        Buf(0x1_0000_0000, 16, false),
        Buf(DATA, 512, true),
        Buf(STATUS, 1, true),
    ]);
    assert_eq!(r.1, VIRTIO_BLK_S_IOERR);
    // Status outside memory: nowhere to report, returned with length 0.
    rig.header(VIRTIO_BLK_T_IN, 0);
    let before = rig.driver.used_idx();
    rig.driver.add(&[
        Buf(HDR, 16, false),
        Buf(DATA, 512, true),
        Buf(MEM_SIZE + 4096, 1, true),
    ]);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used(before).1, 0);
    // The device still works.
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 1, 512, true),
        (513, VIRTIO_BLK_S_OK)
    );
}

#[test]
fn too_long_chain_is_refused() {
    let f = image(&patterned(4));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 512);
    rig.header(VIRTIO_BLK_T_OUT, 0);
    let mut bufs = vec![Buf(HDR, 16, false)];
    bufs.extend((0..300).map(|i| Buf(DATA + i * 512, 512, false)));
    bufs.push(Buf(STATUS, 1, true));
    let before = rig.driver.used_idx();
    rig.driver.add(&bufs);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), before.wrapping_add(1));
    assert_eq!(
        std::fs::read(f.path()).unwrap(),
        patterned(4),
        "nothing written"
    );
    // Too long for a read too: the status lands in a guest-writable buffer.
    rig.header(VIRTIO_BLK_T_IN, 0);
    let mut bufs = vec![Buf(HDR, 16, false)];
    bufs.extend((0..299).map(|i| Buf(DATA + i * 512, 512, true)));
    bufs.push(Buf(STATUS, 1, true));
    let before = rig.driver.used_idx();
    rig.driver.add(&bufs);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used(before).1, 1, "only the error status");
}

#[test]
fn looping_chain_is_refused() {
    let f = image(&patterned(4));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    rig.header(VIRTIO_BLK_T_IN, 0);
    let head = rig.driver.add(&[Buf(HDR, 16, false), Buf(STATUS, 1, true)]);
    // Make the status descriptor point back at the header.
    let mut d = virtio_queue::desc::split::Descriptor::from(
        rig.driver.vq.desc_table().load(head + 1).unwrap(),
    );
    d.set_flags(d.flags() | virtio_bindings::virtio_ring::VRING_DESC_F_NEXT as u16);
    d.set_next(head);
    rig.driver
        .vq
        .desc_table()
        .store(head + 1, d.into())
        .unwrap();
    let before = rig.driver.used_idx();
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), before.wrapping_add(1));
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        VIRTIO_BLK_S_IOERR
    );
}

#[test]
fn zero_length_buffers_are_skipped() {
    let f = image(&patterned(4));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    rig.header(VIRTIO_BLK_T_IN, 1);
    let r = rig.submit(&[
        Buf(HDR, 8, false),
        Buf(HDR + 8, 0, false),
        Buf(HDR + 8, 8, false),
        Buf(DATA, 0, true),
        Buf(DATA, 256, true),
        Buf(DATA + 0x1000, 0, true),
        Buf(DATA + 256, 256, true),
        Buf(STATUS, 1, true),
    ]);
    assert_eq!(r, (513, VIRTIO_BLK_S_OK));
    assert_eq!(read_bytes(&mem, DATA, 512), patterned(2)[512..].to_vec());
    // A zero-length read is fine; a zero-length header is not.
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 0, 0, true),
        (1, VIRTIO_BLK_S_OK)
    );
    let r = rig.submit(&[Buf(HDR, 0, false), Buf(STATUS, 1, true)]);
    assert_eq!(r, (1, VIRTIO_BLK_S_IOERR));
}

#[test]
fn readable_after_writable_is_refused() {
    let f = image(&patterned(4));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    rig.header(VIRTIO_BLK_T_IN, 0);
    let r = rig.submit(&[
        Buf(HDR, 16, false),
        Buf(DATA, 512, true),
        Buf(DATA + 512, 512, false),
        Buf(STATUS, 1, true),
    ]);
    assert_eq!(r, (1, VIRTIO_BLK_S_IOERR));
}

#[test]
fn large_reads_cross_chunks() {
    let sectors = 2048; // 1 MiB, four 256 KiB chunks
    let f = image(&patterned(sectors));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 0, 1 << 20, true),
        ((1 << 20) + 1, VIRTIO_BLK_S_OK)
    );
    assert_eq!(read_bytes(&mem, DATA, 1 << 20), patterned(sectors));
}

#[test]
fn notify_before_activation_and_after_reset_is_harmless() {
    let f = image(&patterned(1));
    let mut blk = device(f.path(), false);
    blk.queue_notify(0);
    blk.queue_notify(3);
    blk.reset();
    blk.queue_notify(0);
}

/// Random descriptor tables, avail rings and indices: the device must
/// never panic and must keep returning what it can.
#[test]
fn random_descriptor_tables_never_panic() {
    let f = image(&patterned(64));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut served = 0u64;
    for _ in 0..3000 {
        let next_avail = rig.blk.queue_positions().unwrap().0;
        fuzz_ring(&mem, &rig.driver, &mut rng, next_avail);
        let before = rig.driver.used_idx();
        rig.blk.queue_notify(0);
        served += u64::from(rig.driver.used_idx().wrapping_sub(before));
    }
    assert!(
        served > 3000,
        "the fuzzer reached the device ({served} requests)"
    );
    // Still serves a good request afterwards.
    let (next_avail, next_used) = rig.blk.queue_positions().unwrap();
    rig.driver.vq.avail().idx().store(next_avail);
    mem.write_obj(next_used, rig.driver.vq.used_addr().unchecked_add(2))
        .unwrap();
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 1, 512, true),
        (513, VIRTIO_BLK_S_OK)
    );
}

/// Scribble over a queue's descriptor table and avail ring.
pub(crate) fn fuzz_ring(
    mem: &GuestMemoryMmap,
    driver: &Driver<'_>,
    rng: &mut Rng,
    next_avail: u16,
) {
    use virtio_queue::desc::{split::Descriptor, RawDescriptor};
    for i in 0..16u16 {
        let addr = match rng.below(4) {
            0 => rng.next(),
            1 => MEM_SIZE - rng.below(1024),
            _ => HDR + rng.below(0x30_0000),
        };
        let len = match rng.below(4) {
            0 => rng.next() as u32,
            1 => 0,
            _ => rng.below(4096) as u32,
        };
        let flags = rng.below(8) as u16;
        let next = if rng.below(4) == 0 {
            rng.next() as u16
        } else {
            rng.below(16) as u16
        };
        driver
            .vq
            .desc_table()
            .store(
                i,
                RawDescriptor::from(Descriptor::new(addr, len, flags, next)),
            )
            .unwrap();
    }
    // Sometimes a valid request header to get past parsing.
    if rng.below(2) == 0 {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&(rng.below(10) as u32).to_le_bytes());
        h[8..].copy_from_slice(&rng.below(80).to_le_bytes());
        mem.write_slice(&h, GuestAddress(HDR)).unwrap();
    }
    let avail = driver.vq.avail();
    for i in 0..16 {
        let head = if rng.below(8) == 0 {
            rng.next() as u16
        } else {
            rng.below(16) as u16
        };
        avail.ring().ref_at(i).unwrap().store(head);
    }
    let bump = if rng.below(16) == 0 {
        rng.next() as u16
    } else {
        rng.below(17) as u16
    };
    avail.idx().store(next_avail.wrapping_add(bump));
    if rng.below(4) == 0 {
        // used_event (just after the used ring) and the avail flags.
        let used_event = driver.vq.used_addr().unchecked_add(4 + 8 * 16);
        mem.write_obj(rng.next() as u16, used_event).unwrap();
        mem.write_obj(rng.next() as u16, driver.vq.avail_addr())
            .unwrap();
    }
}

/// The integrator's path: a block device behind the MMIO transport,
/// driven through registers only.
#[test]
fn block_behind_the_mmio_transport() {
    use crate::MmioTransport;
    let f = image(&patterned(8));
    let mem = memory();
    let driver = Driver::new(&mem, 0, 16);
    let (irq, fired) = counting_interrupt();
    let mut t = MmioTransport::new(Box::new(device(f.path(), true)), mem.clone(), irq);
    let w = |t: &mut MmioTransport, off: u64, v: u32| t.write(off, &v.to_le_bytes());
    let r = |t: &mut MmioTransport, off: u64| {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    };
    assert_eq!(r(&mut t, 0x8), 2, "block device id");
    w(&mut t, 0x70, 1);
    w(&mut t, 0x70, 3);
    w(&mut t, 0x14, 0);
    let offered = r(&mut t, 0x10);
    assert_ne!(offered & (1 << 5), 0, "VIRTIO_BLK_F_RO");
    w(&mut t, 0x24, 0);
    w(&mut t, 0x20, offered);
    w(&mut t, 0x24, 1);
    w(&mut t, 0x20, 1);
    w(&mut t, 0x70, 11);
    assert_eq!(r(&mut t, 0x70), 11);
    let mut cap = [0u8; 8];
    t.read(0x100, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 8);
    w(&mut t, 0x30, 0);
    assert_eq!(r(&mut t, 0x34), u32::from(QUEUE_SIZE));
    w(&mut t, 0x38, 16);
    w(&mut t, 0x80, driver.vq.desc_table_addr().0 as u32);
    w(&mut t, 0x90, driver.vq.avail_addr().0 as u32);
    w(&mut t, 0xa0, driver.vq.used_addr().0 as u32);
    w(&mut t, 0x44, 1);
    w(&mut t, 0x70, 15);
    assert!(t.is_active());
    let mut driver = driver;
    let mut h = [0u8; 16];
    h[8..].copy_from_slice(&5u64.to_le_bytes());
    mem.write_slice(&h, GuestAddress(HDR)).unwrap();
    driver.add(&[
        Buf(HDR, 16, false),
        Buf(DATA, 512, true),
        Buf(STATUS, 1, true),
    ]);
    w(&mut t, 0x50, 0);
    assert_eq!(driver.used_idx(), 1);
    assert_eq!(driver.used(0).1, 513);
    assert_eq!(
        read_bytes(&mem, DATA, 512),
        patterned(6)[5 * 512..].to_vec()
    );
    assert!(fired.load(Ordering::SeqCst) > 0);
    assert_eq!(r(&mut t, 0x60) & 1, 1, "used-buffer interrupt pending");
    w(&mut t, 0x64, 1);
    assert_eq!(r(&mut t, 0x60), 0);
}

#[test]
fn devices_and_transport_can_move_to_other_threads() {
    fn is_send<T: Send>() {}
    is_send::<crate::MmioTransport>();
    is_send::<Block>();
    is_send::<crate::Vsock>();
}

fn device_with(path: &std::path::Path, options: BlockOptions) -> Block {
    Block::open(&BlockConfig {
        path: path.into(),
        read_only: false,
        id: "0:0".into(),
        options,
    })
    .unwrap()
}

#[test]
fn ignore_flushes_completes_flushes_without_syncing() {
    let f = image(&patterned(4));
    let mem = memory();
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    assert_eq!(
        rig.request(VIRTIO_BLK_T_FLUSH, 0, 0, false).1,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(rig.blk.disk().syncs(), 1, "a flush syncs by default");
    let blk = device_with(
        f.path(),
        BlockOptions {
            ignore_flushes: true,
            ..Default::default()
        },
    );
    let mut rig = Rig::new(&mem, blk, 16);
    assert_ne!(
        rig.blk.features() & VIRTIO_BLK_F_FLUSH,
        0,
        "the guest still flushes"
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_FLUSH, 0, 0, false).1,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(rig.blk.disk().syncs(), 0);
}

/// Pages of `path`'s first `len` bytes that are in the host's page cache.
fn cached_pages(path: &std::path::Path, len: usize) -> usize {
    let file = std::fs::File::open(path).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared read-only mapping of `len` bytes of our file;
    // only mincore looks at it, and it is unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: `addr` maps `len` bytes; `vec` has one byte per page.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: unmapping exactly what was mapped above.
    unsafe { libc::munmap(addr, len) };
    vec.iter().filter(|b| *b & 1 != 0).count()
}

#[test]
fn caching_modes_choose_write_through_and_page_cache_use() {
    let f = image(&patterned(64));
    let wb = device(f.path(), false);
    assert_eq!(wb.disk().status_flags() & libc::O_DSYNC, 0);
    assert_ne!(wb.features() & VIRTIO_BLK_F_FLUSH, 0);
    for cache in [CacheMode::WriteThrough, CacheMode::Uncached] {
        let b = device_with(
            f.path(),
            BlockOptions {
                cache,
                ..Default::default()
            },
        );
        assert_eq!(
            b.disk().status_flags() & libc::O_DSYNC,
            libc::O_DSYNC,
            "{cache:?} writes through"
        );
        assert_eq!(
            b.features() & VIRTIO_BLK_F_FLUSH,
            0,
            "{cache:?}: no volatile cache"
        );
    }
    if crate::testing::on_tmpfs(f.path()) {
        crate::testing::skip(
            "hcs-virtio block::tests::caching_modes_choose_write_through_and_page_cache_use (page-cache half)",
            "the temporary directory is tmpfs, whose pages are the files: there is no cache to leave",
        );
        return;
    }
    // Uncached: what the guest read and wrote is not left in the page cache.
    let mem = memory();
    let len = 64 * 512;
    // Start with none of the image cached (dirty pages cannot be dropped).
    f.as_file().sync_all().unwrap();
    {
        use std::os::fd::AsRawFd;
        // SAFETY: advice about our own open file; no memory is passed.
        let rc = unsafe {
            libc::posix_fadvise(f.as_file().as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
        };
        assert_eq!(rc, 0);
    }
    assert_eq!(cached_pages(f.path(), len), 0);
    let mut rig = Rig::new(
        &mem,
        device_with(
            f.path(),
            BlockOptions {
                cache: CacheMode::Uncached,
                ..Default::default()
            },
        ),
        16,
    );
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 0, 8192, true).1,
        VIRTIO_BLK_S_OK
    );
    mem.write_slice(&[0x77; 8192], GuestAddress(DATA)).unwrap();
    assert_eq!(
        rig.request(VIRTIO_BLK_T_OUT, 16, 8192, false).1,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(
        cached_pages(f.path(), len),
        0,
        "uncached transfers leave no pages"
    );
    // The same with the page cache: the pages stay.
    let mut rig = Rig::new(&mem, device(f.path(), false), 16);
    assert_eq!(
        rig.request(VIRTIO_BLK_T_IN, 0, 8192, true).1,
        VIRTIO_BLK_S_OK
    );
    assert!(
        cached_pages(f.path(), len) >= 2,
        "cached reads stay in the page cache"
    );
    assert_eq!(
        &std::fs::read(f.path()).unwrap()[16 * 512..32 * 512],
        &[0x77; 8192][..]
    );
}

#[test]
fn interrupt_batching_can_be_disabled() {
    let f = image(&patterned(4));
    let mem = memory();
    for (per_request, want) in [(false, 1), (true, 3)] {
        let blk = device_with(
            f.path(),
            BlockOptions {
                interrupt_per_request: per_request,
                ..Default::default()
            },
        );
        let mut rig = Rig::new(&mem, blk, 16);
        rig.header(VIRTIO_BLK_T_GET_ID, 0);
        // Three requests served in one notification.
        for _ in 0..3 {
            rig.driver.add(&[
                Buf(HDR, 16, false),
                Buf(DATA, 20, true),
                Buf(STATUS, 1, true),
            ]);
        }
        let before = rig.irqs.load(Ordering::SeqCst);
        rig.blk.queue_notify(0);
        assert_eq!(
            rig.irqs.load(Ordering::SeqCst) - before,
            want,
            "interrupt_per_request = {per_request}"
        );
    }
}

/// Queue `n` reads of `len` bytes each (sharing buffers) without notifying.
fn queue_reads(rig: &mut Rig<'_>, n: usize, len: u32) {
    rig.header(VIRTIO_BLK_T_IN, 0);
    for _ in 0..n {
        rig.driver.add(&[
            Buf(HDR, 16, false),
            Buf(DATA, len, true),
            Buf(STATUS, 1, true),
        ]);
    }
}

fn limited(path: &std::path::Path, limiter: Option<Arc<IoLimiter>>) -> Block {
    device_with(
        path,
        BlockOptions {
            limiter,
            ..Default::default()
        },
    )
}

#[test]
fn a_bandwidth_limit_holds_requests_back_until_the_bytes_are_due() {
    let f = image(&patterned(256));
    let mem = memory();
    // Unlimited: all four at once.
    let mut rig = Rig::new(&mem, limited(f.path(), None), 16);
    queue_reads(&mut rig, 4, 32 << 10);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 4);
    // 64 KiB/s, on a clock that moves only when told.
    let (clock, now) = limiter::tests::fake_clock();
    let limiter = IoLimiter::with_clock(
        IoLimits {
            iops: None,
            bandwidth: Some(64 << 10),
        },
        clock,
    );
    let mut rig = Rig::new(&mem, limited(f.path(), limiter), 16);
    queue_reads(&mut rig, 4, 32 << 10);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 2, "a second's worth at once");
    rig.blk.queue_notify(0);
    assert_eq!(
        rig.driver.used_idx(),
        2,
        "nothing more until the bytes are due"
    );
    now.fetch_add(499_000_000, std::sync::atomic::Ordering::SeqCst);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 2);
    now.fetch_add(1_000_000, std::sync::atomic::Ordering::SeqCst);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 3);
    now.fetch_add(500_000_000, std::sync::atomic::Ordering::SeqCst);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 4);
    assert_eq!(read_bytes(&mem, DATA, 512), patterned(1));
}

#[test]
fn an_iops_limit_counts_requests() {
    let f = image(&patterned(8));
    let mem = memory();
    let (clock, now) = limiter::tests::fake_clock();
    let limiter = IoLimiter::with_clock(
        IoLimits {
            iops: Some(3),
            bandwidth: None,
        },
        clock,
    );
    let mut rig = Rig::new(&mem, limited(f.path(), limiter), 16);
    queue_reads(&mut rig, 5, 512);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 3);
    now.fetch_add(333_333_334, std::sync::atomic::Ordering::SeqCst);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 4);
}

#[test]
fn held_back_requests_are_served_when_due_without_another_notification() {
    let f = image(&patterned(1024));
    let mem = memory();
    let limiter = IoLimiter::new(IoLimits {
        iops: None,
        bandwidth: Some(256 << 10),
    });
    let mut rig = Rig::new(&mem, limited(f.path(), limiter), 16);
    queue_reads(&mut rig, 2, 256 << 10);
    let start = std::time::Instant::now();
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 1);
    let irqs = rig.irqs.load(Ordering::SeqCst);
    let deadline = start + std::time::Duration::from_secs(10);
    while rig.driver.used_idx() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the held request was never served"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // 256 KiB more at 256 KiB/s cannot be due before a second has passed.
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(999),
        "{:?}",
        start.elapsed()
    );
    assert!(
        rig.irqs.load(Ordering::SeqCst) > irqs,
        "the guest was interrupted"
    );
}

#[test]
fn a_paused_disk_serves_nothing_until_resumed() {
    let f = image(&patterned(256));
    let mem = memory();
    let (clock, now) = limiter::tests::fake_clock();
    let limiter = IoLimiter::with_clock(
        IoLimits {
            iops: None,
            bandwidth: Some(64 << 10),
        },
        clock,
    );
    let mut rig = Rig::new(&mem, limited(f.path(), limiter), 16);
    queue_reads(&mut rig, 3, 32 << 10);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 2);
    rig.blk.pause();
    now.fetch_add(1_000_000_000, std::sync::atomic::Ordering::SeqCst);
    rig.blk.queue_notify(0);
    assert_eq!(rig.driver.used_idx(), 2, "paused (a save is being written)");
    rig.blk.resume();
    assert_eq!(rig.driver.used_idx(), 3, "resume serves what is due");
}
