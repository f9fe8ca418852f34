//! Test helpers.

pub use hcs_test_support::skip;
