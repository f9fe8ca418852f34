//! `split_command_line` against the examples Microsoft documents for
//! `CommandLineToArgvW` and the C runtime ("Parsing C++ command-line
//! arguments", whose table `CommandLineToArgvW` reproduces) and against
//! outputs of the real `CommandLineToArgvW` quoted in
//! `MicrosoftDocs/cpp-docs` issues #3291 and #3697.

use hcs_schema::split_command_line;

fn split(cmd: &str) -> Vec<String> {
    split_command_line(cmd)
}

#[test]
fn documented_table() {
    // Input after the program name, then argv[1..] as in the documentation.
    let cases: &[(&str, &[&str])] = &[
        (r#""abc" d e"#, &["abc", "d", "e"]),
        (r#"a\\\b d"e f"g h"#, &[r"a\\\b", "de fg", "h"]),
        (r#"a\\\"b c d"#, &[r#"a\"b"#, "c", "d"]),
        (r#"a\\\\"b c" d e"#, &[r"a\\b c", "d", "e"]),
    ];
    for (input, expected) in cases {
        let argv = split(&format!("prog.exe {input}"));
        assert_eq!(
            argv.first().map(String::as_str),
            Some("prog.exe"),
            "{input}"
        );
        assert_eq!(&argv[1..], *expected, "{input}");
    }
}

#[test]
fn doubled_quote_inside_quotes_is_a_literal_quote_and_ends_quoting() {
    // cpp-docs #3291: CommandLineToArgvW(L"\"program.exe\" a\"b\"\" c d") gives
    // program.exe, ab", c, d.
    assert_eq!(
        split(r#""program.exe" a"b"" c d"#),
        ["program.exe", r#"ab""#, "c", "d"]
    );
    // Three quotes in a row inside quotes: one literal quote.
    assert_eq!(split(r#"p "a"""b""#), ["p", r#"a"b"#]);
    assert_eq!(split(r#"p """"#), ["p", r#"""#]);
    assert_eq!(split(r#"p "" x"#), ["p", "", "x"]);
}

#[test]
fn the_program_name_has_its_own_rules() {
    // cpp-docs #3697, real CommandLineToArgvW output: the first argument ends
    // at whitespace with no backslash or quote processing...
    assert_eq!(split(r#"123\"abc" d e"#), [r#"123\"abc""#, "d", "e"]);
    assert_eq!(split(r#"a\\\\"b c" d e"#), [r#"a\\\\"b"#, "c d e"]);
    assert_eq!(split(r#"a\\\b d"e f"g h"#), [r"a\\\b", "de fg", "h"]);
    // ...or, when quoted, at the next quote.
    assert_eq!(
        split(r#""C:\Program Files\app.exe" -x"#),
        [r"C:\Program Files\app.exe", "-x"]
    );
    assert_eq!(split(r#""abc" d e"#), ["abc", "d", "e"]);
    assert_eq!(split(r#""C:\dir\"x y"#), [r"C:\dir\", "x", "y"]);
}

#[test]
fn whitespace_rules() {
    // "If lpCmdLine starts with any amount of whitespace, CommandLineToArgvW
    // will consider the first argument to be an empty string. Excess
    // whitespace at the end of lpCmdLine is ignored."
    assert_eq!(split("  prog a"), ["", "prog", "a"]);
    assert_eq!(split("prog a   \t "), ["prog", "a"]);
    assert_eq!(split("prog\ta\t\tb"), ["prog", "a", "b"]);
    assert_eq!(split("prog"), ["prog"]);
    assert_eq!(split(""), Vec::<String>::new());
    assert_eq!(split(" "), [""]);
}

#[test]
fn backslashes() {
    assert_eq!(split(r#"p C:\temp\ x"#), ["p", r"C:\temp\", "x"]);
    // The classic trap: a trailing backslash before the closing quote escapes it.
    assert_eq!(
        split(r#"p "C:\temp\" opt3 opt4"#),
        ["p", r#"C:\temp" opt3 opt4"#]
    );
    assert_eq!(split(r#"p "C:\temp\\" opt3"#), ["p", r"C:\temp\", "opt3"]);
    assert_eq!(split(r#"p \\\\"#), ["p", r"\\\\"]);
    assert_eq!(split(r#"p \""#), ["p", r#"""#]);
}

#[test]
fn unicode_is_kept() {
    assert_eq!(split("prog \"grüße welt\" ✓"), ["prog", "grüße welt", "✓"]);
}
