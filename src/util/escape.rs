//! [`Esc`]: user-controlled text made safe for one log line.

use std::fmt;

/// Displays a string with control characters (newlines, escape sequences)
/// escaped as `\n`, `\u{1b}`, so a user id cannot forge or split log lines.
///
/// ```
/// use wshub::__private::Esc;
/// assert_eq!(Esc("bob\nERROR forged").to_string(), "bob\\nERROR forged");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}
