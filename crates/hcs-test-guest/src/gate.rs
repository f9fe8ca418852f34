//! The post-link gate for the test guest (shared/reference/test-guest.md §2.5).
//!
//! On kvm_pvm, ring-0 guest code is emulated, and the emulator kills the VM
//! on SSE, XSAVE/XRSTOR, CMPXCHG16B and protected-mode INT3. The gate
//! disassembles the linked ELF (`objdump -d`) and lists its symbols (`nm`)
//! and fails if it finds any such instruction, or any `core::fmt` or
//! `core::panicking` symbol (the precompiled libcore's formatting code is
//! where SSE comes from). Exactly one instruction is allowed: the
//! `xorps %xmm0,%xmm0` in `hcs_badinsn_sse`, which the guest executes on
//! purpose for the `badinsn` command.
//!
//! Used by this crate's build script (through `#[path]`) and by its tests.
//! `OBJDUMP` and `NM` override the tool names.

use std::path::Path;
use std::process::Command;

/// The only function allowed to hold a flagged instruction.
pub const WHITELISTED_FUNCTION: &str = "hcs_badinsn_sse";
/// The only flagged instruction allowed there (objdump's AT&T spelling,
/// whitespace-normalised).
pub const WHITELISTED_INSTRUCTION: &str = "xorps %xmm0,%xmm0";

/// Substrings of a disassembled instruction that fail the gate.
pub const BAD_INSTRUCTION_PATTERNS: &[&str] = &[
    "xmm",
    "ymm",
    "zmm",
    "%mm0",
    "%mm1",
    "%mm2",
    "%mm3",
    "%mm4",
    "%mm5",
    "%mm6",
    "%mm7",
    "xsave",
    "xrstor",
    "fxsave",
    "fxrstor",
    "cmpxchg16b",
    "ldmxcsr",
    "stmxcsr",
    "vzero",
    "emms",
    "movnti",
    "mfence",
    "lfence",
    "sfence",
    "int3",
];

/// Substrings of a symbol name that fail the gate (legacy and v0 mangling,
/// and demangled names in case the tool demangles).
pub const BAD_SYMBOL_PATTERNS: &[&str] = &[
    "4core3fmt",
    "4core9panicking",
    "core::fmt",
    "core::panicking",
];

/// What the gate found.
#[derive(Debug, Default, Clone)]
pub struct GateReport {
    /// Instructions disassembled.
    pub instructions: usize,
    /// Flagged instructions outside the whitelist, as `function: text`.
    pub bad_instructions: Vec<String>,
    /// `int3` instructions (also counted in `bad_instructions`).
    pub int3: usize,
    /// Whitelisted instructions found (1 in a correct build).
    pub whitelisted: usize,
    /// `core::fmt` / `core::panicking` symbols.
    pub bad_symbols: Vec<String>,
    /// Undefined symbols (a static guest has none).
    pub undefined_symbols: Vec<String>,
}

impl GateReport {
    /// Did the ELF pass?
    pub fn passed(&self) -> bool {
        self.bad_instructions.is_empty()
            && self.bad_symbols.is_empty()
            && self.undefined_symbols.is_empty()
            && self.whitelisted <= 1
            && self.instructions > 0
    }

    /// One line, as in test-guest.md, plus the whitelist count.
    pub fn summary(&self) -> String {
        format!(
            "gate {}: instructions={} sse-like-insns={} int3={} core-fmt/panicking-symbols={} \
             undefined-symbols={} whitelisted={}:{}",
            if self.passed() { "pass" } else { "FAIL" },
            self.instructions,
            self.bad_instructions.len(),
            self.int3,
            self.bad_symbols.len(),
            self.undefined_symbols.len(),
            WHITELISTED_FUNCTION,
            self.whitelisted,
        )
    }

    /// A multi-line explanation of a failure.
    pub fn details(&self) -> String {
        let mut s = self.summary();
        for (what, list) in [
            ("instruction", &self.bad_instructions),
            ("symbol", &self.bad_symbols),
            ("undefined symbol", &self.undefined_symbols),
        ] {
            for item in list.iter().take(40) {
                s.push_str(&format!("\n  bad {what}: {item}"));
            }
            if list.len() > 40 {
                s.push_str(&format!("\n  … and {} more", list.len() - 40));
            }
        }
        if self.whitelisted > 1 {
            s.push_str(&format!(
                "\n  {WHITELISTED_FUNCTION} holds {} copies of `{WHITELISTED_INSTRUCTION}`, expected at most 1",
                self.whitelisted
            ));
        }
        s
    }
}

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn run(program: &str, args: &[&str], elf: &Path) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .arg(elf)
        .output()
        .map_err(|e| {
            format!(
                "the test-guest post-link gate needs `{program}` (GNU binutils; set OBJDUMP/NM to \
             override): cannot run it: {e}"
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` {} failed ({}): {}",
            args.join(" "),
            elf.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Scans objdump's `-d --no-show-raw-insn` output.
pub fn scan_disassembly(text: &str, report: &mut GateReport) {
    let mut function = String::new();
    for line in text.lines() {
        let t = line.trim_end();
        // "0000000000200477 <hcs_badinsn_sse>:"
        if let (Some(a), true) = (t.find('<'), t.ends_with(">:")) {
            if t[..a].trim().chars().all(|c| c.is_ascii_hexdigit()) && a > 0 {
                function = t[a + 1..t.len() - 2].to_string();
                continue;
            }
        }
        // "  200477:\txorps  %xmm0,%xmm0"
        let Some((addr, insn)) = t.split_once(':') else {
            continue;
        };
        let addr = addr.trim();
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let insn = insn.split_whitespace().collect::<Vec<_>>().join(" ");
        if insn.is_empty() {
            continue;
        }
        report.instructions += 1;
        // Drop a trailing symbolic comment such as "# 203000 <X>" or "<X+0x10>".
        let code = insn.split(" #").next().unwrap_or(&insn);
        let code = match code.find(" <") {
            Some(i) => &code[..i],
            None => code,
        };
        if !BAD_INSTRUCTION_PATTERNS.iter().any(|p| code.contains(p)) {
            continue;
        }
        if function == WHITELISTED_FUNCTION && code == WHITELISTED_INSTRUCTION {
            report.whitelisted += 1;
            continue;
        }
        if code.contains("int3") {
            report.int3 += 1;
        }
        report
            .bad_instructions
            .push(format!("{function}: {addr}: {code}"));
    }
}

/// Scans `nm` output ("address type name" or "         U name").
pub fn scan_symbols(text: &str, report: &mut GateReport) {
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, name) = match fields.as_slice() {
            [_, kind, name, ..] => (*kind, *name),
            [kind, name] => (*kind, *name),
            _ => continue,
        };
        if kind == "U" || kind == "w" || kind == "v" {
            report.undefined_symbols.push(name.to_string());
        }
        if BAD_SYMBOL_PATTERNS.iter().any(|p| name.contains(p)) {
            report.bad_symbols.push(name.to_string());
        }
    }
}

/// Runs the gate on a linked guest ELF.
pub fn check(elf: &Path) -> Result<GateReport, String> {
    let objdump = tool("OBJDUMP", "objdump");
    let nm = tool("NM", "nm");
    let mut report = GateReport::default();
    scan_disassembly(
        &run(&objdump, &["-d", "--no-show-raw-insn"], elf)?,
        &mut report,
    );
    scan_symbols(&run(&nm, &[], elf)?, &mut report);
    Ok(report)
}
