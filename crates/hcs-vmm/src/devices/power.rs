//! The small platform devices: the ACPI hardware-reduced sleep/reset
//! registers, the Generic Event Device that carries the power button, the
//! i8042 reset line, pvpanic, and the boot-progress port.

use std::sync::Arc;

use super::BusDevice;
use crate::layout;

/// What the guest asks of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestRequest {
    /// ACPI S5: power off.
    PowerOff,
    /// Reset (ACPI reset register or the i8042's reset line).
    Reset,
    /// The guest panicked (pvpanic) with these event bits.
    Panic(u8),
}

/// Where devices send guest requests.
pub type RequestSink = Arc<dyn Fn(GuestRequest) + Send + Sync>;

/// SLP_EN in the sleep control register.
const SLP_EN: u8 = 1 << 5;
/// WAK_STS in the sleep status register.
const WAK_STS: u8 = 1 << 7;

/// The FADT's hardware-reduced SLEEP_CONTROL, SLEEP_STATUS and RESET
/// registers, three consecutive I/O ports from
/// [`layout::ACPI_SLEEP_CONTROL_PORT`].
pub struct AcpiPm {
    sink: RequestSink,
}

impl AcpiPm {
    /// The registers; requests go to `sink`.
    pub fn new(sink: RequestSink) -> AcpiPm {
        AcpiPm { sink }
    }

    /// Ports taken, from the base.
    pub const LEN: u64 = 3;
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        // The status register reports "woken" so a guest polling it after a
        // sleep request that we do not support moves on.
        if offset == u64::from(layout::ACPI_SLEEP_STATUS_PORT - layout::ACPI_SLEEP_CONTROL_PORT) {
            if let Some(b) = data.first_mut() {
                *b = WAK_STS;
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        let control = 0;
        let reset = u64::from(layout::ACPI_RESET_PORT - layout::ACPI_SLEEP_CONTROL_PORT);
        match offset {
            o if o == control && value & SLP_EN != 0 => {
                let slp_typ = (value >> 2) & 0x7;
                if slp_typ == layout::ACPI_S5_SLP_TYP {
                    (self.sink)(GuestRequest::PowerOff);
                } else {
                    tracing::info!(
                        slp_typ,
                        "guest asked for a sleep state other than S5; ignored"
                    );
                }
            }
            o if o == reset && value == layout::ACPI_RESET_VALUE => {
                (self.sink)(GuestRequest::Reset)
            }
            _ => {}
        }
    }
}

/// The Generic Event Device's event register (one byte at
/// [`layout::GED_MMIO_START`]): bit 0 is the power button. Reading returns
/// the pending bits and clears them, and lowers the (level-triggered)
/// interrupt; the VMM sets bits and raises it.
pub struct Ged {
    pending: u8,
    irq: Box<dyn Fn(bool) + Send>,
}

/// GED event bit: the power button was pressed.
pub const GED_POWER_BUTTON: u8 = 1;

impl Ged {
    /// The register; `irq(level)` drives the GED's GSI.
    pub fn new(irq: Box<dyn Fn(bool) + Send>) -> Ged {
        Ged { pending: 0, irq }
    }

    /// Events raised and not yet read by the guest (for save).
    pub fn pending(&self) -> u8 {
        self.pending
    }

    /// Load saved pending events, with the interrupt line to match.
    pub fn restore(&mut self, pending: u8) {
        self.pending = pending;
        (self.irq)(pending != 0);
    }

    /// Raise an event (from the VMM).
    pub fn notify(&mut self, bits: u8) {
        self.pending |= bits;
        (self.irq)(true);
    }
}

impl BusDevice for Ged {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == 0 {
            if let Some(b) = data.first_mut() {
                *b = self.pending;
            }
            self.pending = 0;
            (self.irq)(false);
        }
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) {}
}

/// The i8042 keyboard controller, for its reset line (command 0xFE on port
/// 0x64), built on vm-superio's device.
pub struct I8042 {
    inner: vm_superio::I8042Device<SinkTrigger>,
}

/// Turns vm-superio's reset trigger into a [`GuestRequest::Reset`].
pub struct SinkTrigger(RequestSink);

impl vm_superio::Trigger for SinkTrigger {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        (self.0)(GuestRequest::Reset);
        Ok(())
    }
}

impl I8042 {
    /// The controller; a reset goes to `sink`.
    pub fn new(sink: RequestSink) -> I8042 {
        I8042 {
            inner: vm_superio::I8042Device::new(SinkTrigger(sink)),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = self.inner.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(&b) = data.first() {
            let _ = self.inner.write(offset as u8, b);
        }
    }
}

/// pvpanic (QEMU0001): reading gives the supported events, writing reports one.
pub struct PvPanic {
    sink: RequestSink,
}

/// pvpanic event: the guest panicked.
pub const PVPANIC_PANICKED: u8 = 1;
/// pvpanic event: a crash kernel is loaded.
pub const PVPANIC_CRASH_LOADED: u8 = 2;

impl PvPanic {
    /// The device; panics go to `sink`.
    pub fn new(sink: RequestSink) -> PvPanic {
        PvPanic { sink }
    }
}

impl BusDevice for PvPanic {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
        }
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if let Some(&b) = data.first() {
            if b & PVPANIC_PANICKED != 0 {
                (self.sink)(GuestRequest::Panic(b));
            }
        }
    }
}

/// The POST/boot-progress port (0x80): the guest writes milestone bytes;
/// the VMM logs the first one's time after start (the idea of Firecracker's
/// boot timer).
pub struct BootMarker {
    started: std::time::Instant,
    seen: u32,
}

impl BootMarker {
    /// Start counting now.
    pub fn new() -> BootMarker {
        BootMarker {
            started: std::time::Instant::now(),
            seen: 0,
        }
    }
}

impl Default for BootMarker {
    fn default() -> Self {
        BootMarker::new()
    }
}

impl BusDevice for BootMarker {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if self.seen < 16 {
            self.seen += 1;
            tracing::debug!(value = data.first().copied().unwrap_or(0), elapsed = ?self.started.elapsed(), "guest boot marker");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn sink() -> (RequestSink, Arc<Mutex<Vec<GuestRequest>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        (Arc::new(move |r| g.lock().unwrap().push(r)), got)
    }

    #[test]
    fn s5_and_reset_through_the_acpi_registers() {
        let (s, got) = sink();
        let mut pm = AcpiPm::new(s);
        pm.write(0, &[(3 << 2) | SLP_EN]); // S3: ignored
        pm.write(0, &[layout::ACPI_S5_SLP_TYP << 2]); // no SLP_EN: ignored
        pm.write(0, &[(layout::ACPI_S5_SLP_TYP << 2) | SLP_EN]);
        pm.write(2, &[0x7]); // wrong reset value
        pm.write(2, &[layout::ACPI_RESET_VALUE]);
        assert_eq!(
            *got.lock().unwrap(),
            vec![GuestRequest::PowerOff, GuestRequest::Reset]
        );
        let mut b = [0u8];
        pm.read(1, &mut b);
        assert_eq!(b[0], WAK_STS);
    }

    #[test]
    fn ged_reads_clear_and_lower_the_line() {
        let level = Arc::new(Mutex::new(Vec::new()));
        let l = level.clone();
        let mut ged = Ged::new(Box::new(move |v| l.lock().unwrap().push(v)));
        ged.notify(GED_POWER_BUTTON);
        let mut b = [0u8];
        ged.read(0, &mut b);
        assert_eq!(b[0], GED_POWER_BUTTON);
        ged.read(0, &mut b);
        assert_eq!(b[0], 0);
        assert_eq!(*level.lock().unwrap(), vec![true, false, false]);
    }

    #[test]
    fn i8042_reset_and_pvpanic() {
        let (s, got) = sink();
        let mut kbd = I8042::new(s.clone());
        kbd.write(4, &[0xfe]);
        let mut p = PvPanic::new(s);
        let mut b = [0u8];
        p.read(0, &mut b);
        assert_eq!(b[0], 3);
        p.write(0, &[PVPANIC_PANICKED]);
        assert_eq!(
            *got.lock().unwrap(),
            vec![GuestRequest::Reset, GuestRequest::Panic(1)]
        );
    }
}
