//! The top-level create document (reference section 5.3).

use hcs_errors::HcsError;
use serde_json::Value;

use crate::container::Container;
use crate::fields::{self, Context, On};
use crate::validate::{self, error, member, Validate};
use crate::version::Version;
use crate::virtual_machine::VirtualMachine;

hcs_struct! {
    /// Top-level document passed as `configuration` to HcsCreateComputeSystem.
    /// Exactly one of `Container`, `VirtualMachine`, `HostedSystem` must be
    /// set; [`ComputeSystem::validate`] checks it.
    pub struct ComputeSystem {
        /// Free-form name of the managing client; echoed in `Properties.Owner`.
        "Owner" => owner: String,
        /// Schema version of the document, effectively required (`{"Major": 2, "Minor": N}`).
        "SchemaVersion" => schema_version: Version,
        /// Id of an already created system (utility VM) that hosts `HostedSystem` or `Container`.
        "HostingSystemId" => hosting_system_id: String,
        /// Opaque JSON forwarded to the guest agent of `HostingSystemId`
        /// (a [`HostedSystem`], or hcsshim's LCOW document with
        /// `SchemaVersion`, `OciBundlePath`, `OciSpecification`, `ScratchDirPath`).
        "HostedSystem" => hosted_system: Value,
        /// A container.
        "Container" => container: Container,
        /// A virtual machine.
        "VirtualMachine" => virtual_machine: VirtualMachine,
        /// Terminate the system when the last handle to it is closed.
        "ShouldTerminateOnLastHandleClosed" => should_terminate_on_last_handle_closed: bool,
    }
}

hcs_struct! {
    /// Container configuration created inside a hosting system; carries its
    /// own schema version because the guest may support a different one.
    pub struct HostedSystem {
        /// Schema version understood by the guest.
        "SchemaVersion" => schema_version: Version,
        /// The container.
        "Container" => container: Container,
    }
}

impl ComputeSystem {
    /// Semantic checks of a create document:
    /// `SchemaVersion` present with `Major == 2` and a known minor;
    /// exactly one of `Container`, `VirtualMachine`, `HostedSystem`;
    /// `HostedSystem` requires `HostingSystemId` and must be an object;
    /// plus the checks of [`VirtualMachine`] and [`Container`]; then every
    /// member that [`crate::fields::TABLE`] refuses is refused
    /// (`ERROR_NOT_SUPPORTED` with its JSON path).
    pub fn validate(&self) -> Result<(), HcsError> {
        const DOC: &str = "ComputeSystem";
        match &self.schema_version {
            None => {
                return Err(error(
                    DOC,
                    "$.SchemaVersion",
                    "missing; every create document must carry {\"Major\": 2, \"Minor\": N}",
                ))
            }
            Some(v) => validate::check_schema_version(DOC, "$.SchemaVersion", v)?,
        }

        let present: Vec<&str> = [
            ("Container", self.container.is_some()),
            ("VirtualMachine", self.virtual_machine.is_some()),
            ("HostedSystem", self.hosted_system.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect();
        match present.as_slice() {
            [] => {
                return Err(error(
                    DOC,
                    "$",
                    "none of `Container`, `VirtualMachine`, `HostedSystem` is set; exactly one is required",
                ))
            }
            [_] => {}
            several => {
                let names: Vec<String> = several.iter().map(|n| format!("`{n}`")).collect();
                return Err(error(
                    DOC,
                    "$",
                    format!(
                        "{} are mutually exclusive; exactly one of `Container`, `VirtualMachine`, `HostedSystem` may be set",
                        names.join(" and ")
                    ),
                ));
            }
        }

        if let Some(hosted) = &self.hosted_system {
            validate::require_non_empty(
                DOC,
                "$.HostingSystemId",
                self.hosting_system_id.as_deref(),
                "`HostedSystem` requires the id of the system that hosts it",
            )?;
            if !hosted.is_object() {
                return Err(error(DOC, "$.HostedSystem", "expected a JSON object"));
            }
        }
        if let Some(id) = &self.hosting_system_id {
            validate::check_no_nul(DOC, "$.HostingSystemId", id)?;
        }
        if let Some(owner) = &self.owner {
            validate::check_no_control(DOC, "$.Owner", owner)?;
        }
        if let Some(vm) = &self.virtual_machine {
            vm.validate_at(DOC, "$.VirtualMachine")?;
        }
        if let Some(container) = &self.container {
            container.validate_at(DOC, "$.Container")?;
        }
        // Whatever string the checks above do not know by name.
        validate::check_document_no_nul(DOC, self)?;
        let on = if self.container.is_some() {
            On::Container
        } else if self.virtual_machine.is_some() {
            On::VirtualMachine
        } else {
            On::Any
        };
        fields::refuse_unsupported(self, Context { document: DOC, on })
    }
}

impl ComputeSystem {
    /// What a valid document may ask for but this system cannot do yet:
    /// `ERROR_NOT_SUPPORTED` naming the JSON path, rather than quietly doing
    /// something else. Today that is any `HostingSystemId`: containers inside
    /// a utility VM do not exist yet, and running the container on the host
    /// instead would ignore the isolation the document asks for.
    pub fn check_supported(&self) -> Result<(), HcsError> {
        const PATH: &str = "$.HostingSystemId";
        let Some(id) = &self.hosting_system_id else {
            return Ok(());
        };
        let what = if self.container.is_some() {
            "a container inside a hosting utility VM is not supported yet (it would run on the host instead); \
             leave out `HostingSystemId` to run the container on the host"
        } else if self.virtual_machine.is_some() {
            "a virtual machine cannot be hosted inside another compute system; leave out `HostingSystemId`"
        } else {
            "`HostedSystem` needs containers inside utility VMs, which are not supported yet"
        };
        Err(HcsError::not_supported(format!(
            "ComputeSystem document: at `{PATH}` ({id:?}): {what}"
        )))
    }
}

impl Validate for ComputeSystem {
    fn validate(&self) -> Result<(), HcsError> {
        ComputeSystem::validate(self)
    }
}

impl HostedSystem {
    /// `SchemaVersion` present with major 2, `Container` present and valid.
    pub fn validate(&self) -> Result<(), HcsError> {
        const DOC: &str = "HostedSystem";
        match &self.schema_version {
            None => {
                return Err(error(
                    DOC,
                    "$.SchemaVersion",
                    "missing; expected {\"Major\": 2, \"Minor\": N}",
                ))
            }
            Some(v) => validate::check_schema_version(DOC, "$.SchemaVersion", v)?,
        }
        match &self.container {
            None => {
                return Err(error(
                    DOC,
                    &member("$", "Container"),
                    "missing; a hosted system is a container",
                ))
            }
            Some(c) => {
                c.validate_at(DOC, "$.Container")?;
                // HostedSystem itself is not a document this system takes
                // (ComputeSystem.HostedSystem is refused); its container is.
                let cx = Context {
                    document: DOC,
                    on: On::Container,
                };
                fields::Fields::refuse_unsupported(c, &cx, "$.Container")?;
            }
        }
        validate::check_document_no_nul(DOC, self)
    }
}

impl Validate for HostedSystem {
    fn validate(&self) -> Result<(), HcsError> {
        HostedSystem::validate(self)
    }
}
