//! Display names: what one may contain, and how a printer shows one that
//! does not. A name is text a peer chose (or the host name, `--name`, the
//! config file), so it is checked where it enters ([`check`]: at decode and
//! at parse) and escaped again where it leaves, in every printer's own way
//! ([`for_terminal`], [`for_prometheus_label`], [`for_environment`]): data
//! from an older node or an older version never reaches a terminal, a
//! scrape or `execve` raw.

use std::borrow::Cow;
use std::fmt::Write;

use crate::limits::MAX_NAME_LEN;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum NameError {
    /// Longer than [`MAX_NAME_LEN`] bytes.
    TooLong(usize),
    /// Holds a forbidden character (see [`is_forbidden`]), at this char index.
    Forbidden { at: usize, found: char },
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::TooLong(len) => write!(f, "{len} bytes, at most {MAX_NAME_LEN}"),
            NameError::Forbidden { at, found } => write!(
                f,
                "character {at} is {}, a control or text-direction character",
                escape_char(*found)
            ),
        }
    }
}

/// Characters no name may hold: every control character (Unicode Cc: C0
/// with NUL, TAB, CR, LF and ESC, DEL, C1), the bidirectional controls that
/// reorder what a terminal or page shows (Trojan Source), the invisible
/// zero-width ones that make two names look alike, and the line and
/// paragraph separators some viewers break lines at.
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}'                   // Arabic letter mark
            | '\u{200B}'..='\u{200F}'    // zero-width space, joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'    // line and paragraph separators
            | '\u{202A}'..='\u{202E}'    // embeddings and overrides
            | '\u{2060}'..='\u{2064}'    // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'    // isolates
            | '\u{FEFF}'                 // zero-width no-break space (BOM)
            | '\u{FFF9}'..='\u{FFFB}'    // interlinear annotations
        )
}

/// Checks a name for length and forbidden characters.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    match name.chars().enumerate().find(|(_, c)| is_forbidden(*c)) {
        Some((at, found)) => Err(NameError::Forbidden { at, found }),
        None => Ok(()),
    }
}

/// A forbidden character as visible text: `\x1b` for the control
/// characters of Latin-1, `\u{202e}` for the others.
fn escape_char(c: char) -> String {
    if u32::from(c) < 0x100 {
        format!("\\x{:02x}", u32::from(c))
    } else {
        format!("\\u{{{:x}}}", u32::from(c))
    }
}

/// `text` with every forbidden character written as a visible escape:
/// what terminal tables, hooks' environment and log lines show.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_forbidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_forbidden(c) {
            out.push_str(&escape_char(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A value for the hooks' environment: no NUL (which makes every spawn
/// fail) nor any other forbidden character reaches `execve`.
pub fn for_environment(text: &str) -> Cow<'_, str> {
    for_terminal(text)
}

/// A Prometheus label value escaped as the exposition format requires
/// (backslash, double quote, newline); prometheus-client 0.24 writes label
/// values raw, so a name could close the label and forge a series.
pub fn for_prometheus_label(text: &str) -> Cow<'_, str> {
    if !text.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => {
                // Writing into a String cannot fail.
                let _ = out.write_char(c);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass_including_unicode() {
        for name in ["", "web-1", "db.example.org", "nœud é", "東京", "a b\"c\\d"] {
            assert_eq!(check(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn controls_bidi_and_invisibles_are_refused_with_their_place() {
        for c in [
            '\0', '\t', '\n', '\r', '\x1b', '\x7f', '\u{85}', '\u{9b}', '\u{61c}', '\u{200b}',
            '\u{200e}', '\u{200f}', '\u{2028}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}',
            '\u{feff}',
        ] {
            let name = format!("ab{c}d");
            assert_eq!(
                check(&name),
                Err(NameError::Forbidden { at: 2, found: c }),
                "{c:?}"
            );
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(check(&long), Err(NameError::TooLong(MAX_NAME_LEN + 1)));
        assert_eq!(check(&"x".repeat(MAX_NAME_LEN)), Ok(()));
        // The reason shows the character escaped, never raw.
        let why = check("a\x1b[2J").map_err(|e| e.to_string());
        assert_eq!(
            why,
            Err("character 1 is \\x1b, a control or text-direction character".into())
        );
    }

    #[test]
    fn terminal_text_shows_forbidden_characters_as_escapes() {
        assert!(matches!(for_terminal("plain é"), Cow::Borrowed("plain é")));
        assert_eq!(
            for_terminal("\x1b]0;t\x07\r\0x\u{202e}"),
            "\\x1b]0;t\\x07\\x0d\\x00x\\u{202e}"
        );
        assert!(!for_environment("a\0b").contains('\0'));
    }

    #[test]
    fn prometheus_label_values_escape_backslash_quote_and_newline() {
        assert!(matches!(for_prometheus_label("web-1"), Cow::Borrowed(_)));
        assert_eq!(
            for_prometheus_label("a\"} 1\nb{x=\"\\"),
            "a\\\"} 1\\nb{x=\\\"\\\\"
        );
    }
}
