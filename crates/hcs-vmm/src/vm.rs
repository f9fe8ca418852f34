//! A virtual machine: KVM VM, guest memory, devices, vCPU threads, and how
//! it stops.

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::boot::{self, BootSource};
use crate::devices::power::{
    AcpiPm, BootMarker, Ged, GuestRequest, PvPanic, RequestSink, GED_POWER_BUTTON, I8042,
};
use crate::devices::serial::{
    restore_uart, save_uart, Console, SerialBackend, SerialDevice, SocketGuard, Uart, UartState,
};
use crate::devices::{legacy, lock, Bus, BusDevice, SharedDevice};
use crate::layout;
use crate::snapshot::{MachineSection, SavedVm};
use crate::vcpu::{RunState, VcpuContext, VcpuHandle, VcpuStop, Want};
use crate::vcpu_state::{VcpuState, VmState};

/// Most vCPUs a VM may have (xAPIC ids).
pub const MAX_VCPUS: u8 = 254;
/// Smallest guest memory, in MiB.
pub const MIN_MEMORY_MB: u64 = 16;

/// Everything needed to build a VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Guest RAM in MiB.
    pub memory_mb: u64,
    /// Number of vCPUs.
    pub vcpus: u8,
    /// Kernel, initrd, command line.
    pub boot: BootSource,
    /// Serial ports present: (index into `layout::SERIAL_PORTS`, backends).
    pub serial: Vec<(u8, Vec<SerialBackend>)>,
    /// virtio-mmio devices (vsock, disks).
    pub virtio: crate::devices::virtio::VirtioConfig,
    /// How guest RAM is backed.
    pub memory: crate::memory::MemoryBacking,
}

/// Puts the vCPU threads (their kernel thread ids) where they must run,
/// e.g. a cgroup; see [`Vm::start_with`].
pub type PlaceVcpus<'a> = dyn Fn(&[i32]) -> Result<(), String> + 'a;

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest powered off (ACPI S5 or a KVM shutdown event).
    PowerOff,
    /// The guest reset itself (i8042, ACPI reset register, KVM reset event).
    Reset,
    /// The guest reported a panic through pvpanic.
    Panic { events: u8 },
    /// A vCPU triple-faulted.
    TripleFault { vcpu: u8, rip: u64 },
    /// KVM could not run or emulate the guest.
    InternalError { vcpu: u8, suberror: u32, rip: u64 },
    /// VM entry failed.
    FailEntry { vcpu: u8, reason: u64 },
    /// The VMM failed to run a vCPU.
    VcpuError { vcpu: u8, message: String },
    /// The VMM stopped it (terminate).
    Killed,
    /// It was saved to a file and stopped (HcsSaveComputeSystem ToFile).
    Saved,
}

/// Counters for Properties.Statistics.
#[derive(Debug, Clone, Default)]
pub struct VmStats {
    /// CPU time of all vCPU threads.
    pub vcpu_time_ns: u64,
    /// VM exits handled by the VMM.
    pub exits: u64,
    /// Guest memory the host has backed (resident), in bytes.
    pub guest_rss_bytes: u64,
    /// Guest memory size, in bytes.
    pub memory_bytes: u64,
    /// Port and MMIO accesses that reached no device.
    pub unclaimed_accesses: u64,
}

/// A VMM error, with a message for a person.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    /// The configuration is wrong.
    #[error("{0}")]
    Config(String),
    /// /dev/kvm is missing or unusable.
    #[error("KVM is not available: {0}")]
    NoKvm(String),
    /// A KVM call failed.
    #[error("{what}: {source}")]
    Kvm {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    /// Booting failed.
    #[error(transparent)]
    Boot(#[from] boot::BootError),
    /// ACPI tables could not be built.
    #[error("building the ACPI tables: {0}")]
    Acpi(String),
    /// Host I/O failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A serial port's backend (socket or log file) could not be set up.
    #[error("serial port COM{}: {source}", u16::from(*port) + 1)]
    Serial {
        /// The port's index (0 is COM1).
        port: u8,
        /// Why.
        source: crate::devices::serial::SerialError,
    },
    /// The VM is not in the right state.
    #[error("{0}")]
    State(String),
    /// The vCPU threads could not be placed (see [`Vm::start_with`]).
    #[error("placing the vCPU threads: {0}")]
    Placement(String),
    /// A virtio device could not be set up.
    #[error(transparent)]
    Virtio(#[from] crate::devices::virtio::VirtioSetupError),
    /// vCPU or VM state could not be read or written.
    #[error("vCPU {vcpu}: {source}")]
    VcpuState {
        vcpu: u8,
        source: crate::vcpu_state::StateError,
    },
    /// The VM's in-kernel devices' state could not be read or written.
    #[error("VM state: {0}")]
    VmState(crate::vcpu_state::StateError),
    /// A state or memory file could not be written or read back.
    #[error("saved state {0}")]
    Snapshot(String),
    /// Something this VMM cannot do yet.
    #[error("{0}")]
    Unsupported(String),
    /// Guest RAM could not be backed as asked.
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
}

/// Write the ACPI tables and load the kernel; returns where to enter it.
fn write_boot_image(
    cfg: &VmConfig,
    memory: &GuestMemoryMmap,
    memory_bytes: u64,
) -> Result<boot::EntryPoint, VmmError> {
    let tables = crate::acpi::build_tables(&crate::acpi::AcpiConfig {
        vcpus: cfg.vcpus,
        serial_ports: cfg.serial.iter().map(|(i, _)| *i).collect(),
        virtio_mmio: cfg.virtio.windows(),
        oem_id: *b"HCSLNX",
    })
    .map_err(|e| VmmError::Acpi(e.to_string()))?;
    for (addr, bytes) in &tables {
        vm_memory::Bytes::write_slice(memory, bytes, GuestAddress(*addr))
            .map_err(|e| VmmError::Acpi(e.to_string()))?;
    }
    Ok(boot::load(
        memory,
        &cfg.boot,
        memory_bytes,
        crate::acpi::RSDP_ADDR,
    )?)
}

/// Guest memory mapped copy-on-write from a saved VM's memory file, with
/// the regions this VM's memory size has.
fn restored_memory(saved: &SavedVm, memory_bytes: u64) -> Result<GuestMemoryMmap, VmmError> {
    let want = boot::ram_regions(memory_bytes);
    let have: Vec<(u64, u64)> = saved
        .layout
        .regions
        .iter()
        .map(|r| (r.guest_addr, r.size))
        .collect();
    let want: Vec<(u64, u64)> = want.iter().map(|(a, l)| (a.0, *l as u64)).collect();
    if have != want {
        return Err(VmmError::Snapshot(format!(
            "memory layout {have:x?} does not match this VM's {want:x?}"
        )));
    }
    if let Some(tag) = &saved.tag {
        hcs_snapshot::memory::check_memory_tag(&saved.memory_path, &saved.layout, tag)
            .map_err(|e| VmmError::Snapshot(e.to_string()))?;
    }
    hcs_snapshot::memory::restore_guest_memory(&saved.memory_path, &saved.layout)
        .map_err(|e| VmmError::Snapshot(e.to_string()))
}

/// The state of the devices the VMM emulates in user space.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DevicesState {
    /// Each serial port: (index, registers and FIFO).
    pub serial: Vec<(u8, UartState)>,
    /// GED events the guest has not read.
    pub ged_pending: u8,
    /// Each virtio-mmio transport's registers, in window order.
    pub virtio: Vec<hcs_virtio::mmio::TransportState>,
}

/// How long a paused vCPU thread may take to save or load its state.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);

fn not_paused(vcpu: u8) -> VmmError {
    VmmError::State(format!(
        "vCPU {vcpu} is not paused (pause the VM before saving or loading its state)"
    ))
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
    move |source| VmmError::Kvm { what, source }
}

/// How the VM ended (set once).
struct ExitState {
    reason: Option<VmExit>,
}

/// A VM, from creation to its end.
pub struct Vm {
    vm: Arc<VmFd>,
    memory: GuestMemoryMmap,
    memory_bytes: u64,
    vcpus: Vec<VcpuHandle>,
    pending_vcpus: Vec<kvm_ioctls::VcpuFd>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    ged: Arc<Mutex<Ged>>,
    consoles: Vec<(u8, Arc<Mutex<Console>>)>,
    uarts: Vec<(u8, Arc<Mutex<Uart>>)>,
    transports: Vec<crate::devices::virtio::SharedTransport>,
    /// The serial ports' sockets; dropping one closes and removes it.
    sockets: Vec<SocketGuard>,
    exit: Arc<Mutex<ExitState>>,
    exit_evt: EventFd,
    started: bool,
    /// The MSRs KVM can save and restore on this host.
    msr_indices: Arc<Vec<u32>>,
    /// What the VM is, for a saved state's `machine` section.
    machine: MachineSection,
}

fn check(cfg: &VmConfig) -> Result<(), VmmError> {
    if cfg.vcpus == 0 {
        return Err(VmmError::Config(
            "a VM needs at least one vCPU (Processor.Count is 0)".into(),
        ));
    }
    if cfg.vcpus > MAX_VCPUS {
        return Err(VmmError::Config(format!(
            "{} vCPUs requested; at most {MAX_VCPUS} are supported",
            cfg.vcpus
        )));
    }
    if cfg.memory_mb < MIN_MEMORY_MB {
        return Err(VmmError::Config(format!(
            "{} MiB of memory requested; at least {MIN_MEMORY_MB} MiB are needed",
            cfg.memory_mb
        )));
    }
    let host_mb = host_memory_mb();
    if host_mb > 0 && cfg.memory_mb > host_mb {
        return Err(VmmError::Config(format!(
            "{} MiB of memory requested, more than this host has ({host_mb} MiB)",
            cfg.memory_mb
        )));
    }
    for (i, _) in &cfg.serial {
        if usize::from(*i) >= layout::SERIAL_PORTS.len() {
            return Err(VmmError::Config(format!(
                "serial port {i} does not exist; ports 0 to 3 (COM1 to COM4) do"
            )));
        }
    }
    Ok(())
}

fn host_memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// A VM's ACPI power button, usable from any thread.
#[derive(Clone)]
pub struct PowerButton(Arc<Mutex<Ged>>);

impl PowerButton {
    /// Press it (as [`Vm::power_button`]).
    pub fn press(&self) {
        lock(&self.0).notify(GED_POWER_BUTTON);
    }
}

impl Vm {
    /// Build the VM: memory, kernel, ACPI tables, devices and vCPUs. Nothing
    /// runs until [`Vm::start`].
    pub fn create(cfg: &VmConfig) -> Result<Vm, VmmError> {
        Vm::build(cfg, None)
    }

    /// Create a fresh VM, or one whose memory comes from `saved`.
    fn build(cfg: &VmConfig, saved: Option<&SavedVm>) -> Result<Vm, VmmError> {
        check(cfg)?;
        let kvm = Kvm::new().map_err(|e| VmmError::NoKvm(format!("opening /dev/kvm: {e}")))?;
        let vm = Arc::new(kvm.create_vm().map_err(kvm_err("creating the VM"))?);
        let memory_bytes = cfg.memory_mb << 20;
        let memory = match saved {
            None => crate::memory::allocate(&boot::ram_regions(memory_bytes), &cfg.memory)?,
            Some(s) => {
                if cfg.memory.huge_pages != crate::memory::HugePages::No {
                    return Err(VmmError::Unsupported(
                        "a restored VM's memory is mapped from its memory file, which cannot be \
                         backed by huge pages (BackingPageSize Large)"
                            .into(),
                    ));
                }
                let m = restored_memory(s, memory_bytes)?;
                crate::memory::commit(&m, &cfg.memory)?;
                m
            }
        };
        for (slot, region) in memory.iter().enumerate() {
            let host = memory
                .get_host_address(region.start_addr())
                .map_err(|e| VmmError::Config(e.to_string()))?;
            let r = kvm_bindings::kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: the region stays mapped as long as `memory`, which the
            // Vm owns and drops only after the VmFd and all vCPU threads.
            unsafe { vm.set_user_memory_region(r) }.map_err(kvm_err("registering guest memory"))?;
        }
        vm.set_tss_address(0xfffb_d000)
            .map_err(kvm_err("setting the TSS address"))?;
        vm.create_irq_chip()
            .map_err(kvm_err("creating the interrupt controllers"))?;
        let pit = kvm_bindings::kvm_pit_config {
            flags: kvm_bindings::KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit).map_err(kvm_err("creating the PIT"))?;

        // ACPI tables, then the kernel (the zero page points at the RSDP);
        // a restored VM has them in its memory already.
        let entry = match saved {
            None => Some(write_boot_image(cfg, &memory, memory_bytes)?),
            Some(_) => None,
        };

        let exit = Arc::new(Mutex::new(ExitState { reason: None }));
        let exit_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| VmmError::Io {
            what: "creating an eventfd".into(),
            source: e,
        })?;

        // Devices.
        let mut pio = Bus::new("pio");
        let mut mmio = Bus::new("mmio");
        let requests: RequestSink = {
            let exit = exit.clone();
            let evt = exit_evt.try_clone().map_err(|e| VmmError::Io {
                what: "cloning an eventfd".into(),
                source: e,
            })?;
            Arc::new(move |r: GuestRequest| {
                let reason = match r {
                    GuestRequest::PowerOff => VmExit::PowerOff,
                    GuestRequest::Reset => VmExit::Reset,
                    GuestRequest::Panic(events) => VmExit::Panic { events },
                };
                record_exit(&exit, &evt, reason);
            })
        };
        let bus_err = |e: crate::devices::BusError| VmmError::Config(e.to_string());
        let mut consoles = Vec::new();
        let mut uarts = Vec::new();
        let mut sockets = Vec::new();
        for (index, backend) in &cfg.serial {
            let (port, irq) = layout::SERIAL_PORTS[usize::from(*index)];
            let irq_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| VmmError::Io {
                what: "creating an eventfd".into(),
                source: e,
            })?;
            vm.register_irqfd(&irq_evt, irq)
                .map_err(kvm_err("wiring a serial port's interrupt"))?;
            let mut dev = SerialDevice::new(irq_evt, backend).map_err(|e| VmmError::Serial {
                port: *index,
                source: e,
            })?;
            sockets.extend(dev.serve().map_err(|e| VmmError::Io {
                what: "serving a serial socket".into(),
                source: e,
            })?);
            consoles.push((*index, dev.console()));
            uarts.push((*index, dev.uart()));
            pio.insert(
                u64::from(port),
                u64::from(layout::SERIAL_PORT_SIZE),
                shared(dev),
            )
            .map_err(bus_err)?;
        }
        let kbd = Arc::new(Mutex::new(I8042::new(requests.clone())));
        pio.insert(
            u64::from(layout::I8042_DATA_PORT),
            1,
            shared(I8042Port(kbd.clone())),
        )
        .map_err(bus_err)?;
        pio.insert(
            u64::from(layout::I8042_COMMAND_PORT),
            1,
            shared(I8042Command(kbd)),
        )
        .map_err(bus_err)?;
        pio.insert(
            u64::from(layout::ACPI_SLEEP_CONTROL_PORT),
            AcpiPm::LEN,
            shared(AcpiPm::new(requests.clone())),
        )
        .map_err(bus_err)?;
        pio.insert(
            u64::from(layout::PVPANIC_PORT),
            1,
            shared(PvPanic::new(requests.clone())),
        )
        .map_err(bus_err)?;
        // What Linux touches even though ACPI says there is no RTC and the
        // command line says pci=off (see devices::legacy).
        pio.insert(
            u64::from(layout::CMOS_PORT),
            u64::from(layout::CMOS_LEN),
            shared(legacy::Cmos::new()),
        )
        .map_err(bus_err)?;
        pio.insert(
            u64::from(layout::PCI_CONFIG_PORT),
            u64::from(layout::PCI_CONFIG_LEN),
            shared(legacy::PciConfigNone::new()),
        )
        .map_err(bus_err)?;
        pio.insert(
            u64::from(layout::BOOT_MARKER_PORT),
            1,
            shared(BootMarker::new()),
        )
        .map_err(bus_err)?;
        let ged_vm = vm.clone();
        let ged = Arc::new(Mutex::new(Ged::new(Box::new(move |level| {
            if let Err(e) = ged_vm.set_irq_line(layout::GED_GSI, level) {
                tracing::warn!("driving the GED interrupt: {e}");
            }
        }))));
        mmio.insert(
            layout::GED_MMIO_START,
            layout::GED_MMIO_SIZE,
            ged.clone() as SharedDevice,
        )
        .map_err(bus_err)?;

        let transports = crate::devices::virtio::attach(&cfg.virtio, &vm, &memory, &mut mmio)?;

        let msr_indices = kvm
            .get_msr_index_list()
            .map_err(kvm_err("listing the saveable MSRs"))?
            .as_slice()
            .to_vec();

        // vCPUs: created now (so a failure is a create failure), run later.
        let supported = kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("reading the supported CPUID"))?;
        let mut pending = Vec::new();
        for id in 0..cfg.vcpus {
            let fd = vm
                .create_vcpu(u64::from(id))
                .map_err(kvm_err("creating a vCPU"))?;
            fd.set_cpuid2(&boot::cpuid_for(&supported, id, cfg.vcpus))
                .map_err(kvm_err("setting a vCPU's CPUID"))?;
            boot::setup_vcpu_common(&fd)?;
            if let (0, Some(entry)) = (id, entry) {
                boot::setup_boot_vcpu(&memory, &fd, entry)?;
            }
            pending.push(fd);
        }
        Ok(Vm {
            vm,
            memory,
            memory_bytes,
            vcpus: Vec::new(),
            pending_vcpus: pending,
            pio: Arc::new(pio),
            mmio: Arc::new(mmio),
            ged,
            consoles,
            uarts,
            transports,
            sockets,
            exit,
            exit_evt,
            started: false,
            msr_indices: Arc::new(msr_indices),
            machine: MachineSection::of(cfg, String::new()),
        })
    }

    /// Build a VM from a state file written by [`Vm::save`]: the document's
    /// machine must be the saved one. Guest memory is the memory file
    /// mapped copy-on-write, so this takes the same time whatever the guest
    /// size. The VM then starts where the saved one stopped.
    pub fn restore(cfg: &VmConfig, state_path: &Path) -> Result<Vm, VmmError> {
        let saved = crate::snapshot::read_state(state_path)?;
        saved.machine.check_matches(cfg)?;
        let mut vm = Vm::build(cfg, Some(&saved))?;
        vm.restore_cpu_state(&saved.vm, saved.vcpus)?;
        vm.restore_devices(&saved.devices)?;
        Ok(vm)
    }

    /// Save the paused VM: `state_path` gets the vCPU, VM and device state,
    /// `<state_path>.memory` the guest memory (sparse: pages the guest never
    /// touched are holes). Returns the memory file's report.
    pub fn save(
        &mut self,
        state_path: &Path,
    ) -> Result<hcs_snapshot::memory::SaveReport, VmmError> {
        let (vm, vcpus) = self.save_cpu_state()?;
        // Devices with threads of their own stop touching guest memory while
        // it is written out.
        for t in &self.transports {
            lock(t).pause();
        }
        let devices = self.save_devices();
        let memory_path = crate::snapshot::memory_path_for(state_path);
        let report = hcs_snapshot::memory::save_guest_memory(&self.memory, &memory_path)
            .map_err(|e| VmmError::Snapshot(e.to_string()));
        for t in &self.transports {
            lock(t).resume();
        }
        let report = report?;
        let memory_file = memory_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let saved = SavedVm {
            machine: MachineSection {
                memory_file,
                ..self.machine.clone()
            },
            vm,
            vcpus,
            devices,
            layout: report.layout.clone(),
            memory_path,
            tag: Some(report.tag),
        };
        crate::snapshot::write_state(state_path, &saved)?;
        Ok(report)
    }

    /// Start the vCPUs.
    pub fn start(&mut self) -> Result<(), VmmError> {
        self.start_with(None)
    }

    /// Start the vCPUs; with `place`, their threads are first created parked
    /// and `place` gets their thread ids (to put them in a cgroup) before any
    /// of them runs the guest. When `place` fails the threads end and the VM
    /// stays unstarted.
    pub fn start_with(&mut self, place: Option<&PlaceVcpus<'_>>) -> Result<(), VmmError> {
        if self.started {
            return Err(VmmError::State("the VM is already started".into()));
        }
        self.started = true;
        let evt = self.exit_evt.try_clone().map_err(|e| VmmError::Io {
            what: "cloning an eventfd".into(),
            source: e,
        })?;
        let exit = self.exit.clone();
        let stop: crate::vcpu::StopSink = Arc::new(move |vcpu, why| {
            let reason = match why {
                VcpuStop::TripleFault { rip } => VmExit::TripleFault { vcpu, rip },
                VcpuStop::InternalError { suberror, rip } => VmExit::InternalError {
                    vcpu,
                    suberror,
                    rip,
                },
                VcpuStop::FailEntry { reason } => VmExit::FailEntry { vcpu, reason },
                VcpuStop::SystemEvent { kind } => match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET => VmExit::Reset,
                    kvm_bindings::KVM_SYSTEM_EVENT_CRASH => VmExit::Panic { events: 1 },
                    _ => VmExit::PowerOff,
                },
                VcpuStop::Error(message) => VmExit::VcpuError { vcpu, message },
            };
            record_exit(&exit, &evt, reason);
        });
        for (id, fd) in self.pending_vcpus.drain(..).enumerate() {
            let ctx = VcpuContext {
                pio: self.pio.clone(),
                mmio: self.mmio.clone(),
                stop: stop.clone(),
            };
            let want = if place.is_some() {
                Want::Pause
            } else {
                Want::Run
            };
            let handle = VcpuHandle::spawn(id as u8, fd, ctx, want).map_err(|e| VmmError::Io {
                what: "starting a vCPU thread".into(),
                source: e,
            })?;
            self.vcpus.push(handle);
        }
        let Some(place) = place else {
            return Ok(());
        };
        let mut tids = Vec::with_capacity(self.vcpus.len());
        for v in &self.vcpus {
            // A parked thread has stored its id (it does so first thing).
            if !v.wait_for(RunState::Paused, STATE_TIMEOUT) {
                let id = v.shared.id;
                self.join();
                return Err(VmmError::State(format!(
                    "vCPU {id} did not start within {} s",
                    STATE_TIMEOUT.as_secs()
                )));
            }
            tids.push(v.shared.tid.load(std::sync::atomic::Ordering::Acquire));
        }
        if let Err(message) = place(&tids) {
            self.join();
            return Err(VmmError::Placement(message));
        }
        for v in &self.vcpus {
            v.request(Want::Run);
        }
        Ok(())
    }

    /// Park every vCPU; returns when all are parked.
    pub fn pause(&self) -> Result<(), VmmError> {
        for v in &self.vcpus {
            v.request(Want::Pause);
        }
        for v in &self.vcpus {
            if !v.wait_for(RunState::Paused, Duration::from_secs(5))
                && v.state() != RunState::Exited
            {
                return Err(VmmError::State(format!(
                    "vCPU {} did not pause within 5 s",
                    v.shared.id
                )));
            }
        }
        Ok(())
    }

    /// Let every vCPU run again.
    pub fn resume(&self) -> Result<(), VmmError> {
        for v in &self.vcpus {
            v.request(Want::Run);
        }
        Ok(())
    }

    /// Read the state of every vCPU and of the in-kernel devices. Every vCPU
    /// must be paused (or not started yet).
    pub fn save_cpu_state(&mut self) -> Result<(VmState, Vec<VcpuState>), VmmError> {
        let mut vcpus = Vec::new();
        if self.started {
            for v in &self.vcpus {
                let msrs = self.msr_indices.clone();
                let state = v
                    .on_paused_thread(STATE_TIMEOUT, move |fd| VcpuState::save(fd, &msrs))
                    .ok_or_else(|| not_paused(v.shared.id))?;
                vcpus.push(state.map_err(|source| VmmError::VcpuState {
                    vcpu: v.shared.id,
                    source,
                })?);
            }
        } else {
            for (id, fd) in self.pending_vcpus.iter().enumerate() {
                vcpus.push(VcpuState::save(fd, &self.msr_indices).map_err(|source| {
                    VmmError::VcpuState {
                        vcpu: id as u8,
                        source,
                    }
                })?);
            }
        }
        let vm = VmState::save(&self.vm).map_err(VmmError::VmState)?;
        Ok((vm, vcpus))
    }

    /// Load saved state: every vCPU must be paused (or not started yet),
    /// and there must be one state per vCPU.
    pub fn restore_cpu_state(
        &mut self,
        vm: &VmState,
        vcpus: Vec<VcpuState>,
    ) -> Result<(), VmmError> {
        let count = if self.started {
            self.vcpus.len()
        } else {
            self.pending_vcpus.len()
        };
        if vcpus.len() != count {
            return Err(VmmError::Config(format!(
                "the saved state has {} vCPUs; this VM has {count}",
                vcpus.len()
            )));
        }
        vm.restore(&self.vm).map_err(VmmError::VmState)?;
        for (id, state) in vcpus.into_iter().enumerate() {
            let vcpu = id as u8;
            let result = if self.started {
                let v = &self.vcpus[id];
                v.on_paused_thread(STATE_TIMEOUT, move |fd| state.restore(fd))
                    .ok_or_else(|| not_paused(vcpu))?
            } else {
                state.restore(&self.pending_vcpus[id])
            };
            result.map_err(|source| VmmError::VcpuState { vcpu, source })?;
        }
        Ok(())
    }

    /// The state of the devices the VMM emulates (serial ports, GED).
    /// Every vCPU should be paused, so that the guest does not change it.
    pub fn save_devices(&self) -> DevicesState {
        DevicesState {
            serial: self.uarts.iter().map(|(i, u)| (*i, save_uart(u))).collect(),
            ged_pending: lock(&self.ged).pending(),
            virtio: self.transports.iter().map(|t| lock(t).state()).collect(),
        }
    }

    /// Load saved device state; the VM must have the same serial ports.
    pub fn restore_devices(&self, state: &DevicesState) -> Result<(), VmmError> {
        for (index, saved) in &state.serial {
            let (_, uart) = self.uarts.iter().find(|(i, _)| i == index).ok_or_else(|| {
                VmmError::Config(format!(
                    "the saved state has COM{} but this VM does not",
                    index + 1
                ))
            })?;
            restore_uart(uart, saved).map_err(|source| VmmError::Io {
                what: format!("restoring COM{}", index + 1),
                source,
            })?;
        }
        lock(&self.ged).restore(state.ged_pending);
        if state.virtio.len() != self.transports.len() {
            return Err(VmmError::Config(format!(
                "the saved state has {} virtio devices, this VM {}",
                state.virtio.len(),
                self.transports.len()
            )));
        }
        for (i, (t, s)) in self.transports.iter().zip(&state.virtio).enumerate() {
            lock(t)
                .restore(s)
                .map_err(|e| VmmError::Snapshot(format!("virtio device {i}: {e}")))?;
        }
        Ok(())
    }

    /// Press the ACPI power button (through the GED).
    pub fn power_button(&self) {
        lock(&self.ged).notify(GED_POWER_BUTTON);
    }

    /// The power button, to press from another thread (after a guest
    /// request that ran off the monitor's loop failed).
    pub fn power_button_handle(&self) -> PowerButton {
        PowerButton(self.ged.clone())
    }

    /// Inject an NMI into vCPU 0 (HcsCrashComputeSystem).
    pub fn inject_nmi(&self) -> Result<(), VmmError> {
        let v = self
            .vcpus
            .first()
            .ok_or_else(|| VmmError::State("the VM has not started".into()))?;
        v.inject_nmi();
        Ok(())
    }

    /// The serial ports' sockets this VM bound: each path with the identity
    /// of the socket file bound there.
    pub fn owned_sockets(&self) -> Vec<(std::path::PathBuf, crate::devices::serial::SocketId)> {
        self.sockets
            .iter()
            .map(|s| {
                let (p, id) = s.path_and_id();
                (p.to_path_buf(), id)
            })
            .collect()
    }

    /// Close the serial ports' sockets and remove those this VM made (a
    /// stopped VM's ports accept no console; the monitor may live on while
    /// clients hold handles).
    pub fn close_serial_sockets(&mut self) {
        self.sockets.clear();
        // Connected consoles end too: a console of a stopped VM reads its
        // end of file, not silence.
        for (_, console) in &self.consoles {
            lock(console).close_clients();
        }
    }

    /// Reset every virtio device of the stopped VM: their threads end and
    /// what they hold on the host goes (a vsock device's connections: a
    /// client reading from a dead guest reads its end of file instead of
    /// waiting for ever).
    pub fn reset_devices(&mut self) {
        for t in &self.transports {
            lock(t).reset();
        }
    }

    /// Stop the VM now (terminate). Its exit reason becomes `Killed` unless
    /// it had already stopped by itself.
    pub fn kill(&self) {
        self.stop_with(VmExit::Killed);
    }

    /// Stop the VM, recording why (unless it already stopped).
    pub fn stop_with(&self, reason: VmExit) {
        record_exit(&self.exit, &self.exit_evt, reason);
        for v in &self.vcpus {
            v.request(Want::Exit);
        }
    }

    /// Readable (eventfd) once the VM has stopped; the monitor polls it.
    pub fn exit_fd(&self) -> RawFd {
        self.exit_evt.as_raw_fd()
    }

    /// Why it stopped, once it has. Also stops the remaining vCPUs.
    pub fn exit_reason(&self) -> Option<VmExit> {
        let _ = self.exit_evt.read();
        let reason = lock(&self.exit).reason.clone();
        if reason.is_some() {
            for v in &self.vcpus {
                v.request(Want::Exit);
            }
        }
        reason
    }

    /// Wait for every vCPU thread to end.
    pub fn join(&mut self) {
        for v in &mut self.vcpus {
            v.join();
        }
    }

    /// What the serial ports printed (up to 64 KiB each), by port index.
    pub fn console_history(&self, index: u8) -> Option<Vec<u8>> {
        self.consoles
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, c)| lock(c).history())
    }

    /// Counters for Properties.Statistics.
    pub fn stats(&self) -> VmStats {
        VmStats {
            vcpu_time_ns: self.vcpus.iter().map(|v| v.cpu_time_ns()).sum(),
            exits: self
                .vcpus
                .iter()
                .map(|v| v.shared.exits.load(std::sync::atomic::Ordering::Relaxed))
                .sum(),
            guest_rss_bytes: resident_bytes(&self.memory),
            memory_bytes: self.memory_bytes,
            unclaimed_accesses: self.pio.unclaimed_accesses() + self.mmio.unclaimed_accesses(),
        }
    }

    /// Guest memory size in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// The KVM VM (for devices added by later layers).
    pub fn vm_fd(&self) -> &Arc<VmFd> {
        &self.vm
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        self.join();
        // What the guest probed for that this platform does not have (Linux
        // should find nothing to probe: see the FADT's IAPC_BOOT_ARCH).
        for bus in [&self.pio, &self.mmio] {
            let total = bus.unclaimed_accesses();
            if total > 0 {
                let by_address: Vec<String> = bus
                    .unclaimed_by_address()
                    .iter()
                    .map(|(addr, n)| format!("{addr:#x} ({n})"))
                    .collect();
                tracing::info!(
                    bus = bus.name(),
                    total,
                    by_address = by_address.join(", "),
                    "guest accesses to nothing"
                );
            }
        }
    }
}

fn shared<D: BusDevice + 'static>(d: D) -> SharedDevice {
    Arc::new(Mutex::new(d))
}

fn record_exit(exit: &Mutex<ExitState>, evt: &EventFd, reason: VmExit) {
    let mut e = lock(exit);
    if e.reason.is_none() {
        tracing::info!(?reason, "VM stopped");
        e.reason = Some(reason);
        let _ = evt.write(1);
    }
}

/// Resident guest memory, by mincore(2) over every region.
fn resident_bytes(mem: &GuestMemoryMmap) -> u64 {
    let page = 4096usize;
    let mut total = 0u64;
    for region in mem.iter() {
        let Ok(host) = mem.get_host_address(region.start_addr()) else {
            continue;
        };
        let len = region.len() as usize;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: `host..host+len` is the region's live mapping and `vec`
        // has one byte per page of it.
        let rc = unsafe { libc::mincore(host.cast::<libc::c_void>(), len, vec.as_mut_ptr()) };
        if rc == 0 {
            total += vec.iter().filter(|b| **b & 1 != 0).count() as u64 * page as u64;
        }
    }
    total
}

/// The i8042's data port (0x60) and command port (0x64) share one
/// controller; vm-superio's device takes the port offset relative to 0x60.
struct I8042Port(Arc<Mutex<I8042>>);
struct I8042Command(Arc<Mutex<I8042>>);

impl BusDevice for I8042Port {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        lock(&self.0).read(0, data)
    }
    fn write(&mut self, _offset: u64, data: &[u8]) {
        lock(&self.0).write(0, data)
    }
}

impl BusDevice for I8042Command {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        lock(&self.0).read(4, data)
    }
    fn write(&mut self, _offset: u64, data: &[u8]) {
        lock(&self.0).write(4, data)
    }
}
