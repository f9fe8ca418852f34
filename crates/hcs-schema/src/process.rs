//! Processes (reference section 5.7): what HcsCreateProcess takes and what
//! process queries and exit events return. Process requests (modify, signal)
//! are in [`crate::requests`].

use std::collections::BTreeMap;

use hcs_errors::HcsError;
use serde_json::Value;

use crate::cmdline::split_command_line;
use crate::fields::{self, Context, On};
use crate::validate::{self, error, index, member, Validate};

hcs_struct! {
    /// Document of HcsCreateProcess.
    pub struct ProcessParameters {
        /// Executable path (Windows semantics): the program run, with
        /// `CommandLine` or `CommandArgs` as its whole argv (argv[0] included);
        /// alone, both program and argv[0].
        "ApplicationName" => application_name: String,
        /// Single Windows-style command line; split with [`split_command_line`].
        "CommandLine" => command_line: String,
        /// argv array (documented as Linux-GCS only); preferred when present.
        "CommandArgs" => command_args: Vec<String>,
        /// User to run as (Linux: name or `uid[:gid]`).
        "User" => user: String,
        /// Working directory.
        "WorkingDirectory" => working_directory: String,
        /// Environment, name to value.
        "Environment" => environment: BTreeMap<String, String>,
        /// Run with a restricted token (Linux: drop capabilities, no_new_privs).
        "RestrictedToken" => restricted_token: bool,
        /// Allocate a console (Linux: PTY); stderr is not separate then.
        "EmulateConsole" => emulate_console: bool,
        /// Create a stdin pipe.
        "CreateStdInPipe" => create_std_in_pipe: bool,
        /// Create a stdout pipe.
        "CreateStdOutPipe" => create_std_out_pipe: bool,
        /// Create a stderr pipe. With `EmulateConsole` there is no separate
        /// stderr (it is the console, `StdOutput`): as in HCS, no stderr
        /// handle is returned (`StdError` is -1).
        "CreateStdErrPipe" => create_std_err_pipe: bool,
        /// Console size as `[height, width]`.
        "ConsoleSize" => console_size: [u16; 2],
        /// Reuse an existing logon session of `User` (Windows).
        "UseExistingLogin" => use_existing_login: bool,
        /// Legacy console host (Windows).
        "UseLegacyConsole" => use_legacy_console: bool,
        /// LCOW extension (hcsshim): run in the utility VM rather than in a
        /// container. The V1 spelling `CreateInUtilityVm` is accepted too.
        "CreateInUtilityVM" | "CreateInUtilityVm" => create_in_utility_vm: bool,
        /// LCOW extension (hcsshim): an OCI runtime-spec `process` object.
        "OciProcess" => oci_process: Value,
        /// LCOW extension (hcsshim): a full OCI runtime spec (first process of a container).
        "OciSpecification" => oci_specification: Value,
        /// Linux extension, not in Microsoft's schema: kill the process when
        /// the client connection that created it closes (the client exited
        /// or was killed). runhcs's holder process uses it, so that a holder
        /// killed by an engine takes its process with it, as runc's would.
        "TerminateWithCreator" => terminate_with_creator: bool,
    }
}

hcs_struct! {
    /// State of a process: EventData of HcsEventProcessExited, result of
    /// HcsWaitForProcessExit / HcsGetProcessProperties. Also the query of
    /// HcsGetProcessProperties, whose members select those of the result.
    pub struct ProcessStatus {
        /// Process id, 2.1.
        "ProcessId" => process_id: u32,
        /// Whether the process exited, 2.1.
        "Exited" => exited: bool,
        /// Exit code; valid only when `Exited` and `LastWaitResult` is S_OK, 2.1.
        "ExitCode" => exit_code: u32,
        /// HRESULT of waiting for the process, 2.1.
        "LastWaitResult" => last_wait_result: i32,
    }
}

hcs_struct! {
    /// One entry of `Properties.ProcessList`.
    pub struct ProcessDetails {
        /// Process id.
        "ProcessId" => process_id: u32,
        /// Image name.
        "ImageName" => image_name: String,
        /// Creation time, RFC 3339.
        "CreateTimestamp" => create_timestamp: String,
        /// User CPU time in 100 ns units.
        "UserTime100ns" => user_time_100ns: u64,
        /// Kernel CPU time in 100 ns units.
        "KernelTime100ns" => kernel_time_100ns: u64,
        /// Committed memory.
        "MemoryCommitBytes" => memory_commit_bytes: u64,
        /// Private working set.
        "MemoryWorkingSetPrivateBytes" => memory_working_set_private_bytes: u64,
        /// Shared working set.
        "MemoryWorkingSetSharedBytes" => memory_working_set_shared_bytes: u64,
        /// Linux extension, not in Microsoft's schema: the process's pid on
        /// the host (containers; `ProcessId` is the pid inside), which OCI
        /// tools such as `runhcs ps` report.
        "HostProcessId" => host_process_id: u32,
    }
}

impl ProcessParameters {
    /// The argv to execute: `CommandArgs` when non-empty, else `CommandLine`
    /// split with the Windows rules, else the `args` of `OciProcess`, else
    /// `[ApplicationName]`; empty when none is given.
    pub fn argv(&self) -> Vec<String> {
        if let Some(args) = self.command_args.as_ref().filter(|a| !a.is_empty()) {
            return args.clone();
        }
        if let Some(line) = self
            .command_line
            .as_deref()
            .filter(|l| !l.trim().is_empty())
        {
            return split_command_line(line);
        }
        if let Some(args) = self.oci_args() {
            return args;
        }
        match self.application_name.as_deref().filter(|a| !a.is_empty()) {
            Some(app) => vec![app.to_string()],
            None => Vec::new(),
        }
    }

    /// `OciProcess.args` when it is a non-empty array of strings.
    fn oci_args(&self) -> Option<Vec<String>> {
        let args = self.oci_process.as_ref()?.get("args")?.as_array()?;
        let args: Option<Vec<String>> = args
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect();
        args.filter(|a| !a.is_empty())
    }

    /// Checks: something to run (non-empty `CommandArgs`, `CommandLine`,
    /// `ApplicationName`, or LCOW `OciProcess.args`); environment names
    /// non-empty and free of `=` and NUL; no NUL in any string.
    pub fn validate(&self) -> Result<(), HcsError> {
        self.validate_on(On::Any)
    }

    /// [`ProcessParameters::validate`] for a process of a system of kind
    /// `on`: also refuses what [`crate::fields::TABLE`] refuses only there
    /// (`OciProcess` in a VM).
    pub fn validate_on(&self, on: On) -> Result<(), HcsError> {
        const DOC: &str = "ProcessParameters";
        let has_args = self.command_args.as_ref().is_some_and(|a| !a.is_empty());
        let has_line = self
            .command_line
            .as_deref()
            .is_some_and(|l| !l.trim().is_empty());
        let has_app = self
            .application_name
            .as_deref()
            .is_some_and(|a| !a.is_empty());
        if !(has_args || has_line || has_app || self.oci_args().is_some()) {
            return Err(error(
                DOC,
                "$",
                "nothing to run: set a non-empty `CommandArgs`, `CommandLine` or `ApplicationName`",
            ));
        }
        if let Some(args) = &self.command_args {
            if let Some(first) = args.first() {
                if first.is_empty() {
                    return Err(error(
                        DOC,
                        "$.CommandArgs[0]",
                        "is empty; the first argument names the program",
                    ));
                }
            }
            for (i, arg) in args.iter().enumerate() {
                validate::check_no_nul(DOC, &index("$.CommandArgs", i), arg)?;
            }
        }
        for (name, value) in [
            ("ApplicationName", &self.application_name),
            ("CommandLine", &self.command_line),
            ("User", &self.user),
            ("WorkingDirectory", &self.working_directory),
        ] {
            if let Some(v) = value {
                validate::check_no_nul(DOC, &member("$", name), v)?;
            }
        }
        for (key, value) in self.environment.iter().flatten() {
            let path = member("$.Environment", key);
            if key.is_empty() {
                return Err(error(DOC, &path, "an environment variable needs a name"));
            }
            if key.contains('=') {
                return Err(error(
                    DOC,
                    &path,
                    format!("environment variable name `{key}` contains `=`"),
                ));
            }
            validate::check_no_nul(DOC, &path, key)?;
            validate::check_no_nul(DOC, &path, value)?;
        }
        if let Some(v) = &self.oci_process {
            validate::check_value_no_nul(DOC, "$.OciProcess", v)?;
        }
        if let Some(v) = &self.oci_specification {
            validate::check_value_no_nul(DOC, "$.OciSpecification", v)?;
        }
        validate::check_document_no_nul(DOC, self)?;
        fields::refuse_unsupported(self, Context { document: DOC, on })
    }
}

impl Validate for ProcessParameters {
    fn validate(&self) -> Result<(), HcsError> {
        ProcessParameters::validate(self)
    }
}
