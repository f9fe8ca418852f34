//! ACPI tables (placeholder; being written).
