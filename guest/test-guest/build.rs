//! Picks the linker script (absolute path, so the build works from any
//! directory): `link.ld`, or `link-pvh.ld` with the `pvh` feature.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let script = if std::env::var_os("CARGO_FEATURE_PVH").is_some() {
        "link-pvh.ld"
    } else {
        "link.ld"
    };
    println!("cargo:rustc-link-arg-bins=-T{dir}/{script}");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=link-pvh.ld");
}
