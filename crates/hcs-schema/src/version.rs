//! Schema versions (reference section 5.1).

use std::fmt;

hcs_struct! {
    /// `Major.Minor` of a schema. Majors are incompatible; minor N accepts
    /// everything of 2.0..2.N. In `SupportedSchemaVersions` an entry A.X means
    /// A.0 through A.X are supported.
    pub struct Version {
        /// Major version; only 2 is supported.
        "Major" => major: u32,
        /// Minor version.
        "Minor" => minor: u32,
    }
}

impl Version {
    /// A version with both members set.
    pub const fn new(major: u32, minor: u32) -> Version {
        Version {
            major: Some(major),
            minor: Some(minor),
        }
    }
}

impl fmt::Display for Version {
    /// `2.1`; a missing member prints as `?`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.major {
            Some(m) => write!(f, "{m}")?,
            None => f.write_str("?")?,
        }
        match self.minor {
            Some(m) => write!(f, ".{m}"),
            None => f.write_str(".?"),
        }
    }
}

/// The only schema major version this implementation accepts.
pub const SCHEMA_MAJOR: u32 = 2;

/// Highest schema minor version whose documents this crate knows field by
/// field (2.6 = Windows 11 SDK 21H2). Higher minors are refused: a field
/// they added could mean something we would get wrong.
pub const HIGHEST_KNOWN_MINOR: u32 = 6;

/// The schema versions this implementation accepts, 2.0 through 2.6, in the
/// order `HcsGetServiceProperties` `Basic` lists them.
pub const SUPPORTED_SCHEMA_VERSIONS: [Version; 7] = [
    Version::new(2, 0),
    Version::new(2, 1),
    Version::new(2, 2),
    Version::new(2, 3),
    Version::new(2, 4),
    Version::new(2, 5),
    Version::new(2, 6),
];

/// Schema 2.1, what the samples and hcsshim send.
pub const SCHEMA_V2_1: Version = Version::new(2, 1);
