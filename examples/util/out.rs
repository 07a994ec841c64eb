//! Printing for the examples: `outln!` is `println!` that ends the program quietly (exit
//! 0, no message) when stdout is closed, as in `lookup MX example.com | head -1`, where
//! `println!` would panic with "failed printing to stdout: Broken pipe".

/// `println!`, but a closed stdout ends the program with exit status 0.
#[allow(unused_macros)]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::out::failed(e)
        }
    }};
}

/// `print!` (flushed), with `outln!`'s handling of a closed stdout.
#[allow(unused_macros)]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        if let Err(e) = write!(o, $($arg)*).and_then(|()| o.flush()) {
            $crate::out::failed(e)
        }
    }};
}

/// Stdout failed: a reader that went away is a normal end (exit 0); anything else is
/// reported (exit 1).
pub fn failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("stdout: {e}");
    std::process::exit(1);
}

/// An error and its causes (`source()` chain), as `error: cause: cause`: evnet's errors say
/// what failed at their own layer and keep the cause as their source.
#[allow(dead_code)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// `s` as a JSON string, quotes and escapes included (for the examples' `--json` and
/// stats output).
#[allow(dead_code)]
pub fn json_str(s: &str) -> String {
    let mut o = String::from('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
