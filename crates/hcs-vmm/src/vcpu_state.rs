//! The state of a vCPU and of the VM's in-kernel devices, as KVM holds it,
//! for save and restore (HcsSaveComputeSystem, RestoreState).
//!
//! The structures are kvm-bindings' own, serialized with its `serde`
//! feature. The order of the set calls on restore matters and follows what
//! KVM expects (and Firecracker does): MP state, registers, special
//! registers, FPU/XSAVE, XCRs, debug registers, LAPIC, MSRs, and the
//! pending events last, since setting the LAPIC or MSRs can change them.

use kvm_bindings::{
    kvm_clock_data, kvm_debugregs, kvm_irqchip, kvm_lapic_state, kvm_mp_state, kvm_msr_entry,
    kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, Msrs,
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
};
use kvm_ioctls::{VcpuFd, VmFd};
use serde::{Deserialize, Serialize};

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A KVM call failed.
    #[error("{what}: {source}")]
    Kvm {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    /// KVM took fewer MSRs than it was given.
    #[error("KVM accepted {set} of {total} MSRs (it refused MSR {refused:#x})")]
    Msrs {
        set: usize,
        total: usize,
        refused: u32,
    },
    /// Too many MSRs for one call.
    #[error("{0} MSRs are more than KVM takes in one call")]
    TooManyMsrs(usize),
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> StateError {
    move |source| StateError::Kvm { what, source }
}

/// Everything KVM holds for one vCPU.
#[derive(Serialize, Deserialize)]
pub struct VcpuState {
    /// Multiprocessing state (runnable, halted, waiting for SIPI).
    pub mp_state: kvm_mp_state,
    /// General-purpose registers.
    pub regs: kvm_regs,
    /// Segment, control and descriptor-table registers.
    pub sregs: kvm_sregs,
    /// FPU, SSE and AVX state.
    pub xsave: kvm_xsave,
    /// Extended control registers (XCR0).
    pub xcrs: kvm_xcrs,
    /// Debug registers.
    pub debug_regs: kvm_debugregs,
    /// The local APIC's registers.
    pub lapic: kvm_lapic_state,
    /// Model-specific registers, the ones KVM lists as saveable.
    pub msrs: Vec<kvm_msr_entry>,
    /// Pending exceptions, interrupts and NMIs.
    pub events: kvm_vcpu_events,
}

impl std::fmt::Debug for VcpuState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcpuState")
            .field("rip", &format_args!("{:#x}", self.regs.rip))
            .field("msrs", &self.msrs.len())
            .finish_non_exhaustive()
    }
}

/// Read the listed MSRs. KVM stops at the first it cannot read; that one
/// is skipped (it is not saveable on this host) and reading goes on.
fn read_msrs(fd: &VcpuFd, indices: &[u32]) -> Result<Vec<kvm_msr_entry>, StateError> {
    let mut out = Vec::with_capacity(indices.len());
    let mut rest = indices;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs =
            Msrs::from_entries(&entries).map_err(|_| StateError::TooManyMsrs(entries.len()))?;
        let n = fd.get_msrs(&mut msrs).map_err(kvm("reading MSRs"))?;
        out.extend_from_slice(&msrs.as_slice()[..n.min(entries.len())]);
        // Skip the MSR KVM refused, if it stopped early.
        rest = rest.get(n + 1..).unwrap_or(&[]);
    }
    Ok(out)
}

impl VcpuState {
    /// Read the state of a vCPU that is not running (call it on its thread).
    pub fn save(fd: &VcpuFd, msr_indices: &[u32]) -> Result<VcpuState, StateError> {
        Ok(VcpuState {
            mp_state: fd.get_mp_state().map_err(kvm("reading the MP state"))?,
            regs: fd.get_regs().map_err(kvm("reading the registers"))?,
            sregs: fd
                .get_sregs()
                .map_err(kvm("reading the special registers"))?,
            xsave: fd.get_xsave().map_err(kvm("reading the XSAVE area"))?,
            xcrs: fd.get_xcrs().map_err(kvm("reading the XCRs"))?,
            debug_regs: fd
                .get_debug_regs()
                .map_err(kvm("reading the debug registers"))?,
            lapic: fd.get_lapic().map_err(kvm("reading the local APIC"))?,
            msrs: read_msrs(fd, msr_indices)?,
            events: fd
                .get_vcpu_events()
                .map_err(kvm("reading the pending events"))?,
        })
    }

    /// Load this state into a vCPU that is not running.
    pub fn restore(&self, fd: &VcpuFd) -> Result<(), StateError> {
        fd.set_mp_state(self.mp_state)
            .map_err(kvm("setting the MP state"))?;
        fd.set_regs(&self.regs)
            .map_err(kvm("setting the registers"))?;
        fd.set_sregs(&self.sregs)
            .map_err(kvm("setting the special registers"))?;
        // SAFETY: the XSAVE area was produced by KVM_GET_XSAVE (same
        // layout); KVM validates its contents and refuses what it cannot load.
        unsafe { fd.set_xsave(&self.xsave) }.map_err(kvm("setting the XSAVE area"))?;
        fd.set_xcrs(&self.xcrs).map_err(kvm("setting the XCRs"))?;
        fd.set_debug_regs(&self.debug_regs)
            .map_err(kvm("setting the debug registers"))?;
        fd.set_lapic(&self.lapic)
            .map_err(kvm("setting the local APIC"))?;
        let msrs =
            Msrs::from_entries(&self.msrs).map_err(|_| StateError::TooManyMsrs(self.msrs.len()))?;
        let set = fd.set_msrs(&msrs).map_err(kvm("setting MSRs"))?;
        if set != self.msrs.len() {
            return Err(StateError::Msrs {
                set,
                total: self.msrs.len(),
                refused: self.msrs.get(set).map_or(0, |m| m.index),
            });
        }
        fd.set_vcpu_events(&self.events)
            .map_err(kvm("setting the pending events"))?;
        Ok(())
    }
}

/// The VM-wide state KVM emulates: the interrupt controllers, the PIT and
/// the kvmclock.
#[derive(Clone, Serialize, Deserialize)]
pub struct VmState {
    /// Master 8259.
    pub pic_master: kvm_irqchip,
    /// Slave 8259.
    pub pic_slave: kvm_irqchip,
    /// The IOAPIC.
    pub ioapic: kvm_irqchip,
    /// The PIT.
    pub pit: kvm_pit_state2,
    /// The kvmclock.
    pub clock: kvm_clock_data,
}

impl std::fmt::Debug for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmState")
            .field("clock", &self.clock.clock)
            .finish_non_exhaustive()
    }
}

fn irqchip(vm: &VmFd, chip_id: u32, what: &'static str) -> Result<kvm_irqchip, StateError> {
    let mut chip = kvm_irqchip {
        chip_id,
        ..Default::default()
    };
    vm.get_irqchip(&mut chip).map_err(kvm(what))?;
    Ok(chip)
}

impl VmState {
    /// Read it (every vCPU paused).
    pub fn save(vm: &VmFd) -> Result<VmState, StateError> {
        let mut clock = vm.get_clock().map_err(kvm("reading the kvmclock"))?;
        // The flags say how the clock was read; KVM_SET_CLOCK refuses most.
        clock.flags = 0;
        Ok(VmState {
            pic_master: irqchip(vm, KVM_IRQCHIP_PIC_MASTER, "reading the master PIC")?,
            pic_slave: irqchip(vm, KVM_IRQCHIP_PIC_SLAVE, "reading the slave PIC")?,
            ioapic: irqchip(vm, KVM_IRQCHIP_IOAPIC, "reading the IOAPIC")?,
            pit: vm.get_pit2().map_err(kvm("reading the PIT"))?,
            clock,
        })
    }

    /// Load it into a VM whose vCPUs are not running.
    pub fn restore(&self, vm: &VmFd) -> Result<(), StateError> {
        vm.set_pit2(&self.pit).map_err(kvm("setting the PIT"))?;
        vm.set_clock(&self.clock)
            .map_err(kvm("setting the kvmclock"))?;
        vm.set_irqchip(&self.pic_master)
            .map_err(kvm("setting the master PIC"))?;
        vm.set_irqchip(&self.pic_slave)
            .map_err(kvm("setting the slave PIC"))?;
        vm.set_irqchip(&self.ioapic)
            .map_err(kvm("setting the IOAPIC"))?;
        Ok(())
    }
}
