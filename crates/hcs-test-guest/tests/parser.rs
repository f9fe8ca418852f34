//! Host tests of the guest's zero-page/ACPI parser and DSDT scanner: the
//! guest's own source files, compiled for the host (with bounds checks, so a
//! would-be panic in the guest fails here).

#![allow(dead_code)]

#[path = "../../../guest/test-guest/src/acpi.rs"]
mod acpi;
#[path = "../../../guest/test-guest/src/aml.rs"]
mod aml;
#[path = "../../../guest/test-guest/src/bytes.rs"]
mod bytes;
#[path = "../../../guest/test-guest/src/info.rs"]
mod info;

use info::{Info, What, GAS_IO};

// --- an AML encoder with the encodings of the acpi_tables crate -------------

fn pkg(body: &[u8]) -> Vec<u8> {
    let len = body.len();
    let n = if len < 63 {
        1
    } else if len < (1 << 12) - 2 {
        2
    } else {
        3
    };
    let total = len + n;
    let mut v = match n {
        1 => vec![total as u8],
        2 => vec![(1 << 6) | (total & 0xf) as u8, (total >> 4) as u8],
        _ => vec![
            (2 << 6) | (total & 0xf) as u8,
            (total >> 4) as u8,
            (total >> 12) as u8,
        ],
    };
    v.extend_from_slice(body);
    v
}

fn path(p: &str) -> Vec<u8> {
    let (root, p) = match p.strip_prefix('\\') {
        Some(r) => (true, r),
        None => (false, p),
    };
    let segs: Vec<&str> = p.split('.').collect();
    let mut v = Vec::new();
    if root {
        v.push(b'\\');
    }
    match segs.len() {
        1 => {}
        2 => v.push(0x2e),
        n => v.extend_from_slice(&[0x2f, n as u8]),
    }
    for s in segs {
        assert_eq!(s.len(), 4);
        v.extend_from_slice(s.as_bytes());
    }
    v
}

fn int(x: u64) -> Vec<u8> {
    match x {
        0 => vec![0],
        1 => vec![1],
        2..=0xff => vec![0x0a, x as u8],
        0x100..=0xffff => [vec![0x0b], (x as u16).to_le_bytes().to_vec()].concat(),
        0x1_0000..=0xffff_ffff => [vec![0x0c], (x as u32).to_le_bytes().to_vec()].concat(),
        _ => [vec![0x0e], x.to_le_bytes().to_vec()].concat(),
    }
}

fn string(s: &str) -> Vec<u8> {
    [vec![0x0d], s.as_bytes().to_vec(), vec![0]].concat()
}

fn eisaid(id: &str) -> Vec<u8> {
    let d = id.as_bytes();
    let h = |c: u8| (c as char).to_digit(16).unwrap();
    let v: u32 = ((((d[0] - 0x40) as u32) << 26)
        | (((d[1] - 0x40) as u32) << 21)
        | (((d[2] - 0x40) as u32) << 16)
        | (h(d[3]) << 12)
        | (h(d[4]) << 8)
        | (h(d[5]) << 4)
        | h(d[6]))
    .swap_bytes();
    int(v as u64)
}

fn name(n: &str, data: Vec<u8>) -> Vec<u8> {
    [vec![0x08], path(n), data].concat()
}

fn device(p: &str, children: &[Vec<u8>]) -> Vec<u8> {
    let body = [path(p), children.concat()].concat();
    [vec![0x5b, 0x82], pkg(&body)].concat()
}

fn scope(p: &str, children: &[Vec<u8>]) -> Vec<u8> {
    let body = [path(p), children.concat()].concat();
    [vec![0x10], pkg(&body)].concat()
}

fn method(p: &str, args: u8, children: &[Vec<u8>]) -> Vec<u8> {
    let body = [path(p), vec![args], children.concat()].concat();
    [vec![0x14], pkg(&body)].concat()
}

fn package(elems: &[Vec<u8>]) -> Vec<u8> {
    let body = [vec![elems.len() as u8], elems.concat()].concat();
    [vec![0x12], pkg(&body)].concat()
}

fn resource_template(descs: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = descs.concat();
    bytes.extend_from_slice(&[0x79, 0]);
    let size = int(bytes.len() as u64);
    [vec![0x11], pkg(&[size, bytes].concat())].concat()
}

fn io(min: u16, len: u8) -> Vec<u8> {
    [
        vec![0x47, 1],
        min.to_le_bytes().to_vec(),
        min.to_le_bytes().to_vec(),
        vec![1, len],
    ]
    .concat()
}

fn irq_noflags(irq: u8) -> Vec<u8> {
    [vec![0x22], (1u16 << irq).to_le_bytes().to_vec()].concat()
}

fn mem32fixed(base: u32, len: u32) -> Vec<u8> {
    [
        vec![0x86, 9, 0, 1],
        base.to_le_bytes().to_vec(),
        len.to_le_bytes().to_vec(),
    ]
    .concat()
}

fn ext_irq(edge: bool, low: bool, gsi: u32) -> Vec<u8> {
    let flags = ((low as u8) << 2) | ((edge as u8) << 1) | 1;
    [vec![0x89, 6, 0, flags, 1], gsi.to_le_bytes().to_vec()].concat()
}

fn op_region(n: &str, space: u8, base: u64, len: u64) -> Vec<u8> {
    [vec![0x5b, 0x80], path(n), vec![space], int(base), int(len)].concat()
}

fn field(region: &str, fields: &[(&str, u8)]) -> Vec<u8> {
    let mut body = [path(region), vec![0x01]].concat();
    for (n, bits) in fields {
        body.extend_from_slice(n.as_bytes());
        body.push(*bits);
    }
    [vec![0x5b, 0x81], pkg(&body)].concat()
}

/// A DSDT body like the one our VMM is expected to produce.
fn our_dsdt() -> Vec<u8> {
    let com = |i: usize, port: u16, irq: u32| {
        device(
            &format!("_SB_.COM{}", i + 1),
            &[
                name("_HID", eisaid("PNP0501")),
                name("_UID", int(i as u64)),
                name("_DDN", string(&format!("COM{}", i + 1))),
                name(
                    "_CRS",
                    resource_template(&[ext_irq(true, false, irq), io(port, 8)]),
                ),
            ],
        )
    };
    let virtio = |i: u32| {
        device(
            &format!("_SB_.V{i:03}"),
            &[
                name("_HID", string("LNRO0005")),
                name("_UID", int(i as u64)),
                name("_CCA", int(1)),
                name(
                    "_CRS",
                    resource_template(&[
                        mem32fixed(0xd000_0000 + 0x1000 * i, 0x1000),
                        ext_irq(true, false, 16 + i),
                    ]),
                ),
            ],
        )
    };
    [
        com(0, 0x3f8, 4),
        com(1, 0x2f8, 3),
        device(
            "_SB_.PS2_",
            &[
                name("_HID", eisaid("PNP0303")),
                name("_STA", int(0xf)),
                name(
                    "_CRS",
                    resource_template(&[io(0x60, 1), io(0x64, 1), ext_irq(true, false, 1)]),
                ),
            ],
        ),
        device(
            "_SB_.PVPN",
            &[
                name("_HID", string("QEMU0001")),
                name("_CRS", resource_template(&[io(0x505, 1)])),
            ],
        ),
        device(
            "_SB_.PWRB",
            &[name("_HID", eisaid("PNP0C0C")), name("_UID", int(0))],
        ),
        device(
            "_SB_.GED_",
            &[
                name("_HID", string("ACPI0013")),
                name("_UID", int(0)),
                name(
                    "_CRS",
                    resource_template(&[mem32fixed(0xfeb0_0000, 0x10), ext_irq(false, false, 9)]),
                ),
                op_region("GDST", 0, 0xfeb0_0000, 1),
                field("GDST", &[("GDAT", 8)]),
                method(
                    "_EVT",
                    1,
                    &[vec![0xa0, 0x08, 0x93, 0x68, 0x01, 0x86, 0x5c, 0x2f]], // arbitrary If/Notify bytes
                ),
            ],
        ),
        virtio(0),
        virtio(1),
        virtio(2),
        name("_S5_", package(&[int(5)])),
    ]
    .concat()
}

/// The DSDT body as QEMU microvm (7.2) shapes it: `Scope(\_SB)`, IRQNoFlags,
/// a GED with an OperationRegion and no Memory32Fixed, `_CRS` by value.
fn qemu_like_dsdt() -> Vec<u8> {
    scope(
        "\\_SB_",
        &[
            device(
                "COM1",
                &[
                    name("_HID", eisaid("PNP0501")),
                    name("_UID", int(1)),
                    name("_STA", int(0xf)),
                    name("_CRS", resource_template(&[io(0x3f8, 8), irq_noflags(4)])),
                ],
            ),
            device(
                "GED_",
                &[
                    name("_HID", string("ACPI0013")),
                    name("_UID", string("GED")),
                    name("_CRS", resource_template(&[ext_irq(true, false, 9)])),
                    op_region("EREG", 0, 0xfea0_0000, 4),
                    field("EREG", &[("ESEL", 32)]),
                    method("_EVT", 1, &[vec![0x70, 0x45, 0x53, 0x45, 0x4c, 0x60]]),
                ],
            ),
            device(
                "VR00",
                &[
                    name("_HID", string("LNRO0005")),
                    method(
                        "_CRS",
                        0,
                        &[[
                            vec![0xa4],
                            resource_template(&[
                                mem32fixed(0xfeb0_2e00, 0x200),
                                ext_irq(true, false, 47),
                            ]),
                        ]
                        .concat()],
                    ),
                ],
            ),
        ],
    )
    .into_iter()
    .chain(name("\\_S5_", package(&[int(5), int(0)])))
    .collect()
}

// --- ACPI tables in a fake guest RAM -------------------------------------------

struct Ram(Vec<u8>);

impl acpi::Phys for Ram {
    fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let a = usize::try_from(addr).ok()?;
        if a == 0 {
            return None;
        }
        self.0.get(a..a.checked_add(len)?)
    }
}

impl Ram {
    fn put(&mut self, at: usize, b: &[u8]) {
        self.0[at..at + b.len()].copy_from_slice(b);
    }
}

fn fix_checksum(t: &mut [u8], at: usize) {
    t[at] = 0;
    let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    t[at] = 0u8.wrapping_sub(sum);
}

fn sdt(sig: &[u8; 4], rev: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(sig);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(rev);
    t.push(0);
    t.extend_from_slice(b"HCSVMM");
    t.extend_from_slice(b"HCSTABLE");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"HCS ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    fix_checksum(&mut t, 9);
    t
}

fn gas(space: u8, addr: u64) -> Vec<u8> {
    [vec![space, 8, 0, 1], addr.to_le_bytes().to_vec()].concat()
}

fn fadt(dsdt: u64) -> Vec<u8> {
    let mut b = vec![0u8; 276 - 36];
    let at = |o: usize| o - 36;
    b[at(40)..at(44)].copy_from_slice(&(dsdt as u32).to_le_bytes());
    b[at(112)..at(116)].copy_from_slice(&(1u32 << 20 | 1 << 10).to_le_bytes());
    b[at(116)..at(128)].copy_from_slice(&gas(GAS_IO, 0x602));
    b[at(128)] = 1;
    b[at(131)] = 5;
    b[at(140)..at(148)].copy_from_slice(&dsdt.to_le_bytes());
    b[at(244)..at(256)].copy_from_slice(&gas(GAS_IO, 0x600));
    b[at(256)..at(268)].copy_from_slice(&gas(GAS_IO, 0x601));
    sdt(b"FACP", 6, &b)
}

fn madt(cpus: &[(u8, bool)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for (id, enabled) in cpus {
        b.extend_from_slice(&[0, 8, *id, *id]);
        b.extend_from_slice(&(*enabled as u32).to_le_bytes());
    }
    b.extend_from_slice(&[1, 12, 0, 0]);
    b.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    // ISA IRQ 0 → GSI 2, and IRQ 4 → GSI 4 level/active-low (for the test).
    b.extend_from_slice(&[2, 10, 0, 0]);
    b.extend_from_slice(&2u32.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&[2, 10, 0, 4]);
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&0xfu16.to_le_bytes());
    sdt(b"APIC", 6, &b)
}

fn rsdp(xsdt: u64) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(b"HCSVMM");
    r.push(2);
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    fix_checksum(&mut r[..20], 8);
    fix_checksum(&mut r, 32);
    r
}

struct Layout {
    rsdp: usize,
    xsdt: usize,
    fadt: usize,
    madt: usize,
    dsdt: usize,
}

const LAYOUT: Layout = Layout {
    rsdp: 0xe0000,
    xsdt: 0xe0040,
    fadt: 0xe0100,
    madt: 0xe0300,
    dsdt: 0xe0400,
};

/// RAM with a zero page at 0x7000, the command line at 0x20000 and the
/// tables where layout.rs puts them (RSDP at 0xe0000, the rest after it).
fn machine(dsdt_body: &[u8], rsdp_in_zero_page: bool) -> Ram {
    let mut ram = Ram(vec![0u8; 0x20_0000]);
    let l = LAYOUT;
    ram.put(0x20000, b"console=ttyS0 reboot=k panic=1 hcs.test=1\0");
    ram.put(0x7000 + 0x228, &0x20000u32.to_le_bytes());
    if rsdp_in_zero_page {
        ram.put(0x7000 + 0x70, &(l.rsdp as u64).to_le_bytes());
    }
    ram.put(l.rsdp, &rsdp(l.xsdt as u64));
    let xsdt = sdt(
        b"XSDT",
        1,
        &[(l.fadt as u64).to_le_bytes(), (l.madt as u64).to_le_bytes()].concat(),
    );
    ram.put(l.xsdt, &xsdt);
    ram.put(l.fadt, &fadt(l.dsdt as u64));
    ram.put(l.madt, &madt(&[(0, true), (1, true), (2, false)]));
    ram.put(l.dsdt, &sdt(b"DSDT", 2, dsdt_body));
    ram
}

fn parse(ram: &Ram) -> Box<Info> {
    let mut info = Box::new(Info::new());
    acpi::parse(ram, 0x7000, &mut info);
    info
}

fn problems(info: &Info) -> Vec<(String, What)> {
    info.problems[..info.problem_count]
        .iter()
        .map(|p| (String::from_utf8_lossy(&p.sig).into_owned(), p.what))
        .collect()
}

fn hids(info: &Info) -> Vec<String> {
    info.devices()
        .iter()
        .map(|d| String::from_utf8_lossy(d.hid()).into_owned())
        .collect()
}

#[test]
fn parses_the_tables_our_vmm_will_provide() {
    let info = parse(&machine(&our_dsdt(), true));
    assert_eq!(problems(&info), vec![]);
    assert_eq!(info.cmdline(), b"console=ttyS0 reboot=k panic=1 hcs.test=1");
    assert_eq!(info.rsdp, 0xe0000);
    assert!(!info.rsdp_scanned);
    assert_eq!(info.cpus, 2);
    assert_eq!(info.lapic, 0xfee0_0000);
    assert_eq!(info.ioapic, Some(0xfec0_0000));
    assert_eq!(info.isa_to_gsi(0), (2, 0));
    assert_eq!(info.isa_to_gsi(4), (4, 0xf));
    assert_eq!(info.isa_to_gsi(3), (3, 0));
    assert!(info.hw_reduced);
    let s = info.sleep_ctl.unwrap();
    assert_eq!((s.space, s.addr), (GAS_IO, 0x600));
    let r = info.reset_reg.unwrap();
    assert_eq!((r.space, r.addr, info.reset_value), (GAS_IO, 0x602, 1));
    assert_eq!(info.s5, Some(5));

    assert_eq!(
        hids(&info),
        [
            "PNP0501", "PNP0501", "PNP0303", "QEMU0001", "PNP0C0C", "ACPI0013", "LNRO0005",
            "LNRO0005", "LNRO0005"
        ]
    );
    let com1 = &info.devices()[0];
    assert_eq!(
        (com1.io, com1.io_len, com1.irq, com1.irq_isa),
        (Some(0x3f8), 8, Some(4), false)
    );
    assert_eq!(&com1.name, b"COM1");
    let com2 = &info.devices()[1];
    assert_eq!((com2.io, com2.irq), (Some(0x2f8), Some(3)));
    let ps2 = info.find(b"PNP0303").unwrap();
    assert_eq!((ps2.io, ps2.irq), (Some(0x60), Some(1)));
    assert_eq!(info.find(b"QEMU0001").unwrap().io, Some(0x505));
    let ged = info.find(b"ACPI0013").unwrap();
    assert_eq!(
        (ged.mem, ged.mem_len, ged.irq, ged.region),
        (Some(0xfeb0_0000), 0x10, Some(9), Some(0xfeb0_0000))
    );
    assert_eq!(ged.irq_flags & 2, 0, "level-triggered");
    let v: Vec<_> = info
        .devices()
        .iter()
        .filter(|d| d.is(b"LNRO0005"))
        .map(|d| (d.mem, d.irq))
        .collect();
    assert_eq!(
        v,
        [
            (Some(0xd000_0000), Some(16)),
            (Some(0xd000_1000), Some(17)),
            (Some(0xd000_2000), Some(18))
        ]
    );
    assert_eq!(info.count(b"LNRO0005"), 3);
}

#[test]
fn parses_qemu_microvm_shaped_tables() {
    let info = parse(&machine(&qemu_like_dsdt(), true));
    assert_eq!(problems(&info), vec![]);
    assert_eq!(hids(&info), ["PNP0501", "ACPI0013", "LNRO0005"]);
    let com = &info.devices()[0];
    assert_eq!(
        (com.io, com.irq, com.irq_isa, com.irq_flags),
        (Some(0x3f8), Some(4), true, 2)
    );
    let ged = &info.devices()[1];
    assert_eq!(
        (ged.mem, ged.region, ged.irq),
        (None, Some(0xfea0_0000), Some(9))
    );
    let v = &info.devices()[2];
    assert_eq!(
        (v.mem, v.irq),
        (Some(0xfeb0_2e00), Some(47)),
        "_CRS as a method"
    );
    assert_eq!(info.s5, Some(5));
}

#[test]
fn finds_the_rsdp_by_scanning() {
    let info = parse(&machine(&our_dsdt(), false));
    assert_eq!(problems(&info), vec![]);
    assert!(info.rsdp_scanned);
    assert_eq!(info.rsdp, 0xe0000);
}

#[test]
fn reports_and_skips_bad_tables() {
    let l = LAYOUT;
    // DSDT checksum.
    let mut ram = machine(&our_dsdt(), true);
    ram.0[l.dsdt + 40] ^= 0xff;
    let info = parse(&ram);
    assert_eq!(problems(&info), vec![("DSDT".into(), What::BadChecksum)]);
    assert_eq!(info.dev_count, 0);
    assert_eq!(info.cpus, 2, "the MADT is still used");

    // MADT length beyond the end of RAM.
    let mut ram = machine(&our_dsdt(), true);
    ram.put(l.madt + 4, &0x0100_0000u32.to_le_bytes());
    let info = parse(&ram);
    assert_eq!(
        problems(&info),
        vec![
            ("APIC".into(), What::BadLength),
            ("APIC".into(), What::NotFound)
        ]
    );
    assert_eq!(info.cpus, 0);
    assert_eq!(info.count(b"PNP0501"), 2, "the DSDT is still used");

    // A MADT entry with length 0 stops the walk but keeps what came before.
    let mut ram = machine(&our_dsdt(), true);
    let mut m = madt(&[(0, true), (1, true)]);
    m[44 + 8 + 1] = 0;
    fix_checksum(&mut m, 9);
    ram.put(l.madt, &m);
    let info = parse(&ram);
    assert_eq!(problems(&info), vec![("APIC".into(), What::BadLength)]);
    assert_eq!(info.cpus, 1);

    // Bad RSDP in the zero page: reported, then found by scanning.
    let mut ram = machine(&our_dsdt(), true);
    ram.put(0x7000 + 0x70, &0x1234u64.to_le_bytes());
    let info = parse(&ram);
    assert_eq!(problems(&info), vec![("RSDP".into(), What::BadSignature)]);
    assert!(info.rsdp_scanned);

    // RSDP pointing outside RAM and no RSDP to scan for.
    let mut ram = machine(&our_dsdt(), true);
    ram.put(0x7000 + 0x70, &0x4000_0000u64.to_le_bytes());
    ram.put(l.rsdp, b"XXXXXXXX");
    let info = parse(&ram);
    assert_eq!(
        problems(&info),
        vec![
            ("RSDP".into(), What::OutOfReach),
            ("RSDP".into(), What::NotFound)
        ]
    );
    assert_eq!(
        info.cmdline(),
        b"console=ttyS0 reboot=k panic=1 hcs.test=1",
        "cmdline still read"
    );

    // FADT pointing at a DSDT with the wrong signature.
    let mut ram = machine(&our_dsdt(), true);
    ram.put(l.dsdt, b"SSDT");
    let info = parse(&ram);
    assert_eq!(problems(&info), vec![("DSDT".into(), What::BadSignature)]);

    // Zero page out of reach.
    let ram = Ram(vec![0; 0x1000]);
    let mut info = Box::new(Info::new());
    acpi::parse(&ram, 0x7000, &mut info);
    assert_eq!(problems(&info), vec![("BOOT".into(), What::OutOfReach)]);
}

#[test]
fn too_many_devices_are_counted_not_overflowed() {
    let devs: Vec<Vec<u8>> = (0..60)
        .map(|i| device(&format!("D{i:03}"), &[name("_HID", string("LNRO0005"))]))
        .collect();
    let info = parse(&machine(&scope("_SB_", &devs), true));
    assert_eq!(info.devices().len(), info::MAX_DEVICES);
    assert_eq!(problems(&info), vec![("DSDT".into(), What::TooManyDevices)]);
}

#[test]
fn decodes_building_blocks() {
    let mut hid = [0u8; info::HID_MAX];
    for id in ["PNP0501", "PNP0C0C", "PNP0303", "ACP0A0B"] {
        let n = aml::eisaid(
            u32::from_le_bytes(eisaid(id)[1..5].try_into().unwrap()),
            &mut hid,
        );
        assert_eq!(&hid[..n as usize], id.as_bytes());
    }
    for len in [0usize, 10, 61, 62, 63, 100, 4000, 5000] {
        let body = vec![0xaa; len];
        let enc = pkg(&body);
        let (v, n) = aml::pkg_length(&enc, 0).unwrap();
        assert_eq!(v, enc.len(), "PkgLength counts itself and the body ({len})");
        assert_eq!(n, enc.len() - len);
    }
    assert_eq!(aml::name_string(b"\\_SB_", 0), Some((*b"_SB_", 5)));
    assert_eq!(aml::name_string(b"\x2e_SB_COM1", 0), Some((*b"COM1", 9)));
    assert_eq!(
        aml::name_string(b"\x2f\x03_SB_PCI0S08_", 0),
        Some((*b"S08_", 14))
    );
    assert_eq!(aml::name_string(b"^^FOO_", 0), Some((*b"FOO_", 6)));
    assert_eq!(aml::name_string(b"1BAD", 0), None);
    assert_eq!(aml::name_string(b"_SB", 0), None);
    assert_eq!(aml::integer(&[0x0c, 1, 2, 3, 4], 0), Some((0x0403_0201, 5)));
    assert_eq!(aml::integer(&[0x0c, 1, 2, 3], 0), None);
}

/// Tiny deterministic PRNG (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn never_panics_on_garbage() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let good = [our_dsdt(), qemu_like_dsdt()];
    for round in 0..3000 {
        let mut aml_bytes = good[round % 2].clone();
        match round % 3 {
            // Flip some bytes.
            0 => {
                for _ in 0..1 + rng.next() % 8 {
                    let i = (rng.next() as usize) % aml_bytes.len();
                    aml_bytes[i] = rng.next() as u8;
                }
            }
            // Truncate.
            1 => aml_bytes.truncate((rng.next() as usize) % aml_bytes.len()),
            // Pure noise, biased towards interesting opcodes.
            _ => {
                let ops = [
                    0x5b, 0x82, 0x80, 0x81, 0x08, 0x14, 0x11, 0x12, 0x10, 0x0d, 0x0c, 0xff, 0x2f,
                    0x2e, 0x5c,
                ];
                aml_bytes = (0..(rng.next() % 600) as usize)
                    .map(|_| {
                        if rng.next().is_multiple_of(2) {
                            ops[(rng.next() % ops.len() as u64) as usize]
                        } else {
                            rng.next() as u8
                        }
                    })
                    .collect();
            }
        }
        let mut info = Box::new(Info::new());
        aml::scan(&aml_bytes, &mut info);
        assert!(info.dev_count <= info::MAX_DEVICES + 1);
        // And resource templates directly.
        let mut d = info::Device::EMPTY;
        aml::resources(&aml_bytes, &mut d);
    }
    // Whole tables with random bytes flipped (checksums fixed up, so the parser sees them).
    for _ in 0..300 {
        let mut ram = machine(&our_dsdt(), true);
        let l = LAYOUT;
        let (start, len) =
            [(l.xsdt, 52), (l.fadt, 276), (l.madt, 80), (l.dsdt, 400)][(rng.next() % 4) as usize];
        for _ in 0..1 + rng.next() % 4 {
            let i = start + (rng.next() as usize) % len;
            ram.0[i] = rng.next() as u8;
        }
        for t in [l.xsdt, l.fadt, l.madt, l.dsdt] {
            let n = u32::from_le_bytes(ram.0[t + 4..t + 8].try_into().unwrap()) as usize;
            if (36..0x1000).contains(&n) {
                fix_checksum(&mut ram.0[t..t + n], 9);
            }
        }
        let _ = parse(&ram);
    }
}
