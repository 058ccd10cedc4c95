//! RESP2, the Redis protocol: commands out, replies and pushes in.
//!
//! Only what the bridge needs: commands are arrays of bulk strings, and
//! replies are parsed incrementally from a buffer with every length checked
//! against a cap before anything is reserved, so a broken or hostile server
//! gets an error, never a panic or an unbounded allocation.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Longest bulk string accepted: a cluster message carries one WebSocket
/// message (at most `max_message_size`, itself capped) plus a small header.
pub(crate) const MAX_BULK: usize = 256 << 20;
/// Most elements of one array (a snapshot of one hub's devices).
const MAX_ARRAY: usize = 4 << 20;
/// Deepest nesting of arrays (Redis sends at most two levels here).
const MAX_DEPTH: usize = 4;

/// One reply or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$3\r\nabc` (`None`: the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (`None`: the null array).
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The bytes of a bulk or simple string.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(Some(b)) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug)]
pub(crate) enum RespError {
    /// The socket failed or closed.
    Io(io::Error),
    /// The server sent something that is not RESP2 (or past a cap).
    Protocol(&'static str),
    /// The server answered a command with an error.
    Server(String),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "redis connection: {e}"),
            RespError::Protocol(what) => write!(f, "redis protocol error: {what}"),
            RespError::Server(e) => write!(f, "redis error: {e}"),
        }
    }
}

impl From<io::Error> for RespError {
    fn from(e: io::Error) -> Self {
        RespError::Io(e)
    }
}

/// Appends a command (an array of bulk strings) to `out`.
pub(crate) fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    push_header(out, b'*', args.len());
    for a in args {
        push_header(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Parses one value from the front of `buf`: `Ok(None)` when more bytes are
/// needed, else the value and how many bytes it took.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Value, usize)>, RespError> {
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        // A header line is short; a long one without CRLF is garbage.
        return if buf.len() > 64 {
            Err(RespError::Protocol("header line too long"))
        } else {
            Ok(None)
        };
    };
    let Some((&kind, line)) = buf[..line_end].split_first() else {
        return Err(RespError::Protocol("empty line"));
    };
    let head = line_end + 2;
    let text = || std::str::from_utf8(line).map_err(|_| RespError::Protocol("line not UTF-8"));
    match kind {
        b'+' => Ok(Some((Value::Simple(text()?.to_owned()), head))),
        b'-' => Ok(Some((Value::Error(text()?.to_owned()), head))),
        b':' => {
            let n = text()?
                .parse()
                .map_err(|_| RespError::Protocol("bad integer"))?;
            Ok(Some((Value::Int(n), head)))
        }
        b'$' => {
            let Some(len) = length(line, MAX_BULK)? else {
                return Ok(Some((Value::Bulk(None), head)));
            };
            if buf.len() < head + len + 2 {
                return Ok(None);
            }
            if &buf[head + len..head + len + 2] != b"\r\n" {
                return Err(RespError::Protocol("bulk string not followed by CRLF"));
            }
            let body = buf[head..head + len].to_vec();
            Ok(Some((Value::Bulk(Some(body)), head + len + 2)))
        }
        b'*' => {
            if depth >= MAX_DEPTH {
                return Err(RespError::Protocol("arrays nested too deep"));
            }
            let Some(len) = length(line, MAX_ARRAY)? else {
                return Ok(Some((Value::Array(None), head)));
            };
            // Grown as elements arrive, never reserved from the header.
            let mut items = Vec::new();
            let mut at = head;
            for _ in 0..len {
                match parse_at(&buf[at..], depth + 1)? {
                    Some((v, used)) => {
                        items.push(v);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(Some(items)), at)))
        }
        _ => Err(RespError::Protocol("unknown type byte")),
    }
}

/// A length header: `-1` is null, anything else must be 0..=`max`.
fn length(line: &[u8], max: usize) -> Result<Option<usize>, RespError> {
    let text = std::str::from_utf8(line).map_err(|_| RespError::Protocol("length not UTF-8"))?;
    if text == "-1" {
        return Ok(None);
    }
    match text.parse::<usize>() {
        Ok(n) if n <= max => Ok(Some(n)),
        Ok(_) => Err(RespError::Protocol("length over the cap")),
        Err(_) => Err(RespError::Protocol("bad length")),
    }
}

/// A blocking connection to Redis, for the bridge's threads.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already parsed.
    start: usize,
    out: Vec<u8>,
}

impl Connection {
    /// Connects (each address tried with `timeout`) and authenticates.
    pub(crate) fn open(
        addr: &crate::config::RedisAddr,
        timeout: Duration,
    ) -> Result<Connection, RespError> {
        use std::net::ToSocketAddrs;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut stream = None;
        for a in (addr.host.as_str(), addr.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or(last)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut c = Connection {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            start: 0,
            out: Vec::with_capacity(16 * 1024),
        };
        match (&addr.user, &addr.password) {
            (Some(u), Some(p)) => c.call(&[b"AUTH", u.as_bytes(), p.as_bytes()])?,
            (None, Some(p)) => c.call(&[b"AUTH", p.as_bytes()])?,
            _ => Value::Simple(String::new()),
        };
        if addr.db != 0 {
            c.call(&[b"SELECT", addr.db.to_string().as_bytes()])?;
        }
        Ok(c)
    }

    /// Sets how long a read may block (`None`: forever).
    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(t)
    }

    /// Queues a command; [`flush`](Self::flush) sends what is queued.
    pub(crate) fn queue(&mut self, args: &[&[u8]]) {
        encode(args, &mut self.out);
    }

    /// Writes every queued command.
    pub(crate) fn flush(&mut self) -> Result<(), RespError> {
        self.stream.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Sends one command and reads its reply; an error reply is an `Err`.
    pub(crate) fn call(&mut self, args: &[&[u8]]) -> Result<Value, RespError> {
        self.queue(args);
        self.flush()?;
        match self.read()? {
            Value::Error(e) => Err(RespError::Server(e)),
            v => Ok(v),
        }
    }

    /// Reads the next value, blocking up to the read timeout (a timeout is
    /// `Io` with `WouldBlock` or `TimedOut`).
    pub(crate) fn read(&mut self) -> Result<Value, RespError> {
        loop {
            if let Some((v, used)) = parse(&self.buf[self.start..])? {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(v);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(RespError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Whether `e` is a read timeout rather than a broken connection.
pub(crate) fn is_timeout(e: &RespError) -> bool {
    matches!(e, RespError::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&[b"SET", b"k", b""], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[test]
    fn replies_parse_whole_or_ask_for_more() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhe\r\nl\r\n:7\r\n";
        let (v, used) = parse(msg).unwrap().unwrap();
        assert_eq!(used, msg.len() - 4);
        let Value::Array(Some(items)) = v else {
            panic!("{v:?}")
        };
        assert_eq!(items[2].bytes(), Some(&b"he\r\nl"[..]));
        for cut in 0..msg.len() - 4 {
            assert!(parse(&msg[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert_eq!(
            parse(b"+OK\r\n").unwrap().unwrap().0,
            Value::Simple("OK".into())
        );
        assert_eq!(parse(b"$-1\r\n").unwrap().unwrap().0, Value::Bulk(None));
        assert_eq!(
            parse(b"-ERR x\r\n").unwrap().unwrap().0,
            Value::Error("ERR x".into())
        );
    }

    #[test]
    fn garbage_and_huge_lengths_are_errors_not_allocations() {
        for bad in [
            &b"?\r\n"[..],
            b"$99999999999999\r\n",
            b"*99999999999\r\n",
            b"$3\r\nabcXY",
            b":x\r\n",
            b"\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&[b'+'; 100]).is_err());
    }
}
