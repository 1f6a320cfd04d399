//! The little JSON adk writes itself (log lines, health reports), without a serializer dependency.

use std::fmt;

/// Writes `s` as a JSON string, quotes included.
pub(crate) fn string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    let mut plain_from = 0;
    for (i, c) in s.char_indices() {
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c < ' ' => "",
            _ => continue,
        };
        w.write_str(&s[plain_from..i])?;
        if escaped.is_empty() {
            write!(w, "\\u{:04x}", c as u32)?;
        } else {
            w.write_str(escaped)?;
        }
        plain_from = i + c.len_utf8();
    }
    w.write_str(&s[plain_from..])?;
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters() {
        let mut out = String::new();
        super::string(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}
