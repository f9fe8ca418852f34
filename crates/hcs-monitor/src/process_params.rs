//! What `ProcessParameters` mean for a Linux process, shared by containers
//! and VMs: the Windows-only fields refused, the HCS fields as a
//! [`ProcessSpec`], and an `OciProcess` checked against them.

use hcs_container::ProcessSpec;
use hcs_errors::{HcsError, HcsResult};
use hcs_schema::ProcessParameters;
use oci_spec::runtime::LinuxSeccomp;

/// Console size when `EmulateConsole` has no `ConsoleSize`.
pub const DEFAULT_CONSOLE: (u16, u16) = (25, 80);

/// Refuses the fields no Linux process can honour (Windows tokens, logons,
/// consoles, LCOW's utility-VM flag) and a whole `OciSpecification`.
/// `system` says where the process was to run ("Linux containers", ...);
/// `oci_spec_why` why a spec does not belong on a process there.
pub fn refuse_unsupported(
    p: &ProcessParameters,
    system: &str,
    oci_spec_why: &str,
) -> HcsResult<()> {
    for (set, name) in [
        (p.restricted_token, "RestrictedToken"),
        (p.use_existing_login, "UseExistingLogin"),
        (p.use_legacy_console, "UseLegacyConsole"),
        (p.create_in_utility_vm, "CreateInUtilityVM"),
    ] {
        if set == Some(true) {
            return Err(HcsError::not_supported(format!(
                "ProcessParameters.{name} is not supported for {system}"
            )));
        }
    }
    if p.oci_specification.is_some() {
        return Err(HcsError::not_supported(format!(
            "ProcessParameters.OciSpecification: {oci_spec_why}"
        )));
    }
    Ok(())
}

/// A process given by HCS fields (CommandArgs, CommandLine, ...), without
/// stdio and with the default security.
pub fn plain_process_spec(p: &ProcessParameters) -> ProcessSpec {
    // Windows semantics: ApplicationName is the program, CommandLine (or,
    // on Linux, CommandArgs) its full argv, argv[0] included. Alone it is
    // both (`argv()`).
    let has_argv =
        p.command_line.is_some() || p.command_args.as_ref().is_some_and(|a| !a.is_empty());
    let executable = match &p.application_name {
        Some(app) if has_argv && !app.is_empty() => Some(app.clone()),
        _ => None,
    };
    let console = (p.emulate_console == Some(true)).then(|| {
        p.console_size
            .map(|[h, w]| (h.max(1), w.max(1)))
            .unwrap_or(DEFAULT_CONSOLE)
    });
    ProcessSpec {
        argv: p.argv(),
        executable,
        env: p
            .environment
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cwd: p.working_directory.clone(),
        user: p.user.clone(),
        console,
        ..ProcessSpec::default()
    }
}

/// A process given as an OCI runtime-spec `process` (`OciProcess`): it
/// says everything about the process but its stdio, so the HCS fields
/// that would say it again are refused rather than guessed between.
/// `seccomp` is the profile of the container it runs in, if any.
pub fn oci_process_spec(
    p: &ProcessParameters,
    oci: &serde_json::Value,
    seccomp: Option<&LinuxSeccomp>,
) -> HcsResult<ProcessSpec> {
    for (given, name, instead) in [
        (p.application_name.is_some(), "ApplicationName", "args"),
        (p.command_line.is_some(), "CommandLine", "args"),
        (p.command_args.is_some(), "CommandArgs", "args"),
        (p.environment.is_some(), "Environment", "env"),
        (p.user.is_some(), "User", "user"),
        (p.working_directory.is_some(), "WorkingDirectory", "cwd"),
    ] {
        if given {
            return Err(HcsError::invalid_arg(format!(
                "ProcessParameters.{name} cannot be combined with OciProcess, which gives the process \
                 (its `{instead}`); give one or the other"
            )));
        }
    }
    let mut process = ProcessSpec::from_oci(oci, seccomp)?;
    let terminal = process.console.is_some();
    match p.emulate_console {
        Some(emulate) if emulate != terminal => {
            return Err(HcsError::invalid_arg(format!(
            "ProcessParameters.EmulateConsole is {emulate} but OciProcess.terminal is {terminal}; \
                 leave EmulateConsole out or make them agree"
        )))
        }
        _ => {}
    }
    // The OCI consoleSize wins; else the HCS ConsoleSize.
    if let (Some(console), None, Some([h, w])) = (
        process.console.as_mut(),
        oci.get("consoleSize").filter(|v| !v.is_null()),
        p.console_size,
    ) {
        *console = (h.max(1), w.max(1));
    }
    Ok(process)
}
