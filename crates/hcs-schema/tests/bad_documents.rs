//! Invalid documents give HCS_E_INVALID_JSON with the JSON path of the
//! problem and what was expected.

mod common;

use common::{expect_invalid, fixture};
use hcs_schema::process::ProcessParameters;
use hcs_schema::requests::{ModifySettingRequest, ProcessModifyRequest, SignalProcessOptions};
use hcs_schema::service::ModificationRequest;
use hcs_schema::{from_json, ComputeSystem};

fn parse(json: &str) -> Result<ComputeSystem, hcs_errors::HcsError> {
    from_json::<ComputeSystem>(json, "ComputeSystem")
}

/// Parse, then validate: the path a create call takes.
fn parse_and_validate(json: &str) -> Result<ComputeSystem, hcs_errors::HcsError> {
    let cs = parse(json)?;
    cs.validate()?;
    Ok(cs)
}

#[test]
fn wrong_type_names_path_position_and_expectation() {
    let doc = r#"{
  "SchemaVersion": {"Major": 2, "Minor": 1},
  "VirtualMachine": {
    "ComputeTopology": {
      "Memory": {"SizeInMB": "lots"}
    }
  }
}"#;
    let msg = expect_invalid(
        parse(doc),
        &[
            "invalid ComputeSystem document",
            "at `$.VirtualMachine.ComputeTopology.Memory.SizeInMB` (line 5, column 35)",
            "invalid type: string \"lots\", expected u64",
        ],
    );
    assert_eq!(
        msg,
        "invalid ComputeSystem document: at `$.VirtualMachine.ComputeTopology.Memory.SizeInMB` (line 5, column 35): \
         invalid type: string \"lots\", expected u64"
    );
}

#[test]
fn unknown_field_typo_is_reported_at_its_object_with_the_allowed_names() {
    let doc = r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"ComputeTopology":{"Memory":{"SizeInMb":1024}}}}"#;
    let msg = expect_invalid(
        parse(doc),
        &[
            "at `$.VirtualMachine.ComputeTopology.Memory` (",
            "unknown field `SizeInMb` (did you mean `SizeInMB`?)",
            "expected one of `SizeInMB`, `AllowOvercommit`",
        ],
    );
    assert!(!msg.contains("Memory.SizeInMb`"), "{msg}");
}

#[test]
fn unknown_top_level_field() {
    expect_invalid(
        parse(r#"{"Ownr":"x"}"#),
        &[
            "at `$` (",
            "unknown field `Ownr`",
            "`Owner`",
            "`VirtualMachine`",
        ],
    );
}

#[test]
fn bad_enum_value_lists_the_variants() {
    let doc = r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"Devices":{"Scsi":{"Primary disk":{"Attachments":{"0":{"Type":"VirtualDsk","Path":"x"}}}}}}}"#;
    expect_invalid(
        parse(doc),
        &[
            r#"at `$.VirtualMachine.Devices.Scsi["Primary disk"].Attachments["0"].Type`"#,
            "unknown variant `VirtualDsk`, expected one of `VirtualDisk`, `Iso`, `PassThru`",
        ],
    );
}

#[test]
fn enum_as_number_is_refused() {
    expect_invalid(
        from_json::<hcs_schema::Properties>(r#"{"State":1}"#, "Properties"),
        &["at `$.State`", "invalid type: integer `1`, expected"],
    );
}

#[test]
fn integer_map_keys_must_be_numbers() {
    let doc = r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"Devices":{"ComPorts":{"COM1":{}}}}}"#;
    expect_invalid(
        parse(doc),
        &[
            "at `$.VirtualMachine.Devices.ComPorts`",
            "expected key to be a number",
        ],
    );
}

#[test]
fn arrays_are_not_objects() {
    expect_invalid(
        parse(r#"{"VirtualMachine":{"ComputeTopology":{"Memory":[2048]}}}"#),
        &[
            "at `$.VirtualMachine.ComputeTopology.Memory`",
            "invalid type: sequence, expected a JSON object (VirtualMachineMemory)",
        ],
    );
    expect_invalid(
        parse("[]"),
        &["at `$`", "expected a JSON object (ComputeSystem)"],
    );
}

#[test]
fn schema_major_1_is_refused() {
    let doc = r#"{"SchemaVersion":{"Major":1,"Minor":0},"VirtualMachine":{}}"#;
    expect_invalid(
        parse_and_validate(doc),
        &[
            "at `$.SchemaVersion.Major`",
            "schema version 1.0 is not supported",
            "major version must be 2",
            "2.0 to 2.6",
        ],
    );
}

#[test]
fn schema_version_missing_or_incomplete() {
    expect_invalid(
        parse_and_validate(r#"{"VirtualMachine":{}}"#),
        &["at `$.SchemaVersion`", "missing"],
    );
    expect_invalid(
        parse_and_validate(r#"{"SchemaVersion":{"Minor":1},"VirtualMachine":{}}"#),
        &["at `$.SchemaVersion.Major`", "missing; expected 2"],
    );
}

#[test]
fn only_known_minors_of_major_2_are_accepted() {
    let doc = |minor: u64| {
        format!(r#"{{"SchemaVersion":{{"Major":2,"Minor":{minor}}},"VirtualMachine":{{}}}}"#)
    };
    for minor in 0..=u64::from(hcs_schema::version::HIGHEST_KNOWN_MINOR) {
        parse_and_validate(&doc(minor)).unwrap();
    }
    for minor in [7, 9, 4_294_967_295] {
        expect_invalid(
            parse_and_validate(&doc(minor)),
            &[
                "at `$.SchemaVersion.Minor`",
                "is not supported",
                "2.0 to 2.6",
            ],
        );
    }
}

#[test]
fn container_and_virtual_machine_are_mutually_exclusive() {
    let doc = r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{},"VirtualMachine":{}}"#;
    expect_invalid(
        parse_and_validate(doc),
        &[
            "at `$`",
            "`Container` and `VirtualMachine` are mutually exclusive",
            "exactly one of",
        ],
    );
}

#[test]
fn neither_container_nor_virtual_machine() {
    expect_invalid(
        parse_and_validate(r#"{"SchemaVersion":{"Major":2,"Minor":1},"Owner":"x"}"#),
        &[
            "at `$`",
            "none of `Container`, `VirtualMachine`, `HostedSystem` is set",
        ],
    );
}

#[test]
fn hosted_system_needs_hosting_system_id() {
    expect_invalid(
        parse_and_validate(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"HostedSystem":{"SchemaVersion":{"Major":2,"Minor":1}}}"#,
        ),
        &[
            "at `$.HostingSystemId`",
            "missing",
            "`HostedSystem` requires",
        ],
    );
    expect_invalid(
        parse_and_validate(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"HostingSystemId":"uvm","HostedSystem":42}"#,
        ),
        &["at `$.HostedSystem`", "expected a JSON object"],
    );
}

#[test]
fn semantic_checks_of_virtual_machines() {
    expect_invalid(
        parse_and_validate(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"Chipset":{"Uefi":{},"LinuxKernelDirect":{"KernelFilePath":"/k"}}}}"#,
        ),
        &["at `$.VirtualMachine.Chipset`", "mutually exclusive"],
    );
    expect_invalid(
        parse_and_validate(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"Chipset":{"LinuxKernelDirect":{}}}}"#,
        ),
        &[
            "at `$.VirtualMachine.Chipset.LinuxKernelDirect.KernelFilePath`",
            "missing",
        ],
    );
    expect_invalid(
        parse_and_validate(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"ComputeTopology":{"Memory":{"SizeInMB":0}}}}"#,
        ),
        &[
            "at `$.VirtualMachine.ComputeTopology.Memory.SizeInMB`",
            "is 0",
        ],
    );
    expect_invalid(
        parse_and_validate(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"ComputeTopology":{"Processor":{"Count":0}}}}"#,
        ),
        &[
            "at `$.VirtualMachine.ComputeTopology.Processor.Count`",
            "is 0",
        ],
    );
    expect_invalid(
        parse_and_validate(
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"VirtualMachine":{"Devices":{"Scsi":{"Primary disk":{"Attachments":{"1":{"Type":"VirtualDisk"}}}}}}}"#,
        ),
        &[
            r#"at `$.VirtualMachine.Devices.Scsi["Primary disk"].Attachments["1"].Path`"#,
            "missing",
        ],
    );
}

#[test]
fn semantic_checks_of_containers() {
    let base = |container: &str| {
        format!(r#"{{"SchemaVersion":{{"Major":2,"Minor":1}},"Container":{container}}}"#)
    };
    expect_invalid(
        parse_and_validate(&base(
            r#"{"UserNamespace":{"UidMappings":[{"ContainerId":0,"HostId":100000,"Size":0}]}}"#,
        )),
        &["at `$.Container.UserNamespace.UidMappings[0].Size`", "is 0"],
    );
    expect_invalid(
        parse_and_validate(&base(
            r#"{"UserNamespace":{"GidMappings":[{"ContainerId":0,"Size":10}]}}"#,
        )),
        &[
            "at `$.Container.UserNamespace.GidMappings[0]`",
            "missing HostId",
        ],
    );
    expect_invalid(
        parse_and_validate(&base(
            r#"{"UserNamespace":{"UidMappings":[{"ContainerId":0,"HostId":1000,"Size":10},{"ContainerId":5,"HostId":5000,"Size":10}]}}"#,
        )),
        &[
            "at `$.Container.UserNamespace.UidMappings[1]`",
            "container ids overlap",
        ],
    );
    expect_invalid(
        parse_and_validate(&base(
            r#"{"UserNamespace":{"UidMappings":[{"ContainerId":0,"HostId":4294967295,"Size":2}]}}"#,
        )),
        &[
            "at `$.Container.UserNamespace.UidMappings[0]`",
            "goes past the largest id",
        ],
    );
    expect_invalid(
        parse_and_validate(&base(r#"{"Processor":{"Maximum":20000}}"#)),
        &["at `$.Container.Processor.Maximum`", "out of range"],
    );
    expect_invalid(
        parse_and_validate(&base(
            r#"{"Storage":{"Layers":[{"Id":"a","Path":"/l"},{"Id":"b"}]}}"#,
        )),
        &["at `$.Container.Storage.Layers[1].Path`", "missing"],
    );
    expect_invalid(
        parse(&base(
            r#"{"UserNamespace":{"UidMappings":[{"ContainerId":0,"HostId":1,"Size":1,"Extra":1}]}}"#,
        )),
        &[
            "at `$.Container.UserNamespace.UidMappings[0]`",
            "unknown field `Extra`",
        ],
    );
}

#[test]
fn empty_and_blank_documents() {
    for doc in ["", "   \n\t"] {
        expect_invalid(
            parse(doc),
            &["invalid ComputeSystem document", "the document is empty"],
        );
    }
}

#[test]
fn null_document() {
    expect_invalid(
        parse("null"),
        &["the document is `null`", "expected a JSON object"],
    );
    expect_invalid(parse(" null \n"), &["the document is `null`"]);
}

#[test]
fn truncated_document() {
    expect_invalid(
        parse(r#"{"SchemaVersion":{"Major":2,"#),
        &["at `$.SchemaVersion`", "the document ends too early"],
    );
    expect_invalid(
        parse(r#"{"Owner":"Samp"#),
        &["at `$.Owner`", "the document ends too early"],
    );
}

#[test]
fn tutorial_as_published_has_a_syntax_error_that_is_located() {
    // Tutorial.md as published lacks the opening quote of the Path value.
    let doc = fixture("invalid/tutorial_vm_as_published.json");
    expect_invalid(
        parse(&doc),
        &[
            r#"at `$.VirtualMachine.Devices.Scsi["Primary disk"].Attachments["0"].Path` (line 34"#,
            "expected value",
        ],
    );
}

#[test]
fn service_sample_unfinished_modify_is_located() {
    let doc = fixture("invalid/service_sample_modify_unfinished.json");
    expect_invalid(
        from_json::<ModificationRequest>(&doc, "ModificationRequest"),
        &[
            "invalid ModificationRequest document",
            "at `$.Settings` (line 5",
            "expected value",
        ],
    );
}

#[test]
fn trailing_garbage() {
    expect_invalid(
        parse(r#"{"Owner":"x"} {"Owner":"y"}"#),
        &["unexpected characters after the end of the JSON value (line 1, column 15)"],
    );
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let deep = "[".repeat(10_000);
    expect_invalid(
        parse(&deep),
        &["at `$`", "expected a JSON object (ComputeSystem)"],
    );
    // Inside a free-form member, serde_json's recursion limit stops it.
    let doc = format!(r#"{{"HostedSystem":{}"#, "[".repeat(10_000));
    expect_invalid(
        parse(&doc),
        &[
            "at `$.HostedSystem[0][0]",
            "recursion limit exceeded",
            "more levels",
        ],
    );
    let doc = format!(
        r#"{{"VirtualMachine":{{"MigrationOptions":{}"#,
        r#"{"a":"#.repeat(10_000)
    );
    expect_invalid(
        parse(&doc),
        &[
            "at `$.VirtualMachine.MigrationOptions.a.a",
            "recursion limit exceeded",
        ],
    );
}

#[test]
fn huge_numbers() {
    expect_invalid(
        parse(
            r#"{"VirtualMachine":{"ComputeTopology":{"Memory":{"SizeInMB":184467440737095516150}}}}"#,
        ),
        &[
            "at `$.VirtualMachine.ComputeTopology.Memory.SizeInMB`",
            "expected u64",
        ],
    );
    expect_invalid(
        parse(r#"{"VirtualMachine":{"ComputeTopology":{"Processor":{"Count":4294967296}}}}"#),
        &[
            "at `$.VirtualMachine.ComputeTopology.Processor.Count`",
            "expected u32",
        ],
    );
    expect_invalid(
        parse(r#"{"VirtualMachine":{"ComputeTopology":{"Memory":{"SizeInMB":1e400}}}}"#),
        &[
            "at `$.VirtualMachine.ComputeTopology.Memory.SizeInMB`",
            "number out of range",
        ],
    );
    expect_invalid(
        parse(r#"{"VirtualMachine":{"ComputeTopology":{"Processor":{"Count":-1}}}}"#),
        &[
            "at `$.VirtualMachine.ComputeTopology.Processor.Count`",
            "integer `-1`, expected u32",
        ],
    );
}

#[test]
fn duplicate_member() {
    expect_invalid(
        parse(r#"{"Owner":"a","Owner":"b"}"#),
        &["at `$`", "duplicate field `Owner`"],
    );
}

#[test]
fn process_parameters_checks() {
    let p = |json: &str| -> Result<(), hcs_errors::HcsError> {
        from_json::<ProcessParameters>(json, "ProcessParameters")?.validate()
    };
    expect_invalid(
        p(r#"{"CreateStdOutPipe":true}"#),
        &[
            "invalid ProcessParameters document",
            "at `$`",
            "nothing to run",
        ],
    );
    expect_invalid(p(r#"{"CommandArgs":[]}"#), &["nothing to run"]);
    expect_invalid(p(r#"{"CommandLine":"   "}"#), &["nothing to run"]);
    expect_invalid(
        p(r#"{"CommandArgs":["sh"],"Environment":{"A=B":"c"}}"#),
        &[r#"at `$.Environment["A=B"]`"#, "contains `=`"],
    );
    expect_invalid(
        p(r#"{"CommandArgs":["sh"],"Environment":{"":"c"}}"#),
        &[r#"at `$.Environment[""]`"#, "needs a name"],
    );
    expect_invalid(
        p(r#"{"CommandArgs":["sh","a\u0000b"]}"#),
        &["at `$.CommandArgs[1]`", "NUL"],
    );
    expect_invalid(
        p(r#"{"CommandArgs":["sh"],"Environment":{"A":"x\u0000"}}"#),
        &["at `$.Environment.A`", "NUL"],
    );
    expect_invalid(
        p(r#"{"CommandLine":"sh","WorkingDirectory":"/tmp\u0000"}"#),
        &["at `$.WorkingDirectory`", "NUL"],
    );
    expect_invalid(
        p(r#"{"OciProcess":{"args":["sh"],"env":["A=\u0000"]}}"#),
        &["at `$.OciProcess.env[0]`", "NUL"],
    );
    expect_invalid(
        p(r#"{"CommandArgs":["sh"],"ConsoleSize":[1,2,3]}"#),
        &["at `$.ConsoleSize`", "more elements than expected"],
    );
    expect_invalid(
        p(r#"{"CommandArgs":["sh"],"ConsoleSize":[25]}"#),
        &["at `$.ConsoleSize`", "expected an array of length 2"],
    );
    expect_invalid(
        p(r#"{"CommandArgs":["sh"],"ConsoleSize":[25,70000]}"#),
        &["at `$.ConsoleSize[1]`", "expected u16"],
    );
    p(r#"{"CommandArgs":["sh"],"Environment":{"PATH":"/bin"}}"#).unwrap();
    p(r#"{"ApplicationName":"C:\\Windows\\System32\\cmd.exe"}"#).unwrap();
}

#[test]
fn process_modify_request_checks() {
    let m = |json: &str| -> Result<(), hcs_errors::HcsError> {
        from_json::<ProcessModifyRequest>(json, "ProcessModifyRequest")?.validate()
    };
    expect_invalid(
        m(r#"{"ConsoleSize":{"Height":1,"Width":2}}"#),
        &["at `$.Operation`", "missing"],
    );
    expect_invalid(
        m(r#"{"Operation":"ConsoleSize"}"#),
        &["at `$.ConsoleSize`", "missing"],
    );
    expect_invalid(
        m(r#"{"Operation":"ConsoleSize","ConsoleSize":{"Height":1}}"#),
        &["at `$.ConsoleSize`", "`Width`"],
    );
    expect_invalid(
        m(r#"{"Operation":"CloseHandle"}"#),
        &["at `$.CloseHandle`", "missing"],
    );
    expect_invalid(
        m(r#"{"Operation":"CloseHandle","CloseHandle":{}}"#),
        &["at `$.CloseHandle.Handle`", "`StdIn`"],
    );
    expect_invalid(
        m(r#"{"Operation":"Resize"}"#),
        &[
            "at `$.Operation`",
            "unknown variant `Resize`",
            "`ConsoleSize`",
        ],
    );
    expect_invalid(
        m(r#"{"Operation":"CloseHandle","CloseHandle":{"Handle":"Stdin"}}"#),
        &["at `$.CloseHandle.Handle`", "`StdIn`"],
    );
}

#[test]
fn modify_setting_request_checks() {
    let m = |json: &str| -> Result<(), hcs_errors::HcsError> {
        from_json::<ModifySettingRequest>(json, "ModifySettingRequest")?.validate()
    };
    expect_invalid(
        m(r#"{"RequestType":"Add"}"#),
        &["at `$`", "neither `ResourcePath` nor `GuestRequest`"],
    );
    expect_invalid(
        m(r#"{"ResourcePath":"","RequestType":"Add"}"#),
        &["at `$.ResourcePath`", "is empty"],
    );
    expect_invalid(
        m(r#"{"ResourcePath":"VirtualMachine/Devices","RequestType":"Replace"}"#),
        &["at `$.RequestType`", "unknown variant `Replace`"],
    );
}

#[test]
fn signal_values() {
    let s = |json: &str| from_json::<SignalProcessOptions>(json, "SignalProcessOptions");
    expect_invalid(
        s(r#"{"Signal":"CtrlZ"}"#),
        &[
            "at `$.Signal`",
            "invalid signal \"CtrlZ\"",
            "`CtrlC`",
            "`CtrlShutdown`",
            "POSIX signal number 1..=64",
        ],
    );
    for bad in ["0", "65", "-9", "100000000000000000000"] {
        let msg = expect_invalid(
            s(&format!(r#"{{"Signal":{bad}}}"#)),
            &["at `$.Signal`", "1..=64"],
        );
        assert!(!msg.contains("did not match any variant"), "{msg}");
    }
    expect_invalid(
        s(r#"{"Signal":2.5}"#),
        &["at `$.Signal`", "invalid signal 2.5"],
    );
    expect_invalid(
        s(r#"{"Signal":true}"#),
        &["at `$.Signal`", "expected a signal"],
    );
    expect_invalid(
        s(r#"{"Signal":{"Number":9}}"#),
        &["at `$.Signal`", "expected a signal"],
    );
}

#[test]
fn every_error_is_invalid_json_for_other_document_kinds() {
    expect_invalid(
        from_json::<hcs_schema::ShutdownOptions>(r#"{"TimeoutInMs":"soon"}"#, "ShutdownOptions"),
        &[
            "invalid ShutdownOptions document",
            "at `$.TimeoutInMs`",
            "expected u64",
        ],
    );
    expect_invalid(
        from_json::<hcs_schema::PauseOptions>(r#"{"SuspensionLevel":"Deep"}"#, "PauseOptions"),
        &["at `$.SuspensionLevel`", "`Suspend`"],
    );
}

#[test]
fn free_form_members_are_parsed_with_their_path() {
    use hcs_schema::from_value;
    use hcs_schema::virtual_machine::devices::Attachment;
    let req: ModifySettingRequest = from_json(
        r#"{"ResourcePath":"VirtualMachine/Devices/Scsi/0/Attachments/1","RequestType":"Add","Settings":{"Type":"VirtualDisk","Pth":"/x"}}"#,
        "ModifySettingRequest",
    )
    .expect("parses");
    let settings = req.settings.unwrap_or_default();
    expect_invalid(
        from_value::<Attachment>(&settings, "ModifySettingRequest", "$.Settings"),
        &[
            "invalid ModifySettingRequest document",
            "at `$.Settings`:",
            "unknown field `Pth`",
            "`Path`",
        ],
    );
    expect_invalid(
        from_value::<Attachment>(
            &serde_json::json!({"Type": 3}),
            "ModifySettingRequest",
            "$.Settings",
        ),
        &[
            "at `$.Settings.Type`:",
            "expected a string, one of `VirtualDisk`, `Iso`, `PassThru` (AttachmentType)",
        ],
    );
    let hosted = serde_json::json!({"SchemaVersion": {"Major": 2, "Minor": 1}, "Container": {"Storage": {"Layers": [{"Path": 1}]}}});
    expect_invalid(
        from_value::<hcs_schema::HostedSystem>(&hosted, "ComputeSystem", "$.HostedSystem"),
        &[
            "at `$.HostedSystem.Container.Storage.Layers[0].Path`:",
            "expected a string",
        ],
    );
}

#[test]
fn hosting_system_id_is_not_supported_yet_and_named() {
    // A container that names a utility VM must not quietly run on the host.
    for (doc, needle) in [
        (
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"HostingSystemId":"no-such-vm","Container":{"Storage":{"Layers":[]}}}"#,
            "container inside a hosting utility VM",
        ),
        (
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"HostingSystemId":"uvm","VirtualMachine":{}}"#,
            "virtual machine cannot be hosted",
        ),
        (
            r#"{"SchemaVersion":{"Major":2,"Minor":1},"HostingSystemId":"uvm","HostedSystem":{}}"#,
            "HostedSystem",
        ),
    ] {
        let cs = parse(doc).unwrap();
        let e = cs.check_supported().unwrap_err();
        assert_eq!(
            e.hresult,
            hcs_errors::HResult::ERROR_NOT_SUPPORTED,
            "{doc}: {e}"
        );
        assert!(
            e.message.contains("at `$.HostingSystemId`"),
            "{}",
            e.message
        );
        assert!(e.message.contains(needle), "{}", e.message);
    }
    let lcow = fixture("hcsshim_lcow_container_hosted_system.json");
    let e = parse(&lcow).unwrap().check_supported().unwrap_err();
    assert_eq!(e.hresult, hcs_errors::HResult::ERROR_NOT_SUPPORTED);
    // Without it, the same container is fine.
    let host = r#"{"SchemaVersion":{"Major":2,"Minor":1},"Container":{"Storage":{"Layers":[]}}}"#;
    parse(host).unwrap().check_supported().unwrap();
}

/// `{"SchemaVersion":{"Major":2,"Minor":1}, <rest>}`.
fn v21(rest: &str) -> String {
    format!(r#"{{"SchemaVersion":{{"Major":2,"Minor":1}},{rest}}}"#)
}

#[test]
fn control_characters_are_refused_where_none_can_be_right() {
    let container = |guest_os: &str| {
        v21(&format!(
            r#""Container":{{"Storage":{{"Layers":[{{"Path":"/l"}}]}},"GuestOs":{{"HostName":{guest_os}}}}}"#
        ))
    };
    for (doc, path) in [
        (container(r#""a\u0000b""#), "$.Container.GuestOs.HostName"),
        (container(r#""a\nb""#), "$.Container.GuestOs.HostName"),
        (container(r#""a b""#), "$.Container.GuestOs.HostName"),
        (container(r#""""#), "$.Container.GuestOs.HostName"),
        (
            container(&format!("{:?}", "h".repeat(65))),
            "$.Container.GuestOs.HostName",
        ),
        (
            v21(r#""Owner":"me\u0000you","VirtualMachine":{}"#),
            "$.Owner",
        ),
        (
            v21(r#""Owner":"me\u001b[2J","VirtualMachine":{}"#),
            "$.Owner",
        ),
    ] {
        expect_invalid(parse_and_validate(&doc), &[&format!("at `{path}`")]);
    }
    // 64 bytes, and ordinary owners, are fine.
    parse_and_validate(&container(&format!("{:?}", "h".repeat(64)))).unwrap();
    parse_and_validate(&v21(r#""Owner":"containerd: ns/é","VirtualMachine":{}"#)).unwrap();
}

#[test]
fn nul_is_refused_in_every_string_of_a_document() {
    // Strings no field check names: each becomes a path, a name or an argument.
    for (rest, path) in [
        (
            r#""VirtualMachine":{"Devices":{"ComPorts":{"0":{"NamedPipe":"/tmp/a\u0000b"}}}}"#,
            "$.VirtualMachine.Devices.ComPorts",
        ),
        (
            r#""Container":{"Storage":{"Layers":[{"Path":"/l","Id":"x\u0000"}]}}"#,
            "$.Container.Storage.Layers[0].Id",
        ),
        (
            r#""HostingSystemId":"uvm","HostedSystem":{"Key\u0000":1}"#,
            "$.HostedSystem",
        ),
    ] {
        expect_invalid(
            parse_and_validate(&v21(rest)),
            &[&format!("at `{path}"), "NUL"],
        );
    }
    let process =
        r#"{"CommandArgs":["sh"],"User":"root","ConsoleSize":[1,2],"WorkingDirectory":"/"}"#;
    from_json::<ProcessParameters>(process, "ProcessParameters")
        .unwrap()
        .validate()
        .unwrap();
    let bad = r#"{"CommandArgs":["sh","a\u0000b"]}"#;
    expect_invalid(
        from_json::<ProcessParameters>(bad, "ProcessParameters")
            .and_then(|p| p.validate().map(|_| p)),
        &["at `$.CommandArgs[1]`", "NUL"],
    );
}

#[test]
fn processor_counts_are_bounded() {
    let vm = |n: u64| {
        v21(&format!(
            r#""VirtualMachine":{{"ComputeTopology":{{"Memory":{{"SizeInMB":64}},"Processor":{{"Count":{n}}}}}}}"#
        ))
    };
    parse_and_validate(&vm(1)).unwrap();
    parse_and_validate(&vm(254)).unwrap();
    for n in [0, 255, 4_294_967_295] {
        expect_invalid(
            parse_and_validate(&vm(n)),
            &["at `$.VirtualMachine.ComputeTopology.Processor.Count`"],
        );
    }
    let ctr = |n: u64| {
        v21(&format!(
            r#""Container":{{"Storage":{{"Layers":[{{"Path":"/l"}}]}},"Processor":{{"Count":{n}}}}}"#
        ))
    };
    parse_and_validate(&ctr(1)).unwrap();
    parse_and_validate(&ctr(8192)).unwrap();
    for n in [0, 8193, 4_294_967_295] {
        expect_invalid(
            parse_and_validate(&ctr(n)),
            &["at `$.Container.Processor.Count`", "out of range"],
        );
    }
}
