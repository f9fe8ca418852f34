//! The headers: their generated block matches the Rust definitions, and they
//! compile cleanly as C and C++ with the Rust structure layouts.

mod common;

use std::mem::{offset_of, size_of};

use computecore::{HCS_CREATE_OPTIONS_1, HCS_EVENT, HCS_PROCESS_INFORMATION};

#[test]
fn generated_block_matches_the_rust_definitions() {
    let path = common::include_dir().join("computedefs.h");
    let text = std::fs::read_to_string(&path).expect("reading computedefs.h");
    let begin = text
        .find(computecore::header::BEGIN)
        .expect("computedefs.h lacks the BEGIN GENERATED marker");
    let end_marker = text[begin..]
        .find(computecore::header::END)
        .expect("computedefs.h lacks the END GENERATED marker")
        + begin;
    let end = end_marker + computecore::header::END.len() + 1; // and its newline
    let current = &text[begin..end.min(text.len())];
    let wanted = computecore::header::render();
    if current != wanted {
        if std::env::var_os("HCS_CAPI_BLESS").is_some() {
            let new = format!(
                "{}{}{}",
                &text[..begin],
                wanted,
                &text[end.min(text.len())..]
            );
            std::fs::write(&path, new).expect("rewriting computedefs.h");
            return;
        }
        panic!(
            "the generated block of {} differs from the Rust definitions; \
             rerun with HCS_CAPI_BLESS=1 to rewrite it. Wanted:\n{wanted}",
            path.display()
        );
    }
}

#[test]
fn every_rust_constant_is_in_the_header() {
    // Independent of the renderer: parse the header's #defines and enum
    // values and look each Rust value up.
    let text = std::fs::read_to_string(common::include_dir().join("computedefs.h")).unwrap();
    for (code, name) in hcs_errors::HResult::ALL {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} missing from computedefs.h"));
        if name.starts_with("ERROR_") {
            let win32 = code.as_u32() & 0xFFFF;
            assert!(line.contains(&format!(" {win32}L")), "{line}");
        } else {
            assert!(line.contains(&format!("0x{:08X}", code.as_u32())), "{line}");
        }
    }
    for (name, value) in computecore::header::operation_types() {
        assert!(text.contains(&format!("    {name} = {value},")), "{name}");
    }
    for (name, value) in computecore::header::event_types() {
        assert!(
            text.contains(&format!("    {name} = 0x{value:08X},")),
            "{name}"
        );
    }
    for (name, value) in computecore::header::event_options() {
        assert!(
            text.contains(&format!("    {name} = 0x{value:08X},")),
            "{name}"
        );
    }
}

fn layout_defines() -> Vec<String> {
    vec![
        format!(
            "-DRUST_SIZEOF_PROCESS_INFORMATION={}",
            size_of::<HCS_PROCESS_INFORMATION>()
        ),
        format!(
            "-DRUST_OFFSETOF_STDERROR={}",
            offset_of!(HCS_PROCESS_INFORMATION, StdError)
        ),
        format!("-DRUST_SIZEOF_EVENT={}", size_of::<HCS_EVENT>()),
        format!(
            "-DRUST_OFFSETOF_OPERATION={}",
            offset_of!(HCS_EVENT, Operation)
        ),
        format!(
            "-DRUST_SIZEOF_CREATE_OPTIONS={}",
            size_of::<HCS_CREATE_OPTIONS_1>()
        ),
    ]
}

#[test]
fn headers_compile_and_link_as_c_with_wall_werror() {
    let src = common::crate_dir().join("tests/c/header_check.c");
    let out = common::out_dir().join("header_check_c");
    common::compile(&src, &out, false, &layout_defines());
}

#[test]
fn headers_compile_and_link_as_cpp_with_wall_werror() {
    let src = common::crate_dir().join("tests/c/header_check.c");
    let out = common::out_dir().join("header_check_cpp");
    common::compile(&src, &out, true, &layout_defines());
}

#[test]
fn headers_accept_l_literals_with_short_wchar() {
    let src = common::crate_dir().join("tests/c/header_check.c");
    let out = common::out_dir().join("header_check_short_wchar");
    let mut flags = layout_defines();
    flags.extend([
        "-fshort-wchar".to_string(),
        "-DHCS_WCHAR_IS_WCHAR_T".to_string(),
        "-DUSE_L_LITERALS".to_string(),
    ]);
    common::compile(&src, &out, false, &flags);
    common::compile(&src, &out.with_extension("cpp"), true, &flags);
}

/// Function names declared in a header (`... WINAPI Name(`).
fn declared(header: &str) -> Vec<String> {
    let text = std::fs::read_to_string(common::include_dir().join(header)).unwrap();
    let mut names = Vec::new();
    for part in text.split("WINAPI").skip(1) {
        let name: String = part
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if part.trim_start()[name.len()..].starts_with('(') && !name.is_empty() {
            names.push(name);
        }
    }
    names
}

#[test]
fn every_declared_function_is_exported_and_every_export_declared() {
    let mut names = declared("computecore.h");
    names.extend(declared("computedefs.h"));
    assert!(names.len() > 50, "{names:?}");
    assert!(names.iter().any(|n| n == "LocalFree"));
    let lib = common::lib_dir().join("libcomputecore.so");
    let path = std::ffi::CString::new(lib.to_str().unwrap()).unwrap();
    // SAFETY: dlopen of our own library, a valid C string.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {}", lib.display());
    for name in &names {
        let c = std::ffi::CString::new(name.as_str()).unwrap();
        // SAFETY: a valid handle and C string.
        let sym = unsafe { libc::dlsym(handle, c.as_ptr()) };
        assert!(!sym.is_null(), "{name} is declared but not exported");
    }
    // And the other way: every Hcs* export is declared.
    if common::have("nm") {
        let out = std::process::Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(&lib)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for sym in text.lines().filter_map(|l| l.split_whitespace().nth(2)) {
            if sym.starts_with("Hcs") {
                assert!(
                    names.iter().any(|n| n == sym),
                    "{sym} is exported but not declared"
                );
            }
        }
    }
}
