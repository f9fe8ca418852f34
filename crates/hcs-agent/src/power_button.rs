//! The ACPI power button, as the guest's init. Linux's button driver only
//! reports a press as a KEY_POWER input event; with no logind or acpid in
//! the guest, PID 1 must act on it: the VMM presses the button (through the
//! GED) when the host shuts the VM down without a guest connection.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use hcs_agent_protocol::ShutdownAction;

/// `EV_KEY` in `struct input_event`.
const EV_KEY: u16 = 1;
/// `KEY_POWER` (linux/input-event-codes.h).
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit Linux: a 16-byte timeval, type u16,
/// code u16, value i32.
const INPUT_EVENT_LEN: usize = 24;

/// One decoded input event: is it a press of KEY_POWER?
pub fn is_power_press(event: &[u8; INPUT_EVENT_LEN]) -> bool {
    let ty = u16::from_ne_bytes([event[16], event[17]]);
    let code = u16::from_ne_bytes([event[18], event[19]]);
    let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
    ty == EV_KEY && code == KEY_POWER && value == 1
}

/// Does the input device `sys` (a /sys/class/input/inputN directory) have a
/// KEY_POWER key? Its `capabilities/key` is a bitmap in hexadecimal words
/// (one `unsigned long` each), most significant first.
pub fn has_power_key(sys: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(sys.join("capabilities/key")) else {
        return false;
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let bits = u64::BITS as usize;
    let (word, bit) = (usize::from(KEY_POWER) / bits, usize::from(KEY_POWER) % bits);
    let Some(index) = words.len().checked_sub(word + 1) else {
        return false;
    };
    u64::from_str_radix(words[index], 16).is_ok_and(|w| w & (1 << bit) != 0)
}

/// The event devices (/dev/input/eventN) of input devices with a power key.
fn power_key_devices() -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir("/sys/class/input") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("event")) else {
            continue;
        };
        // eventN/device is the inputN directory with the capabilities.
        if has_power_key(&entry.path().join("device")) {
            found.push(Path::new("/dev/input").join(name));
        }
    }
    found.sort();
    found
}

/// Watch every power key (one thread each): a press syncs, stops every
/// process and powers off, as a logind would.
pub fn watch() {
    let devices = power_key_devices();
    if devices.is_empty() {
        crate::log!("no power button input device (button and evdev modules?)");
        return;
    }
    for dev in devices {
        let file = match File::open(&dev) {
            Ok(f) => f,
            Err(e) => {
                crate::log!("power button {}: {e}", dev.display());
                continue;
            }
        };
        crate::log!("watching the power button on {}", dev.display());
        let spawned = std::thread::Builder::new()
            .name("power-button".into())
            .spawn(move || watch_device(file, &dev));
        if let Err(e) = spawned {
            crate::log!("starting the power button thread: {e}");
        }
    }
}

fn watch_device(mut file: File, dev: &Path) {
    let mut event = [0u8; INPUT_EVENT_LEN];
    loop {
        // evdev hands out whole events per read.
        if let Err(e) = file.read_exact(&mut event) {
            crate::log!("power button {}: {e}", dev.display());
            return;
        }
        if is_power_press(&event) {
            crate::log!("power button pressed: powering off");
            crate::init::power_off(ShutdownAction::PowerOff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ty: u16, code: u16, value: i32) -> [u8; INPUT_EVENT_LEN] {
        let mut e = [0u8; INPUT_EVENT_LEN];
        e[16..18].copy_from_slice(&ty.to_ne_bytes());
        e[18..20].copy_from_slice(&code.to_ne_bytes());
        e[20..24].copy_from_slice(&value.to_ne_bytes());
        e
    }

    #[test]
    fn only_a_power_key_press_counts() {
        assert!(is_power_press(&event(EV_KEY, KEY_POWER, 1)));
        assert!(!is_power_press(&event(EV_KEY, KEY_POWER, 0)), "release");
        assert!(!is_power_press(&event(0, 0, 0)), "SYN_REPORT");
        assert!(!is_power_press(&event(EV_KEY, 30, 1)), "KEY_A");
    }

    #[test]
    fn the_key_bitmap_is_read_from_its_last_word() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("capabilities")).unwrap();
        let write = |s: &str| std::fs::write(dir.path().join("capabilities/key"), s).unwrap();
        // Linux's "Power Button" device: bit 116 = word 1, bit 52.
        write("10000000000000 0\n");
        assert!(has_power_key(dir.path()));
        write("0\n");
        assert!(!has_power_key(dir.path()));
        // A keyboard with many keys, power among them.
        write("1 0 0 0 0 0 0 10000000000000 0\n");
        assert!(has_power_key(dir.path()));
        write("zz 0\n");
        assert!(!has_power_key(dir.path()));
    }
}
