//! Splitting a Windows `CommandLine` into argv the way `CommandLineToArgvW` does.

/// Splits a Windows command line into arguments with the rules of
/// `CommandLineToArgvW` (what Windows callers of HcsCreateProcess expect):
///
/// * The first argument is the program name: if it starts with `"` it runs
///   to the next `"` (backslashes are not special there), otherwise to the
///   next space or tab. A command line that starts with whitespace therefore
///   has an empty program name, as on Windows.
/// * Other arguments are separated by spaces and tabs outside quotes.
/// * `2n` backslashes followed by `"` give `n` backslashes and toggle quoting;
///   `2n + 1` backslashes followed by `"` give `n` backslashes and a literal `"`;
///   backslashes not followed by `"` are literal.
/// * Inside quotes, `""` gives a literal `"` and ends the quoted part (the
///   behaviour of `CommandLineToArgvW`: `a"b"" c` is `ab"`, `c`).
/// * Trailing whitespace is ignored; an empty string gives no arguments
///   (Windows would return the path of the current executable).
pub fn split_command_line(cmd: &str) -> Vec<String> {
    let is_space = |c: char| c == ' ' || c == '\t';
    let mut args = Vec::new();
    let mut chars = cmd.chars().peekable();
    if chars.peek().is_none() {
        return args;
    }

    // The program name.
    let mut program = String::new();
    if chars.peek() == Some(&'"') {
        chars.next();
        for c in chars.by_ref() {
            if c == '"' {
                break;
            }
            program.push(c);
        }
    } else {
        while let Some(&c) = chars.peek() {
            if is_space(c) {
                break;
            }
            program.push(c);
            chars.next();
        }
    }
    args.push(program);

    while chars.peek().is_some_and(|&c| is_space(c)) {
        chars.next();
    }
    if chars.peek().is_none() {
        return args;
    }

    // The other arguments.
    let mut current = String::new();
    let mut backslashes = 0usize;
    let mut quotes = 0u32; // 0 = outside quotes, 1 = inside, 2 = just closed
    while let Some(c) = chars.next() {
        if is_space(c) && quotes == 0 {
            args.push(std::mem::take(&mut current));
            backslashes = 0;
            while chars.peek().is_some_and(|&c| is_space(c)) {
                chars.next();
            }
            if chars.peek().is_none() {
                return args;
            }
        } else if c == '\\' {
            current.push('\\');
            backslashes += 1;
        } else if c == '"' {
            if backslashes & 1 == 0 {
                // 2n backslashes: n of them, and the quote toggles quoting.
                for _ in 0..backslashes / 2 {
                    current.pop();
                }
                quotes += 1;
            } else {
                // 2n+1 backslashes: n of them and a literal quote.
                for _ in 0..backslashes / 2 + 1 {
                    current.pop();
                }
                current.push('"');
            }
            backslashes = 0;
            // Every third consecutive quote is a literal quote.
            while chars.peek() == Some(&'"') {
                chars.next();
                quotes += 1;
                if quotes == 3 {
                    current.push('"');
                    quotes = 0;
                }
            }
            if quotes == 2 {
                quotes = 0;
            }
        } else {
            current.push(c);
            backslashes = 0;
        }
    }
    args.push(current);
    args
}

#[cfg(test)]
mod tests {
    use super::split_command_line;

    #[test]
    fn simple() {
        assert_eq!(
            split_command_line("cmd.exe /c dir"),
            ["cmd.exe", "/c", "dir"]
        );
        assert_eq!(split_command_line(""), Vec::<String>::new());
        assert_eq!(split_command_line("a  b\t\tc   "), ["a", "b", "c"]);
    }
}
