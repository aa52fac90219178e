//! `botauth sign --curl`: the signed request as a curl command line (POSIX shell quoting).

use anyhow::{bail, Result};

use crate::message::RawRequest;

/// Single-quote `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// RFC 9112 §5.2: an obs-fold is one space on the wire (and in RFC 9421 §2.1 values).
fn unfold(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut out = String::new();
    for (i, part) in text.split('\n').enumerate() {
        if i == 0 {
            out.push_str(part.trim_end_matches('\r'));
        } else {
            out.push(' ');
            out.push_str(part.trim_end_matches('\r').trim_start_matches([' ', '\t']));
        }
    }
    out
}

/// `curl` sending `raw` to `url_base` + `target`, with every field line as `-H`. A `Host`
/// line (added from `authority` when the file has none) keeps the signed authority when
/// `url_base` points elsewhere.
pub fn command(raw: &RawRequest, target: &str, authority: &str, url_base: &str) -> Result<String> {
    let url = format!("{}{}", url_base.trim_end_matches('/'), target);
    // --path-as-is and --globoff: send the target byte for byte, as it was signed.
    let mut args = vec!["curl".to_owned(), "--globoff".to_owned(), "--path-as-is".to_owned()];
    match raw.method.as_str() {
        "GET" => {}
        "HEAD" => args.push("--head".to_owned()),
        m => args.extend(["-X".to_owned(), quote(m)]),
    }
    args.push(quote(&url));
    let mut lines = vec![args.join(" ")];
    if !raw.has("host") {
        lines.push(format!("-H {}", quote(&format!("Host: {authority}"))));
    }
    for (name, value) in &raw.headers {
        let value = unfold(value);
        // curl drops `Name:` with an empty value; `Name;` sends it empty.
        let header = if value.is_empty() { format!("{name};") } else { format!("{name}: {value}") };
        lines.push(format!("-H {}", quote(&header)));
    }
    if let Some(body) = raw.body.as_deref().filter(|b| !b.is_empty()) {
        let Ok(text) = std::str::from_utf8(body) else {
            bail!("--curl: the body is not UTF-8 text; print the raw request instead and send it with a file");
        };
        if text.contains('\0') {
            bail!("--curl: the body contains NUL bytes; print the raw request instead");
        }
        lines.push(format!("--data-binary {}", quote(text)));
    }
    Ok(lines.join(" \\\n  ") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse_request;

    #[test]
    fn curl_command_quotes_and_keeps_host() {
        let raw =
            parse_request(b"POST /a?b=[1] HTTP/1.1\nHost: example.com\nX-Q: it's\nX-E:\nX-F: a\n  b\n\nbody").unwrap();
        let cmd = command(&raw, "/a?b=[1]", "ignored.example", "http://127.0.0.1:7676/").unwrap();
        assert_eq!(
            cmd,
            "curl --globoff --path-as-is -X 'POST' 'http://127.0.0.1:7676/a?b=[1]' \\\n  \
             -H 'Host: example.com' \\\n  -H 'X-Q: it'\\''s' \\\n  -H 'X-E;' \\\n  -H 'X-F: a b' \\\n  \
             --data-binary 'body'\n"
        );
        let raw = parse_request(b"HEAD https://h.example/ HTTP/1.1\n").unwrap();
        assert_eq!(
            command(&raw, "/", "h.example", "http://x").unwrap(),
            "curl --globoff --path-as-is --head 'http://x/' \\\n  -H 'Host: h.example'\n"
        );
    }
}
