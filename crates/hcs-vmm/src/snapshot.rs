//! Saving a paused VM to a state file plus a sparse memory file, and the
//! saved state a new VM is created from (`hcs-snapshot` holds the format).
//!
//! The state file's sections: `machine` (what the VM was: memory, vCPUs,
//! devices, the memory file's name), `kvm.vm`, `kvm.vcpus`, `devices` and
//! `memory.layout`. The memory file sits next to the state file as
//! `<state file>.memory`; it is named relative to it, so the two can move
//! together.

use std::path::{Path, PathBuf};

use hcs_snapshot::memory::{MemoryLayout, MemoryTag};
use hcs_snapshot::{StateFile, StateWriter};
use serde::{Deserialize, Serialize};

use crate::vcpu_state::{VcpuState, VmState};
use crate::vm::{DevicesState, VmConfig, VmmError};

/// Version of this module's sections; a newer file is refused.
pub const SECTIONS_VERSION: u32 = 1;

/// What the saved VM was; a restore must describe the same machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineSection {
    /// Guest RAM in MiB.
    pub memory_mb: u64,
    /// vCPUs.
    pub vcpus: u8,
    /// Serial port indices.
    pub serial_ports: Vec<u8>,
    /// virtio-mmio transports.
    pub virtio_devices: usize,
    /// The memory file's name, in the state file's directory.
    pub memory_file: String,
}

impl MachineSection {
    /// The machine `cfg` describes.
    pub fn of(cfg: &VmConfig, memory_file: String) -> MachineSection {
        MachineSection {
            memory_mb: cfg.memory_mb,
            vcpus: cfg.vcpus,
            serial_ports: cfg.serial.iter().map(|(i, _)| *i).collect(),
            virtio_devices: cfg.virtio.count(),
            memory_file,
        }
    }

    /// Refuse a configuration that is not the saved machine.
    pub fn check_matches(&self, cfg: &VmConfig) -> Result<(), VmmError> {
        let now = MachineSection::of(cfg, self.memory_file.clone());
        let differ = |what: &str, saved: String, doc: String| {
            Err(VmmError::Config(format!(
                "the saved VM had {what} {saved}, the document asks for {doc}; a restore needs the same machine"
            )))
        };
        if now.memory_mb != self.memory_mb {
            return differ(
                "MiB of memory",
                self.memory_mb.to_string(),
                now.memory_mb.to_string(),
            );
        }
        if now.vcpus != self.vcpus {
            return differ("vCPUs", self.vcpus.to_string(), now.vcpus.to_string());
        }
        if now.serial_ports != self.serial_ports {
            return differ(
                "serial ports",
                format!("{:?}", self.serial_ports),
                format!("{:?}", now.serial_ports),
            );
        }
        if now.virtio_devices != self.virtio_devices {
            return differ(
                "virtio devices:",
                self.virtio_devices.to_string(),
                now.virtio_devices.to_string(),
            );
        }
        Ok(())
    }
}

/// Everything a VM is created back from.
#[derive(Debug)]
pub struct SavedVm {
    /// What it was.
    pub machine: MachineSection,
    /// Interrupt controllers, PIT, clock.
    pub vm: VmState,
    /// One per vCPU.
    pub vcpus: Vec<VcpuState>,
    /// Serial ports, GED.
    pub devices: DevicesState,
    /// Where guest memory is in the memory file.
    pub layout: MemoryLayout,
    /// The memory file.
    pub memory_path: PathBuf,
    /// The tag the memory file must carry (files saved before tags existed
    /// have none, and are restored unchecked).
    pub tag: Option<MemoryTag>,
}

fn state_err(path: &Path) -> impl Fn(hcs_snapshot::StateFileError) -> VmmError + '_ {
    move |e| VmmError::Snapshot(format!("{}: {e}", path.display()))
}

/// The memory file that goes with `state_path`.
pub fn memory_path_for(state_path: &Path) -> PathBuf {
    let mut p = state_path.as_os_str().to_owned();
    p.push(".memory");
    PathBuf::from(p)
}

/// Write the state file (the memory file is written by the caller first).
pub fn write_state(state_path: &Path, saved: &SavedVm) -> Result<(), VmmError> {
    let err = state_err(state_path);
    let mut w = StateWriter::new();
    w.add_serde("machine", SECTIONS_VERSION, &saved.machine)
        .map_err(&err)?;
    w.add_serde("kvm.vm", SECTIONS_VERSION, &saved.vm)
        .map_err(&err)?;
    w.add_serde("kvm.vcpus", SECTIONS_VERSION, &saved.vcpus)
        .map_err(&err)?;
    w.add_serde("devices", SECTIONS_VERSION, &saved.devices)
        .map_err(&err)?;
    w.add_serde(MemoryLayout::SECTION, SECTIONS_VERSION, &saved.layout)
        .map_err(&err)?;
    if let Some(tag) = &saved.tag {
        w.add_serde(MemoryTag::SECTION, MemoryTag::VERSION, tag)
            .map_err(&err)?;
    }
    w.write_to_path(state_path).map_err(&err)
}

/// Read and check a state file (the memory file is opened by the restore).
pub fn read_state(state_path: &Path) -> Result<SavedVm, VmmError> {
    let file = StateFile::open(state_path).map_err(state_err(state_path))?;
    saved_vm_of(&file, state_path)
}

/// Check and decode the sections of a state file read from `state_path`
/// (named in errors; the memory file is looked for next to it).
pub fn saved_vm_of(file: &StateFile, state_path: &Path) -> Result<SavedVm, VmmError> {
    let err = state_err(state_path);
    let machine: MachineSection = file.decode("machine", SECTIONS_VERSION).map_err(&err)?;
    let vcpus: Vec<VcpuState> = file.decode("kvm.vcpus", SECTIONS_VERSION).map_err(&err)?;
    if vcpus.len() != usize::from(machine.vcpus) {
        return Err(VmmError::Snapshot(format!(
            "{}: {} vCPU states for a machine with {} vCPUs",
            state_path.display(),
            vcpus.len(),
            machine.vcpus
        )));
    }
    let name = Path::new(&machine.memory_file);
    if name.components().count() != 1 || name.is_absolute() {
        return Err(VmmError::Snapshot(format!(
            "{}: the memory file name {:?} is not a plain file name",
            state_path.display(),
            machine.memory_file
        )));
    }
    let dir = state_path.parent().unwrap_or(Path::new("."));
    Ok(SavedVm {
        memory_path: dir.join(name),
        vm: file.decode("kvm.vm", SECTIONS_VERSION).map_err(&err)?,
        devices: file.decode("devices", SECTIONS_VERSION).map_err(&err)?,
        layout: file
            .decode(MemoryLayout::SECTION, SECTIONS_VERSION)
            .map_err(&err)?,
        tag: match file.get(MemoryTag::SECTION) {
            Some(_) => Some(
                file.decode(MemoryTag::SECTION, MemoryTag::VERSION)
                    .map_err(&err)?,
            ),
            None => None,
        },
        vcpus,
        machine,
    })
}
