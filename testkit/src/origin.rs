//! An echo origin on 127.0.0.1: answers every request with 200 and a JSON description of
//! what it received, and keeps a log of requests for assertions.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

/// One request as the origin saw it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Request target as received.
    pub target: String,
    /// Field lines in order.
    pub headers: Vec<(String, String)>,
    /// Body as UTF-8 (lossy).
    pub body: String,
}

impl Seen {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A running echo origin; stops when dropped.
pub struct Origin {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Origin {
    /// Start on a free port of 127.0.0.1.
    pub fn start() -> io::Result<Self> {
        Self::start_on(0)
    }

    /// Start on 127.0.0.1:`port` (0 = any free port).
    pub fn start_on(port: u16) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let seen = seen2.clone();
                        std::thread::spawn(move || {
                            let _ = serve(stream, &seen);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self { port, stop, seen, thread: Some(thread) })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests received so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Forget the requests received so far.
    pub fn clear(&self) {
        if let Ok(mut s) = self.seen.lock() {
            s.clear();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request head: method, target and field lines (name, value).
pub(crate) type Head = (String, String, Vec<(String, String)>);

/// Read one request line and its field lines; `None` when the connection closes first.
pub(crate) fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            return Ok(Some((method, target, headers)));
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// Read a chunked body (RFC 9112 §7.1) up to and including its last chunk (trailers are not
/// expected); a chunk size that is not hexadecimal is an error.
pub(crate) fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::other("bad chunk size"))?;
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk)?;
        if n == 0 {
            return Ok(body);
        }
        chunk.truncate(n);
        body.extend_from_slice(&chunk);
    }
}

/// Serve requests on one connection (keep-alive) until it closes.
fn serve(stream: TcpStream, seen: &Mutex<Vec<Seen>>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some((method, target, headers)) = crate::origin::read_head(&mut reader)? else {
            return Ok(());
        };
        let find = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
        } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            body = read_chunked(&mut reader)?;
        }
        let close = find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let record = Seen { method, target, headers, body: String::from_utf8_lossy(&body).into_owned() };
        let json = serde_json::to_vec(&record).unwrap_or_default();
        if let Ok(mut s) = seen.lock() {
            s.push(record);
        }
        // One write with TCP_NODELAY: split writes stall on delayed ACKs (~40 ms) behind proxies.
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
            json.len(),
            if close { "connection: close\r\n" } else { "" }
        )
        .into_bytes();
        response.extend_from_slice(&json);
        writer.write_all(&response)?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw_http;

    #[test]
    fn echoes_exact_headers_and_body() {
        let origin = Origin::start().unwrap();
        let headers = vec![
            ("Host".to_string(), "example.com".to_string()),
            ("X-Rep".to_string(), "a".to_string()),
            ("X-Rep".to_string(), "b".to_string()),
        ];
        let res = raw_http::send(origin.port(), "POST", "/p?q=%20", &headers, Some(b"hello")).unwrap();
        assert_eq!(res.status, 200);
        let body = res.json().unwrap();
        assert_eq!(body["target"], "/p?q=%20");
        assert_eq!(body["body"], "hello");
        let seen = origin.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].headers.iter().filter(|(n, _)| n == "X-Rep").count(), 2);
    }
}
