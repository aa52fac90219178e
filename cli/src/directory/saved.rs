//! Saved directory responses for `botauth directory check`: a headers file of raw
//! `Name: value` lines, optionally starting with a status line (`HTTP/1.1 200 OK`,
//! `HTTP/2 200` as `curl -D` writes it), ending at the first blank line or the end of the
//! file; or one whole response file (status line, fields, blank line, body), as
//! `botauth directory sign` prints it.

use std::fmt;

use crate::message::is_token;

/// The parts of a saved response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    /// The status of the status line, if there was one.
    pub status: Option<u16>,
    /// Field lines in file order.
    pub fields: Vec<(String, Vec<u8>)>,
    /// Bytes after the blank line (`None` without a blank line).
    pub body: Option<Vec<u8>>,
}

/// Where a headers file broke (1-based line) and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub what: &'static str,
}

impl fmt::Display for SavedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for SavedError {}

/// Parse a headers (or whole response) file.
pub fn parse(data: &[u8]) -> Result<Saved, SavedError> {
    let mut saved = Saved::default();
    let mut pos = 0;
    let mut line_no = 0;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or_default();
        let (line, consumed) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (rest.get(..i).unwrap_or_default(), i + 1),
            None => (rest, rest.len()),
        };
        pos += consumed;
        line_no += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line_no == 1 && line.starts_with(b"HTTP/") {
            saved.status = Some(
                status(line)
                    .ok_or(SavedError { line: line_no, what: "malformed status line: expected `HTTP/1.1 200 OK`" })?,
            );
            continue;
        }
        if line.is_empty() {
            saved.body = Some(data.get(pos..).unwrap_or_default().to_vec());
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            let Some((_, value)) = saved.fields.last_mut() else {
                return Err(SavedError { line: line_no, what: "a continuation line comes before any header line" });
            };
            value.push(b' ');
            value.extend_from_slice(trim(line));
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(SavedError { line: line_no, what: "malformed header line: expected `Name: value`" })?;
        let (name, value) = line.split_at(colon);
        if !is_token(name) {
            return Err(SavedError {
                line: line_no,
                what: "malformed header line: the name must be an HTTP token directly followed by `:`",
            });
        }
        saved
            .fields
            .push((String::from_utf8_lossy(name).into_owned(), trim(value.get(1..).unwrap_or_default()).to_vec()));
    }
    Ok(saved)
}

/// The status code of `HTTP/x[.y] NNN [reason]`.
fn status(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    let _version = parts.next()?;
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_fields_and_body() {
        let s = parse(b"HTTP/2 302 \r\nLocation: /x\r\ncontent-type:  a/b \r\n\r\n{}").unwrap();
        assert_eq!(s.status, Some(302));
        assert_eq!(s.fields, [("Location".to_owned(), b"/x".to_vec()), ("content-type".to_owned(), b"a/b".to_vec())]);
        assert_eq!(s.body.as_deref(), Some(&b"{}"[..]));
        let s = parse(b"Cache-Control: max-age=60\nX: a\n  b\n").unwrap();
        assert_eq!(s.status, None);
        assert_eq!(s.fields[1].1, b"a b");
        assert_eq!(s.body, None);
        assert_eq!(parse(b"").unwrap(), Saved::default());
    }

    #[test]
    fn malformed_lines_are_named() {
        assert_eq!(parse(b"HTTP/1.1 OK\n").unwrap_err().line, 1);
        assert_eq!(parse(b"A: b\nnope\n").unwrap_err().line, 2);
        assert_eq!(parse(b" x\n").unwrap_err().line, 1);
        assert_eq!(parse(b"A b: c\n").unwrap_err().line, 1);
    }
}
