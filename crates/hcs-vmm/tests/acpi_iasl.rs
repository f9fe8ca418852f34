//! Checks the ACPI tables with ACPICA itself: each table, found by following
//! the pointers from the RSDP as a guest would, is decompiled with `iasl -d`,
//! the disassembly is checked and compiled again, and the GED's `_EVT` is
//! run in `acpiexec`.
//!
//! Needs Debian's `acpica-tools` (`iasl`, `acpiexec`); without them the tests
//! fail rather than skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use hcs_vmm::acpi::{build_tables, AcpiConfig, RSDP_ADDR};
use hcs_vmm::layout;

/// Path of an acpica-tools program, or a failure saying how to get it.
fn acpica_tool(name: &str) -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found: install acpica-tools (apt-get install acpica-tools) \
                 to run the ACPI table tests"
            )
        })
}

/// Runs an acpica tool in `dir`; fails on a non-zero exit status or on any
/// error or warning in its output. Returns stdout and stderr.
fn run(dir: &Path, tool: &str, args: &[&str]) -> String {
    let output = Command::new(acpica_tool(tool))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{tool} {args:?} failed ({}):\n{text}",
        output.status
    );
    for line in text.lines() {
        let lower = line.to_lowercase();
        let complains = lower.contains("error")
            || lower.contains("warning")
            || lower.contains("incorrect")
            || lower.contains("invalid");
        let summary = lower.contains("0 errors, 0 warnings");
        assert!(
            !complains || summary,
            "{tool} {args:?} complained: {line}\n{text}"
        );
    }
    text
}

/// The tables as the guest finds them, by following pointers from the RSDP.
struct GuestTables {
    xsdt: (u64, Vec<u8>),
    fadt: (u64, Vec<u8>),
    madt: (u64, Vec<u8>),
    dsdt: (u64, Vec<u8>),
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

/// Writes the blobs into a model of the guest's 0xe0000..0x100000 range and
/// walks RSDP → XSDT → FADT/MADT, FADT → DSDT.
fn guest_tables(cfg: &AcpiConfig) -> GuestTables {
    let blobs = build_tables(cfg).expect("build_tables");
    let base = layout::RSDP_START;
    let mut memory = vec![0u8; (layout::ACPI_TABLES_END - base) as usize];
    for (addr, bytes) in &blobs {
        assert!(*addr >= base, "table at {addr:#x} below the ACPI range");
        let start = (addr - base) as usize;
        assert!(
            start + bytes.len() <= memory.len(),
            "table at {addr:#x} runs past ACPI_TABLES_END"
        );
        memory[start..start + bytes.len()].copy_from_slice(bytes);
    }
    let at = |addr: u64| -> &[u8] {
        assert!(
            addr >= base && addr < layout::ACPI_TABLES_END,
            "pointer {addr:#x}"
        );
        &memory[(addr - base) as usize..]
    };
    let table = |addr: u64| -> (u64, Vec<u8>) {
        let bytes = at(addr);
        let len = u32_at(bytes, 4) as usize;
        (addr, bytes[..len].to_vec())
    };

    let rsdp = &at(RSDP_ADDR)[..36];
    assert_eq!(&rsdp[..8], b"RSD PTR ");
    let xsdt = table(u64_at(rsdp, 24));
    assert_eq!(&xsdt.1[..4], b"XSDT");
    let entries: Vec<u64> = (36..xsdt.1.len())
        .step_by(8)
        .map(|offset| u64_at(&xsdt.1, offset))
        .collect();
    let by_signature = |signature: &[u8]| {
        let found: Vec<_> = entries
            .iter()
            .map(|&addr| table(addr))
            .filter(|(_, bytes)| bytes.starts_with(signature))
            .collect();
        assert_eq!(found.len(), 1, "XSDT lists one {signature:?}");
        found.into_iter().next().unwrap()
    };
    let fadt = by_signature(b"FACP");
    let madt = by_signature(b"APIC");
    let dsdt = table(u64_at(&fadt.1, 140));
    assert_eq!(&dsdt.1[..4], b"DSDT");
    GuestTables {
        xsdt,
        fadt,
        madt,
        dsdt,
    }
}

/// Writes `bytes` to `<name>.dat`, decompiles it with `iasl -d`, compiles
/// the result again (so the disassembly is valid ASL or data-table source),
/// and returns the disassembly.
fn decompile(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let dat = format!("{name}.dat");
    let dsl = format!("{name}.dsl");
    std::fs::write(dir.join(&dat), bytes).unwrap();
    run(dir, "iasl", &["-d", &dat]);
    let text = std::fs::read_to_string(dir.join(&dsl)).unwrap();
    assert!(
        !text.contains("ncorrect checksum"),
        "{name}: bad checksum\n{text}"
    );
    let compiled = run(dir, "iasl", &[&dsl]);
    assert!(
        compiled.contains("Compilation successful. 0 Errors"),
        "{name} does not compile back:\n{compiled}"
    );
    text
}

/// The disassembly with `//` comments dropped and whitespace collapsed, so
/// multi-line ASL constructs can be matched as one string.
fn flat(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The disassembly with each line's whitespace collapsed (for data tables,
/// whose lines are "[offset] Field : Value").
fn fields(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn two_cpus_two_serials_two_virtio() -> AcpiConfig {
    AcpiConfig {
        vcpus: 2,
        serial_ports: vec![0, 1],
        virtio_mmio: vec![(0xd000_0000, 16), (0xd000_1000, 17)],
        oem_id: *b"HCSLNX",
    }
}

#[test]
fn acpi_iasl_decompiles_all_tables() {
    let dir = tempfile::tempdir().unwrap();
    let tables = guest_tables(&two_cpus_two_serials_two_virtio());

    // DSDT
    let dsdt = decompile(dir.path(), "dsdt", &tables.dsdt.1);
    let asl = flat(&dsdt);
    assert!(asl.contains(r#"DefinitionBlock ("", "DSDT", 2, "HCSLNX", "HCSVM ", 0x00000001)"#));
    assert!(asl.contains("Scope (\\_SB)"), "{dsdt}");
    for (name, uid, port, irq) in [("COM1", "One", "0x03F8", 4), ("COM2", "0x02", "0x02F8", 3)] {
        assert!(
            asl.contains(&format!(
                "Device ({name}) {{ Name (_HID, EisaId (\"PNP0501\") /* 16550A-compatible COM Serial Port */) \
                 Name (_UID, {uid}) Name (_STA, 0x0F) Name (_CRS, ResourceTemplate () {{ \
                 IO (Decode16, {port}, {port}, 0x01, 0x08, ) \
                 Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) {{ 0x{irq:08X}, }} }}) }}"
            )),
            "{name} in\n{dsdt}"
        );
    }
    // No keyboard controller nor CMOS RTC for Linux to probe (the FADT's
    // IAPC_BOOT_ARCH says there are none, below).
    assert!(!asl.contains("PNP0303"), "i8042 in\n{dsdt}");
    assert!(!asl.contains("PNP0B00"), "CMOS RTC in\n{dsdt}");
    assert!(
        asl.contains(
            "Device (PEVT) { Name (_HID, \"QEMU0001\") Name (_STA, 0x0F) Name (_CRS, \
             ResourceTemplate () { IO (Decode16, 0x0505, 0x0505, 0x01, 0x01, ) }) }"
        ),
        "pvpanic in\n{dsdt}"
    );
    assert!(
        asl.contains(
            "Device (PWRB) { Name (_HID, EisaId (\"PNP0C0C\") /* Power Button Device */) \
             Name (_UID, One) }"
        ),
        "power button in\n{dsdt}"
    );
    assert!(
        asl.contains(
            "Device (GED) { Name (_HID, \"ACPI0013\" /* Generic Event Device */) \
             Name (_UID, Zero) Name (_CRS, ResourceTemplate () { \
             Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, ) { 0x00000009, } }) \
             OperationRegion (GDST, SystemMemory, 0xFEB00000, One) \
             Field (GDST, ByteAcc, NoLock, WriteAsZeros) { GDAT, 8 }"
        ),
        "GED in\n{dsdt}"
    );
    // Linux's acpi-ged reads every _CRS entry as an interrupt and refuses
    // the device on anything else ("unable to parse IRQ resource").
    assert!(
        !asl.contains("Memory32Fixed (ReadWrite, 0xFEB00000"),
        "the GED's register is in its OperationRegion only:\n{dsdt}"
    );
    assert!(asl.contains("Method (_EVT, 1, Serialized)"), "{dsdt}");
    assert!(asl.contains("Notify (\\_SB.PWRB, 0x80)"), "{dsdt}");
    for (uid, name, base, gsi) in [
        (0, "Zero", "0xD0000000", "0x00000010"),
        (1, "One", "0xD0001000", "0x00000011"),
    ] {
        assert!(
            asl.contains(&format!(
                "Device (V{uid:03}) {{ Name (_HID, \"LNRO0005\") Name (_UID, {name}) \
                 Name (_CCA, One) Name (_CRS, ResourceTemplate () {{ \
                 Memory32Fixed (ReadWrite, {base}, 0x00001000, ) \
                 Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) {{ {gsi}, }} }}) }}"
            )),
            "virtio-mmio {uid} in\n{dsdt}"
        );
    }
    assert_eq!(dsdt.matches("\"LNRO0005\"").count(), 2);
    assert!(dsdt.contains("_S5_"), "{dsdt}");
    assert!(
        asl.contains("Name (_S5, Package (0x04) { 0x05, Zero, Zero, Zero })"),
        "{dsdt}"
    );

    // FADT
    let fadt = fields(&decompile(dir.path(), "facp", &tables.fadt.1));
    for expected in [
        "Signature : \"FACP\"",
        "Revision : 06",
        "FADT Minor Revision : 05",
        "Hardware Reduced (V5) : 1",
        "Reset Register Supported (V2) : 1",
        "8042 Present on ports 60/64 (V2) : 0",
        "VGA Not Present (V4) : 1",
        "CMOS RTC Not Present (V5) : 1",
        "Value to cause reset : 01",
        &format!("DSDT Address : {:016X}", tables.dsdt.0),
    ] {
        assert!(fadt.contains(expected), "FADT lacks {expected:?}:\n{fadt}");
    }
    // Each of the three registers: SystemIO, 8 bits, byte access, the port.
    for (register, port) in [
        ("Reset Register", 0x602),
        ("Sleep Control Register", 0x600),
        ("Sleep Status Register", 0x601),
    ] {
        let after: Vec<&str> = fadt
            .lines()
            .skip_while(|line| !line.contains(&format!("{register} :")))
            .take(6)
            .collect();
        let after = after.join("\n");
        for expected in [
            "Space ID : 01 [SystemIO]".to_string(),
            "Bit Width : 08".to_string(),
            "Encoded Access Width : 01".to_string(),
            format!("Address : {port:016X}"),
        ] {
            assert!(
                after.contains(&expected),
                "{register} lacks {expected}:\n{after}"
            );
        }
    }

    // MADT
    let madt = fields(&decompile(dir.path(), "apic", &tables.madt.1));
    assert_eq!(madt.matches("[Processor Local APIC]").count(), 2, "{madt}");
    assert_eq!(madt.matches("[I/O APIC]").count(), 1, "{madt}");
    assert_eq!(
        madt.matches("[Interrupt Source Override]").count(),
        2,
        "{madt}"
    );
    for expected in [
        "Local Apic Address : FEE00000",
        "PC-AT Compatibility : 1",
        "I/O Apic ID : 02",
        "Address : FEC00000",
    ] {
        assert!(madt.contains(expected), "MADT lacks {expected:?}:\n{madt}");
    }

    // XSDT
    let xsdt = fields(&decompile(dir.path(), "xsdt", &tables.xsdt.1));
    assert_eq!(xsdt.matches("ACPI Table Address").count(), 2, "{xsdt}");
    assert!(xsdt.contains(&format!("ACPI Table Address 0 : {:016X}", tables.fadt.0)));
    assert!(xsdt.contains(&format!("ACPI Table Address 1 : {:016X}", tables.madt.0)));
}

#[test]
fn acpi_iasl_counts_local_apics() {
    let dir = tempfile::tempdir().unwrap();
    for vcpus in [1u8, 8, 254] {
        let cfg = AcpiConfig {
            vcpus,
            serial_ports: vec![],
            virtio_mmio: vec![],
            oem_id: *b"HCSLNX",
        };
        let tables = guest_tables(&cfg);
        let name = format!("apic{vcpus}");
        let madt = fields(&decompile(dir.path(), &name, &tables.madt.1));
        assert_eq!(
            madt.matches("[Processor Local APIC]").count(),
            usize::from(vcpus),
            "{madt}"
        );
        assert!(
            madt.contains(&format!("I/O Apic ID : {vcpus:02X}")),
            "{madt}"
        );
        assert!(madt.contains("Address : FEC00000"), "{madt}");
        // A DSDT without serial or virtio devices is still valid.
        decompile(dir.path(), &format!("dsdt{vcpus}"), &tables.dsdt.1);
    }
}

#[test]
fn acpi_iasl_accepts_every_serial_port_and_eight_virtio_devices() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AcpiConfig {
        vcpus: 4,
        serial_ports: vec![0, 1, 2, 3],
        virtio_mmio: (0..8u32)
            .map(|i| (0xd000_0000 + u64::from(i) * 0x1000, 16 + i))
            .collect(),
        oem_id: *b"HCSLNX",
    };
    let tables = guest_tables(&cfg);
    let dsdt = decompile(dir.path(), "dsdt", &tables.dsdt.1);
    let asl = flat(&dsdt);
    assert_eq!(dsdt.matches("EisaId (\"PNP0501\")").count(), 4);
    assert_eq!(dsdt.matches("\"LNRO0005\"").count(), 8);
    // COM1/COM3 share IRQ 4 and COM2/COM4 IRQ 3: marked shared.
    assert_eq!(
        asl.matches("Interrupt (ResourceConsumer, Edge, ActiveHigh, Shared, ,, )")
            .count(),
        4,
        "{dsdt}"
    );
    assert!(asl.contains("Device (V007)"), "{dsdt}");
    assert!(asl.contains("{ 0x00000017, }"), "GSI 23 in\n{dsdt}");
}

/// Runs the DSDT's AML in ACPICA's interpreter: `_EVT` notifies the power
/// button exactly when bit 0 of the GED register is set, and `_S5_` gives
/// SLP_TYP 5.
#[test]
fn acpi_acpiexec_runs_the_ged_event_method() {
    let dir = tempfile::tempdir().unwrap();
    let tables = guest_tables(&two_cpus_two_serials_two_virtio());
    std::fs::write(dir.path().join("dsdt.dat"), &tables.dsdt.1).unwrap();

    // `-fv` fills every operation region (here: the GED register) with a byte.
    let evt = |register: &str| {
        run(
            dir.path(),
            "acpiexec",
            &[
                "-fv",
                register,
                "-b",
                "execute \\_SB.GED._EVT 9",
                "dsdt.dat",
            ],
        )
    };
    let pressed = evt("1");
    assert!(
        pressed.contains("Notify on [PWRB]") && pressed.contains("Value 0x80"),
        "no power button notify with bit 0 set:\n{pressed}"
    );
    let other = evt("0xFE");
    assert!(
        !other.contains("Notify"),
        "notify without bit 0 set:\n{other}"
    );

    let s5 = run(
        dir.path(),
        "acpiexec",
        &["-b", "execute \\_S5_", "dsdt.dat"],
    );
    let s5 = fields(&s5);
    assert!(
        s5.contains(
            "[Package] Contains 4 Elements:\n[Integer] = 0000000000000005\n\
             [Integer] = 0000000000000000"
        ),
        "{s5}"
    );
}
