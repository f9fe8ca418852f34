//! The serde encoding of section payloads: postcard 1.x.
//!
//! Why postcard and not bincode or JSON:
//! - Its wire format is specified and frozen for the whole 1.x series (the
//!   "postcard wire format" spec), so a file written today decodes with any
//!   later 1.x: what a versioned state file needs.
//! - Compact: integers are varints, byte arrays are raw. vCPU state is
//!   mostly register arrays and 4 KiB XSAVE areas, which JSON would blow up
//!   three to four times and parse slowly.
//! - It decodes from a byte slice, so a hostile length prefix cannot make
//!   it allocate more than the payload it was handed (which the file reader
//!   has already capped): it stops with "unexpected end".
//! - bincode's team ended development in 2025 (RUSTSEC-2025-0141), and
//!   bincode 1.x needs an explicit size limit to be safe on hostile input.
//!
//! Compatibility rule for section writers: postcard is not self-describing,
//! so a struct change (field added, removed, reordered) needs a new section
//! version, and the reader keeps decoding the old one.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StateFileError;

/// Encodes `value` as a postcard payload for section `name`.
pub fn encode<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<Vec<u8>, StateFileError> {
    postcard::to_allocvec(value).map_err(|source| StateFileError::Encode {
        name: name.to_string(),
        source,
    })
}

/// Decodes a postcard payload of section `name` (payload at `offset` in the
/// file); every byte must be used.
pub fn decode<T: DeserializeOwned>(
    name: &str,
    offset: u64,
    payload: &[u8],
) -> Result<T, StateFileError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(payload).map_err(|source| StateFileError::Decode {
            name: name.to_string(),
            offset,
            source,
        })?;
    if !rest.is_empty() {
        return Err(StateFileError::DecodeTrailing {
            name: name.to_string(),
            count: rest.len(),
        });
    }
    Ok(value)
}
