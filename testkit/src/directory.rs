//! A key-directory server on 127.0.0.1 for tests and the local demo: serves whatever
//! [`Behaviour`] it is set to (a directory, a 404, garbage, a redirect, a slow answer, a
//! close, a TCP reset, a chunked body of any size), can be switched while running, and counts every request it receives, so tests
//! assert fetches at the server. Stops when dropped.

use std::io::{self, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The directory media type (draft-meunier-http-message-signatures-directory).
pub const MEDIA_TYPE: &str = "application/http-message-signatures-directory+json";

/// What the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// A response: status, header fields (Content-Length is added), body.
    Respond {
        /// Status code.
        status: u16,
        /// Header fields.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// Answer like `Respond`, but only after this delay.
    Slow(Duration, Box<Behaviour>),
    /// Close the connection without answering (a reset as the client sees it).
    Reset,
    /// Abort the connection with a TCP RST: the request is only peeked at (counted), so it
    /// is still unread when the socket closes and the kernel resets the connection.
    Abort,
    /// A response whose body is sent `Transfer-Encoding: chunked` (no Content-Length, so a
    /// client learns its size only by reading it), in 64 KiB chunks, until the client stops
    /// reading.
    Chunked {
        /// Status code.
        status: u16,
        /// Header fields.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
}

impl Behaviour {
    /// 200 with a JWKS body, the directory media type and `Cache-Control: max-age=<max_age>`.
    pub fn jwks(body: &str, max_age: u64) -> Self {
        Self::Respond {
            status: 200,
            headers: vec![
                ("Content-Type".into(), MEDIA_TYPE.into()),
                ("Cache-Control".into(), format!("max-age={max_age}")),
            ],
            body: body.as_bytes().to_vec(),
        }
    }

    /// 200 with the directory media type and `size` bytes of `x` sent chunked (see
    /// [`Behaviour::Chunked`]): a directory far over any size cap.
    pub fn huge(size: usize) -> Self {
        Self::Chunked { status: 200, headers: vec![("Content-Type".into(), MEDIA_TYPE.into())], body: vec![b'x'; size] }
    }

    /// A status with a plain body and optional extra headers.
    pub fn status(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        Self::Respond {
            status,
            headers: headers.iter().map(|(n, v)| (String::from(*n), String::from(*v))).collect(),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// One request as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Method.
    pub method: String,
    /// Target.
    pub target: String,
    /// Header fields.
    pub headers: Vec<(String, String)>,
}

impl Hit {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A running directory server.
pub struct DirectoryServer {
    port: u16,
    stop: Arc<AtomicBool>,
    behaviour: Arc<Mutex<Behaviour>>,
    hits: Arc<Mutex<Vec<Hit>>>,
    count: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl DirectoryServer {
    /// Start on a free port of 127.0.0.1.
    pub fn start(behaviour: Behaviour) -> io::Result<Self> {
        Self::start_on(0, behaviour)
    }

    /// Start on 127.0.0.1:`port` (0 = any free port).
    pub fn start_on(port: u16, behaviour: Behaviour) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (stop2, b2, h2, c2) = (stop.clone(), behaviour.clone(), hits.clone(), count.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (b, h, c, s) = (b2.clone(), h2.clone(), c2.clone(), stop2.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &b, &h, &c, &s);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self { port, stop, behaviour, hits, count, thread: Some(thread) })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Change what is served from now on.
    pub fn set(&self, behaviour: Behaviour) {
        if let Ok(mut b) = self.behaviour.lock() {
            *b = behaviour;
        }
    }

    /// Requests received so far (every request counts, whatever was answered).
    pub fn fetches(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The requests received so far, oldest first.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for DirectoryServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    behaviour: &Mutex<Behaviour>,
    hits: &Mutex<Vec<Hit>>,
    count: &AtomicUsize,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let aborts = behaviour.lock().map(|b| *b == Behaviour::Abort).unwrap_or(false);
        if aborts && reader.buffer().is_empty() {
            drop(writer);
            return abort(reader.into_inner(), hits, count);
        }
        let Some((method, target, headers)) = crate::origin::read_head(&mut reader)? else {
            return Ok(());
        };
        let close =
            headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
        count.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut h) = hits.lock() {
            h.push(Hit { method: method.clone(), target, headers });
        }
        let mut current = behaviour.lock().map(|b| b.clone()).unwrap_or(Behaviour::Reset);
        loop {
            match current {
                Behaviour::Slow(delay, inner) => {
                    let until = std::time::Instant::now() + delay;
                    while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    current = *inner;
                }
                Behaviour::Reset => {
                    let _ = writer.shutdown(Shutdown::Both);
                    return Ok(());
                }
                // Switched to while this connection was kept alive: the head is read already.
                Behaviour::Abort => return Ok(()),
                Behaviour::Chunked { status, headers, body } => {
                    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
                    for (n, v) in &headers {
                        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                    }
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
                    writer.write_all(&out)?;
                    if method != "HEAD" {
                        for chunk in body.chunks(64 * 1024) {
                            if stop.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                            writer.write_all(chunk)?;
                            writer.write_all(b"\r\n")?;
                        }
                        writer.write_all(b"0\r\n\r\n")?;
                    }
                    writer.flush()?;
                    return Ok(());
                }
                Behaviour::Respond { status, headers, body } => {
                    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
                    for (n, v) in &headers {
                        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
                    }
                    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
                    if close {
                        out.extend_from_slice(b"Connection: close\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                    if method != "HEAD" {
                        out.extend_from_slice(&body);
                    }
                    writer.write_all(&out)?;
                    writer.flush()?;
                    if close {
                        return Ok(());
                    }
                    break;
                }
            }
        }
    }
}

/// Count the request seen through `peek` (its head, as far as it has arrived within 2 s),
/// then close without reading it: unread data makes the kernel send a RST.
fn abort(stream: TcpStream, hits: &Mutex<Vec<Hit>>, count: &AtomicUsize) -> io::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut buf = vec![0u8; 16 * 1024];
    let mut seen = 0;
    while std::time::Instant::now() < deadline {
        seen = stream.peek(&mut buf)?;
        if seen == 0 || buf.get(..seen).is_some_and(|b| b.windows(4).any(|w| w == b"\r\n\r\n")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if seen == 0 {
        return Ok(()); // closed by the client before sending anything
    }
    let mut head = std::io::Cursor::new(buf.get(..seen).unwrap_or_default().to_vec());
    if let Some((method, target, headers)) = crate::origin::read_head(&mut head).ok().flatten() {
        count.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut h) = hits.lock() {
            h.push(Hit { method, target, headers });
        }
    }
    drop(stream);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw_http;

    #[test]
    fn serves_counts_and_switches() {
        let server = DirectoryServer::start(Behaviour::jwks(r#"{"keys":[]}"#, 300)).unwrap();
        let host = vec![("Host".to_string(), "agent.test".to_string())];
        let res = raw_http::send(server.port(), "GET", "/.well-known/http-message-signatures-directory", &host, None)
            .unwrap();
        assert_eq!(res.status, 200);
        assert_eq!(res.header("content-type"), Some(MEDIA_TYPE));
        assert_eq!(res.body, br#"{"keys":[]}"#);
        server.set(Behaviour::status(404, &[], "nope"));
        assert_eq!(raw_http::send(server.port(), "GET", "/", &host, None).unwrap().status, 404);
        server.set(Behaviour::Reset);
        assert!(raw_http::send(server.port(), "GET", "/", &host, None).is_err());
        assert_eq!(server.fetches(), 3);
        assert_eq!(server.hits()[0].header("host"), Some("agent.test"));
    }

    #[test]
    fn aborts_with_a_reset_and_streams_chunked_bodies() {
        let server = DirectoryServer::start(Behaviour::Abort).unwrap();
        let host = vec![("Host".to_string(), "agent.test".to_string())];
        let err = raw_http::send(server.port(), "GET", "/abort", &host, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        assert_eq!(server.fetches(), 1);
        assert_eq!(server.hits()[0].target, "/abort");
        server.set(Behaviour::huge(300_000));
        let res = raw_http::send(server.port(), "GET", "/big", &host, None).unwrap();
        assert_eq!((res.status, res.header("content-length")), (200, None));
        assert_eq!(res.header("transfer-encoding"), Some("chunked"));
        assert_eq!(res.body.len(), 300_000);
        assert_eq!(server.fetches(), 2);
    }
}
