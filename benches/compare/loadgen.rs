//! The load client: one thread, one `mio` poller, thousands of non-blocking
//! connections, its own handshake and frame parser. It allocates nothing per
//! message: client frames are masked once up front (echo) or on the stack
//! (broadcast timestamps), and replies are parsed as a stream through one
//! shared read buffer, keeping only a frame's header and first bytes.
//!
//! Edge-triggered reads stop at the first short read (the socket was drained
//! then; new data raises a new edge), so a message costs the client one
//! `read` and one `write`, no more than it costs the server.
//!
//! With [`Setup::deflate`] it offers permessage-deflate and inflates every
//! compressed frame in full (as a browser would), through one shared
//! decompressor: a compressed body is gathered per connection (its frames
//! may span reads) and inflated once complete, so no connection keeps a
//! zlib state.
//!
//! Over `wss://` ([`Loadgen::connect_tls`]) each connection has a rustls
//! `ClientConnection`: the socket is read into a shared buffer of
//! ciphertext that rustls decrypts, and the plaintext is drained into the
//! same shared buffer the plain path reads into, so the short-read rule and
//! the one `read` + one `write` per message hold there too.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flate2::{Decompress, FlushDecompress};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// The fixed mask key of every client frame (RFC 6455 wants one; any value
/// makes the server unmask, which is the cost that matters).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// Handshakes in flight at once while connecting (below listen backlogs).
const CONNECT_WINDOW: usize = 96;
/// Bytes of a frame's body kept by the parser (the broadcast timestamp).
const PREFIX: usize = 16;

/// Builds a masked client frame carrying `body` as text.
pub fn client_frame(body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(0x81);
    let len = body.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(body.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
}

/// The shared decompressor of the compressed frames (one for all
/// connections: each message is a stream of its own).
pub struct Inflate {
    z: Decompress,
    out: Vec<u8>,
    /// Bytes inflated so far (a check that frames carried what they should).
    pub inflated: u64,
}

impl Default for Inflate {
    fn default() -> Inflate {
        Inflate {
            z: Decompress::new(false),
            out: Vec::with_capacity(64 << 10),
            inflated: 0,
        }
    }
}

impl Inflate {
    /// Inflates one message (RFC 7692: the body plus the 4-byte tail) and
    /// returns its first `PREFIX` bytes, or nothing if it is corrupt.
    fn message(&mut self, body: &[u8]) -> &[u8] {
        self.z.reset(false);
        self.out.clear();
        for input in [body, &[0, 0, 0xff, 0xff][..]] {
            let mut input = input;
            while !input.is_empty() {
                if self.out.len() == self.out.capacity() {
                    self.out.reserve(self.out.capacity().max(4096));
                }
                let before = self.z.total_in();
                if self
                    .z
                    .decompress_vec(input, &mut self.out, FlushDecompress::Sync)
                    .is_err()
                {
                    return &[];
                }
                input = &input[(self.z.total_in() - before) as usize..];
            }
        }
        self.inflated += self.out.len() as u64;
        &self.out[..self.out.len().min(PREFIX)]
    }
}

/// A streaming parser of server frames (unmasked); keeps the first
/// `PREFIX` bytes of each body, or the whole body of a compressed (RSV1)
/// frame, which it inflates once complete.
#[derive(Default)]
struct FrameParser {
    hdr: [u8; 14],
    hlen: usize,
    in_body: bool,
    remaining: u64,
    opcode: u8,
    prefix: [u8; PREFIX],
    plen: usize,
    compressed: bool,
    body: Vec<u8>,
}

impl FrameParser {
    /// Feeds bytes; calls `on_frame(opcode, prefix)` for every frame
    /// completed (the inflated prefix for a compressed one).
    fn feed(
        &mut self,
        mut data: &[u8],
        inflate: &mut Inflate,
        mut on_frame: impl FnMut(u8, &[u8]),
    ) {
        loop {
            if !self.in_body {
                let need = if self.hlen < 2 {
                    2
                } else {
                    let masked = if self.hdr[1] & 0x80 != 0 { 4 } else { 0 };
                    masked
                        + match self.hdr[1] & 0x7f {
                            126 => 4,
                            127 => 10,
                            _ => 2,
                        }
                };
                if self.hlen < need {
                    if data.is_empty() {
                        return;
                    }
                    let take = (need - self.hlen).min(data.len());
                    self.hdr[self.hlen..self.hlen + take].copy_from_slice(&data[..take]);
                    self.hlen += take;
                    data = &data[take..];
                    continue;
                }
                self.opcode = self.hdr[0] & 0x0f;
                self.compressed = self.hdr[0] & 0x40 != 0;
                self.body.clear();
                self.remaining = match self.hdr[1] & 0x7f {
                    126 => u16::from_be_bytes([self.hdr[2], self.hdr[3]]) as u64,
                    127 => u64::from_be_bytes(self.hdr[2..10].try_into().unwrap()),
                    n => n as u64,
                };
                self.in_body = true;
                self.plen = 0;
            }
            if self.remaining > 0 && data.is_empty() {
                return;
            }
            let take = (self.remaining as usize).min(data.len());
            if self.compressed {
                self.body.extend_from_slice(&data[..take]);
            } else {
                let keep = (PREFIX - self.plen).min(take);
                self.prefix[self.plen..self.plen + keep].copy_from_slice(&data[..keep]);
                self.plen += keep;
            }
            self.remaining -= take as u64;
            data = &data[take..];
            if self.remaining == 0 {
                if self.compressed {
                    on_frame(self.opcode, inflate.message(&self.body));
                } else {
                    on_frame(self.opcode, &self.prefix[..self.plen]);
                }
                self.in_body = false;
                self.hlen = 0;
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Connecting,
    Handshaking,
    Open,
    Dead,
}

struct Conn {
    stream: TcpStream,
    /// The TLS session of a `wss://` connection.
    tls: Option<Box<ClientConnection>>,
    phase: Phase,
    /// The response head while handshaking (freed when open).
    head: Vec<u8>,
    parser: FrameParser,
    /// Bytes of the current outbound frame already written.
    wpos: usize,
    /// Length of the current outbound frame (0: nothing pending).
    wlen: usize,
    sent_at: Instant,
    /// Stops reading (failure storm): its buffers and the server's ring fill.
    slow: bool,
    /// Whether deliveries are expected here (a group member; all of them
    /// for a broadcast). Others count as `stray` when they get one.
    member: bool,
    /// The server accepted permessage-deflate.
    deflate: bool,
}

/// Results of one measurement.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Messages (echo round trips or broadcast deliveries) per second.
    pub rate: f64,
    /// Latency percentiles in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    /// CPU share of the client thread during the window (1.0 = a core).
    pub client_cpu: f64,
    /// Broadcast: messages sent, deliveries expected but not seen.
    pub sent: u64,
    pub missing: u64,
    /// Deliveries to connections that should get none (group non-members).
    pub stray: u64,
    /// Bytes read from the server per delivery (frame headers included).
    pub wire_per_delivery: f64,
}

/// How the client connects: extra query parameters per connection, and
/// whether it offers permessage-deflate.
pub struct Setup<'a> {
    /// `&`-separated query parameters for connection `i` (may be empty).
    pub query: &'a dyn Fn(usize) -> String,
    /// Offer permessage-deflate (`client_max_window_bits`, as browsers do).
    pub deflate: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            query: &|_| String::new(),
            deflate: false,
        }
    }
}

/// The client: a set of connections to one server.
pub struct Loadgen {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    scratch: Scratch,
    /// The broadcast sender's frame, masked anew for every message.
    send_buf: Vec<u8>,
    base: Instant,
    inflate: Inflate,
    /// The broadcast body after its timestamp (`None`: dots).
    body: Option<Vec<u8>>,
}

/// The shared read buffers: plaintext (what the parser sees) and, over
/// TLS, the ciphertext read from the socket.
struct Scratch {
    plain: Box<[u8]>,
    raw: Box<[u8]>,
}

/// Reads what `stream` has, through `tls` when set, and hands the
/// plaintext to `sink`; stops at the first short read. `Ok(false)`: the
/// peer closed (or reset) the connection.
fn recv(
    stream: &mut TcpStream,
    tls: Option<&mut ClientConnection>,
    scratch: &mut Scratch,
    mut sink: impl FnMut(&[u8]),
) -> io::Result<bool> {
    let Some(tls) = tls else {
        loop {
            match stream.read(&mut scratch.plain) {
                Ok(0) => return Ok(false),
                Ok(m) => {
                    sink(&scratch.plain[..m]);
                    if m < scratch.plain.len() {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    };
    let open = loop {
        let m = match stream.read(&mut scratch.raw) {
            Ok(0) => break false,
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break false,
            Err(e) => return Err(e),
        };
        // rustls takes a record or so per call; decrypt and drain as it
        // goes so its plaintext buffer never fills.
        let mut cipher = &scratch.raw[..m];
        while !cipher.is_empty() {
            tls.read_tls(&mut cipher)?;
            tls.process_new_packets().map_err(io::Error::other)?;
            loop {
                match tls.reader().read(&mut scratch.plain) {
                    Ok(0) => break,
                    Ok(n) => sink(&scratch.plain[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        if m < scratch.raw.len() {
            break true;
        }
    };
    // Handshake messages (and alerts) rustls queued in answer.
    flush_tls(stream, tls)?;
    Ok(open)
}

/// Writes the records rustls holds, as far as the socket takes them.
fn flush_tls(stream: &mut TcpStream, tls: &mut ClientConnection) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn request(user: usize, setup: &Setup<'_>) -> Vec<u8> {
    let extra = (setup.query)(user);
    let sep = if extra.is_empty() { "" } else { "&" };
    let offer = if setup.deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    format!(
        "GET /ws?user_id=u{user}&client_id=c{user}{sep}{extra} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n{offer}\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

impl Loadgen {
    /// Opens `n` WebSocket connections to `addr`, at most `CONNECT_WINDOW`
    /// handshakes at a time; gives up after `limit`.
    pub fn connect(addr: SocketAddr, n: usize, limit: Duration) -> io::Result<Loadgen> {
        Self::connect_with(addr, n, limit, &Setup::default())
    }

    /// [`connect`](Self::connect) with extra query parameters per
    /// connection and, if asked, a permessage-deflate offer.
    pub fn connect_with(
        addr: SocketAddr,
        n: usize,
        limit: Duration,
        setup: &Setup<'_>,
    ) -> io::Result<Loadgen> {
        Self::open(addr, n, limit, setup, None)
    }

    /// Like [`Loadgen::connect`], over `wss://` with `config`.
    pub fn connect_tls(
        addr: SocketAddr,
        n: usize,
        limit: Duration,
        config: Arc<ClientConfig>,
    ) -> io::Result<Loadgen> {
        Self::open(addr, n, limit, &Setup::default(), Some(config))
    }

    fn open(
        addr: SocketAddr,
        n: usize,
        limit: Duration,
        setup: &Setup<'_>,
        tls: Option<Arc<ClientConfig>>,
    ) -> io::Result<Loadgen> {
        let mut lg = Loadgen {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Vec::with_capacity(n),
            scratch: Scratch {
                plain: vec![0; 256 * 1024].into_boxed_slice(),
                raw: vec![0; 256 * 1024].into_boxed_slice(),
            },
            send_buf: Vec::new(),
            base: Instant::now(),
            inflate: Inflate::default(),
            body: None,
        };
        let deadline = Instant::now() + limit;
        let mut open = 0;
        let mut pending = 0;
        while open < n {
            while lg.conns.len() < n && pending < CONNECT_WINDOW {
                let mut stream = TcpStream::connect(addr)?;
                let key = lg.conns.len();
                lg.poll.registry().register(
                    &mut stream,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                let tls = match &tls {
                    None => None,
                    Some(config) => Some(Box::new(
                        ClientConnection::new(
                            config.clone(),
                            ServerName::try_from("localhost").unwrap(),
                        )
                        .map_err(io::Error::other)?,
                    )),
                };
                lg.conns.push(Conn {
                    stream,
                    tls,
                    phase: Phase::Connecting,
                    head: Vec::with_capacity(256),
                    parser: FrameParser::default(),
                    wpos: 0,
                    wlen: 0,
                    sent_at: Instant::now(),
                    slow: false,
                    member: true,
                    deflate: false,
                });
                pending += 1;
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("only {open} of {n} connections opened"),
                ));
            }
            lg.poll
                .poll(&mut lg.events, Some(Duration::from_millis(50)))?;
            let ready: Vec<(usize, bool, bool)> = lg
                .events
                .iter()
                .map(|e| (e.token().0, e.is_readable(), e.is_writable()))
                .collect();
            for (key, readable, writable) in ready {
                let c = &mut lg.conns[key];
                if c.phase == Phase::Connecting && writable {
                    if let Ok(Some(e)) | Err(e) = c.stream.take_error() {
                        return Err(io::Error::other(format!("connect: {e}")));
                    }
                    if c.stream.peer_addr().is_err() {
                        continue;
                    }
                    let _ = c.stream.set_nodelay(true);
                    let request = request(key, setup);
                    match &mut c.tls {
                        // rustls keeps the request until its handshake is
                        // done; the ClientHello goes first.
                        Some(tls) => {
                            tls.writer().write_all(&request)?;
                            flush_tls(&mut c.stream, tls)?;
                        }
                        None => c.stream.write_all(&request)?,
                    }
                    c.phase = Phase::Handshaking;
                }
                if c.phase == Phase::Handshaking
                    && writable
                    && let Some(tls) = &mut c.tls
                {
                    flush_tls(&mut c.stream, tls)?;
                }
                if c.phase == Phase::Handshaking && readable {
                    let head = &mut c.head;
                    let alive = recv(&mut c.stream, c.tls.as_deref_mut(), &mut lg.scratch, |d| {
                        head.extend_from_slice(d)
                    })?;
                    if !alive {
                        return Err(io::Error::other("closed in handshake"));
                    }
                    if let Some(end) = c.head.windows(4).position(|w| w == b"\r\n\r\n") {
                        if !c.head.starts_with(b"HTTP/1.1 101") {
                            return Err(io::Error::other(format!(
                                "handshake refused: {}",
                                String::from_utf8_lossy(&c.head[..end])
                            )));
                        }
                        let rest = c.head.split_off(end + 4);
                        c.deflate = String::from_utf8_lossy(&c.head[..end])
                            .to_ascii_lowercase()
                            .contains("sec-websocket-extensions: permessage-deflate");
                        c.head = Vec::new();
                        c.phase = Phase::Open;
                        c.parser.feed(&rest, &mut lg.inflate, |_, _| {});
                        open += 1;
                        pending -= 1;
                    }
                }
            }
        }
        Ok(lg)
    }

    /// How many connections the server accepted permessage-deflate from.
    pub fn deflated(&self) -> usize {
        self.conns.iter().filter(|c| c.deflate).count()
    }

    /// Bytes inflated so far from compressed frames.
    pub fn inflated(&self) -> u64 {
        self.inflate.inflated
    }

    /// Marks which connections expect deliveries (group members).
    pub fn set_members(&mut self, member: impl Fn(usize) -> bool) {
        for (i, c) in self.conns.iter_mut().enumerate() {
            c.member = member(i);
        }
    }

    /// The bytes every broadcast message carries after its timestamp.
    pub fn set_body(&mut self, body: Vec<u8>) {
        self.body = Some(body);
    }

    fn write_pending(c: &mut Conn, shared: &[u8]) -> io::Result<()> {
        if let Some(tls) = &mut c.tls {
            // rustls takes all the plaintext at once (records it cannot
            // write yet stay in it); the frame counts as pending until
            // they are out.
            if c.wpos < c.wlen {
                tls.writer().write_all(&shared[c.wpos..c.wlen])?;
                c.wpos = c.wlen;
            }
            flush_tls(&mut c.stream, tls)?;
            if !tls.wants_write() {
                c.wpos = 0;
                c.wlen = 0;
            }
            return Ok(());
        }
        while c.wpos < c.wlen {
            match c.stream.write(&shared[c.wpos..c.wlen]) {
                Ok(m) => c.wpos += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        c.wpos = 0;
        c.wlen = 0;
        Ok(())
    }

    /// Reads what a connection has (one short read ends it) and parses it;
    /// returns the bytes read (the plaintext, over `wss://`).
    fn read_conn(
        c: &mut Conn,
        scratch: &mut Scratch,
        inflate: &mut Inflate,
        mut on_frame: impl FnMut(u8, &[u8]),
    ) -> io::Result<u64> {
        let parser = &mut c.parser;
        let mut total = 0;
        let open = recv(&mut c.stream, c.tls.as_deref_mut(), scratch, |d| {
            total += d.len() as u64;
            parser.feed(d, inflate, &mut on_frame)
        })?;
        if !open {
            c.phase = Phase::Dead;
        }
        Ok(total)
    }

    /// Closed-loop echo: every connection keeps one message of `size` bytes
    /// in flight. Measures round trips per second over `window` after
    /// `warmup`.
    pub fn echo(
        &mut self,
        size: usize,
        warmup: Duration,
        window: Duration,
    ) -> io::Result<Measured> {
        let body = vec![b'x'; size];
        let mut frame = Vec::new();
        client_frame(&body, &mut frame);
        let now = Instant::now();
        for c in &mut self.conns {
            c.wpos = 0;
            c.wlen = frame.len();
            c.sent_at = now;
            Self::write_pending(c, &frame)?;
        }
        let start = now + warmup;
        let end = start + window;
        let mut samples: Vec<u32> = Vec::with_capacity(4 << 20);
        let mut count = 0u64;
        let mut cpu0 = None;
        loop {
            self.poll
                .poll(&mut self.events, Some(Duration::from_millis(5)))?;
            let now = Instant::now();
            if now >= end {
                break;
            }
            if cpu0.is_none() && now >= start {
                cpu0 = Some(thread_cpu());
            }
            let measuring = now >= start;
            for ev in self.events.iter() {
                let c = &mut self.conns[ev.token().0];
                if ev.is_writable() && c.wlen > 0 {
                    Self::write_pending(c, &frame)?;
                }
                if !ev.is_readable() {
                    continue;
                }
                let mut done = 0;
                Self::read_conn(c, &mut self.scratch, &mut self.inflate, |op, _| {
                    if op == 1 || op == 2 {
                        done += 1;
                    }
                })?;
                if c.phase == Phase::Dead {
                    continue;
                }
                for _ in 0..done {
                    let t = Instant::now();
                    if measuring {
                        count += 1;
                        if samples.len() < samples.capacity() {
                            samples.push((t - c.sent_at).as_micros().min(u32::MAX as u128) as u32);
                        }
                    }
                    c.sent_at = t;
                    c.wpos = 0;
                    c.wlen = frame.len();
                    Self::write_pending(c, &frame)?;
                }
            }
        }
        let cpu = thread_cpu() - cpu0.unwrap_or(0.0);
        let (p50_us, p99_us) = percentiles(&mut samples);
        Ok(Measured {
            rate: count as f64 / window.as_secs_f64(),
            p50_us,
            p99_us,
            client_cpu: cpu / window.as_secs_f64(),
            ..Measured::default()
        })
    }

    /// Broadcast fan-out: connection 0 sends timestamped messages of `size`
    /// bytes, the server sends each to everyone, the others count
    /// deliveries and their latency. `rate`: `None` keeps `in_flight`
    /// messages outstanding (closed loop, for throughput); `Some(r)` sends
    /// `r` messages per second whatever happens (open loop, for the storm).
    /// `slow_share` of the receivers stop reading. Only members (all, unless
    /// [`set_members`](Self::set_members) said otherwise) are expected to
    /// get the messages.
    pub fn broadcast(
        &mut self,
        size: usize,
        in_flight: u64,
        rate: Option<f64>,
        slow_share: f64,
        warmup: Duration,
        window: Duration,
    ) -> io::Result<Measured> {
        let size = size.max(PREFIX);
        let receivers = self.conns.len() as u64 - 1;
        let slow = (receivers as f64 * slow_share).round() as usize;
        // Spread the slow ones over the slab rather than a contiguous block.
        if let Some(step) = (receivers as usize).checked_div(slow) {
            for i in 0..slow {
                self.conns[1 + i * step].slow = true;
            }
        }
        let healthy = self.conns[1..]
            .iter()
            .filter(|c| c.member && !c.slow)
            .count() as u64;
        let (mut stray, mut wire, mut frames) = (0u64, 0u64, 0u64);
        let start = Instant::now() + warmup;
        let end = start + window;
        let mut samples: Vec<u32> = Vec::with_capacity(16 << 20);
        let (mut sent, mut sent_measured, mut delivered, mut delivered_measured) =
            (0u64, 0, 0u64, 0);
        let mut last_progress = Instant::now();
        let mut next_send = Instant::now();
        let mut cpu0 = None;
        let base = self.base;
        let mut body = match &self.body {
            Some(b) => [&[b'.'; PREFIX][..], b].concat(),
            None => vec![b'.'; size],
        };
        // After the window nothing more is sent; deliveries of what was sent
        // in it are still awaited (at most a second) so that their latency
        // counts and only real losses count as missing.
        let drain_end = end + Duration::from_secs(1);
        let mut cpu1 = None;
        loop {
            let now = Instant::now();
            let draining = now >= end;
            if draining && cpu1.is_none() {
                cpu1 = Some(thread_cpu());
            }
            if draining && (samples.len() as u64 >= sent_measured * healthy || now >= drain_end) {
                break;
            }
            if cpu0.is_none() && now >= start {
                cpu0 = Some(thread_cpu());
            }
            // The sender: closed loop on outstanding deliveries, or a clock.
            let may_send = !draining
                && match rate {
                    None => {
                        sent * healthy <= delivered + (in_flight - 1) * healthy
                            || now - last_progress > Duration::from_millis(500)
                    }
                    Some(_) => now >= next_send,
                };
            let c0 = &mut self.conns[0];
            if may_send && c0.wlen == 0 {
                let ts = (now - base).as_nanos() as u64;
                body[..PREFIX].copy_from_slice(format_hex(ts).as_slice());
                client_frame(&body, &mut self.send_buf);
                c0.wlen = self.send_buf.len();
                c0.wpos = 0;
                Self::write_pending(c0, &self.send_buf)?;
                sent += 1;
                if now >= start {
                    sent_measured += 1;
                }
                if let Some(r) = rate {
                    next_send += Duration::from_secs_f64(1.0 / r);
                }
                last_progress = now;
            }
            let timeout = match rate {
                Some(_) => next_send.saturating_duration_since(Instant::now()),
                None => Duration::from_millis(5),
            };
            self.poll.poll(&mut self.events, Some(timeout))?;
            let t = Instant::now();
            let measuring = t >= start;
            let in_window = measuring && t < end;
            for ev in self.events.iter() {
                let key = ev.token().0;
                let c = &mut self.conns[key];
                if ev.is_writable() && c.wlen > 0 {
                    Self::write_pending(c, &self.send_buf)?;
                }
                if !ev.is_readable() || c.slow {
                    continue;
                }
                let now = Instant::now();
                let mut got = 0u64;
                let member = c.member;
                let n = Self::read_conn(c, &mut self.scratch, &mut self.inflate, |op, pre| {
                    if key == 0 || op != 1 {
                        return;
                    }
                    if !member {
                        stray += 1;
                        return;
                    }
                    got += 1;
                    if measuring && let Some(ts) = parse_hex(pre) {
                        let sent_at = base + Duration::from_nanos(ts);
                        if sent_at >= start && sent_at < end && samples.len() < samples.capacity() {
                            let us = now.saturating_duration_since(sent_at).as_micros();
                            samples.push(us.min(u32::MAX as u128) as u32);
                        }
                    }
                })?;
                if key != 0 {
                    wire += n;
                    frames += got;
                }
                if got > 0 {
                    delivered += got;
                    if in_window {
                        delivered_measured += got;
                    }
                    last_progress = now;
                }
            }
        }
        let cpu = cpu1.unwrap_or_else(thread_cpu) - cpu0.unwrap_or(0.0);
        let (p50_us, p99_us) = percentiles(&mut samples);
        let expected = sent_measured * healthy;
        Ok(Measured {
            rate: delivered_measured as f64 / window.as_secs_f64(),
            p50_us,
            p99_us,
            client_cpu: cpu / window.as_secs_f64(),
            sent: sent_measured,
            missing: expected.saturating_sub(samples.len() as u64),
            stray,
            wire_per_delivery: wire as f64 / frames.max(1) as f64,
        })
    }
}

/// The body of user `from`'s chat message to user `to`, `size` bytes long
/// (padded in `data.text`).
pub fn chat_message(to: usize, size: usize) -> Vec<u8> {
    let head = format!(r#"{{"message_type":"text","receiver":"u{to}","data":{{"text":""#);
    let tail = r#""}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut body = head.into_bytes();
    body.extend(std::iter::repeat_n(b'x', pad));
    body.extend_from_slice(tail.as_bytes());
    body
}

/// How every relayed message starts, whoever stamped it (the hub's id
/// first); anything else (an error notice) counts as missing.
const RELAYED: &[u8] = br#"{"message_id":""#;

impl Loadgen {
    /// Closed-loop JSON relay between users: connection `i` (user `u{i}`)
    /// sends chat messages of `size` bytes to user `u{i^1}` (its pair),
    /// `in_flight` at a time, the next as soon as one arrives. Measures
    /// relayed messages per second and send-to-arrival latency; a message
    /// a server answers with anything but a relayed message (an error)
    /// counts in `missing`.
    pub fn relay(
        &mut self,
        size: usize,
        in_flight: usize,
        warmup: Duration,
        window: Duration,
    ) -> io::Result<Measured> {
        let n = self.conns.len() & !1;
        // Every connection's frames, masked once: `in_flight` copies, so a
        // burst of owed messages goes out in one write.
        let frames: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut one = Vec::new();
                client_frame(&chat_message(i ^ 1, size), &mut one);
                one.repeat(in_flight)
            })
            .collect();
        let flen = frames.first().map_or(0, |f| f.len() / in_flight);
        // Send times of each connection's messages in flight (a pair's
        // messages arrive in the order sent: one TCP stream, one server
        // thread), and messages owed once a write is done.
        let mut times: Vec<VecDeque<Instant>> =
            (0..n).map(|_| VecDeque::with_capacity(in_flight)).collect();
        let mut owed = vec![0usize; n];
        let now = Instant::now();
        for i in 0..n {
            let c = &mut self.conns[i];
            c.wpos = 0;
            c.wlen = in_flight * flen;
            times[i].extend(std::iter::repeat_n(now, in_flight));
            Self::write_pending(c, &frames[i])?;
        }
        let start = now + warmup;
        let end = start + window;
        let mut samples: Vec<u32> = Vec::with_capacity(4 << 20);
        let (mut count, mut errors) = (0u64, 0u64);
        let mut cpu0 = None;
        loop {
            self.poll
                .poll(&mut self.events, Some(Duration::from_millis(5)))?;
            let now = Instant::now();
            if now >= end {
                break;
            }
            if cpu0.is_none() && now >= start {
                cpu0 = Some(thread_cpu());
            }
            let measuring = now >= start;
            for ev in self.events.iter() {
                let key = ev.token().0;
                if key >= n {
                    continue;
                }
                let c = &mut self.conns[key];
                if ev.is_writable() && c.wlen > 0 {
                    Self::write_pending(c, &frames[key])?;
                    Self::send_owed(c, &frames[key], flen, &mut owed[key], &mut times[key])?;
                }
                if !ev.is_readable() {
                    continue;
                }
                let (mut done, mut bad) = (0, 0);
                Self::read_conn(c, &mut self.scratch, &mut self.inflate, |op, pre| {
                    if op == 1 && pre.starts_with(RELAYED) {
                        done += 1;
                    } else if op == 1 {
                        bad += 1;
                    }
                })?;
                if measuring {
                    errors += bad;
                }
                let from = key ^ 1;
                let t = Instant::now();
                for _ in 0..done {
                    let sent = times[from].pop_front().unwrap_or(t);
                    if measuring {
                        count += 1;
                        if samples.len() < samples.capacity() {
                            samples.push((t - sent).as_micros().min(u32::MAX as u128) as u32);
                        }
                    }
                }
                owed[from] += done;
                let c = &mut self.conns[from];
                Self::send_owed(c, &frames[from], flen, &mut owed[from], &mut times[from])?;
            }
        }
        let cpu = thread_cpu() - cpu0.unwrap_or(0.0);
        let (p50_us, p99_us) = percentiles(&mut samples);
        Ok(Measured {
            rate: count as f64 / window.as_secs_f64(),
            p50_us,
            p99_us,
            client_cpu: cpu / window.as_secs_f64(),
            missing: errors,
            ..Measured::default()
        })
    }

    /// Sends the messages a connection owes, once its last write is done.
    fn send_owed(
        c: &mut Conn,
        frames: &[u8],
        flen: usize,
        owed: &mut usize,
        times: &mut VecDeque<Instant>,
    ) -> io::Result<()> {
        if c.wlen > 0 || *owed == 0 || c.phase != Phase::Open {
            return Ok(());
        }
        let k = std::mem::take(owed);
        times.extend(std::iter::repeat_n(Instant::now(), k));
        c.wpos = 0;
        c.wlen = k * flen;
        Self::write_pending(c, frames)
    }
}

fn format_hex(v: u64) -> [u8; 16] {
    let mut out = [b'0'; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let nib = (v >> ((15 - i) * 4)) & 0xf;
        *o = b"0123456789abcdef"[nib as usize];
    }
    out
}

fn parse_hex(b: &[u8]) -> Option<u64> {
    if b.len() < PREFIX {
        return None;
    }
    let mut v = 0u64;
    for &c in &b[..PREFIX] {
        let d = (c as char).to_digit(16)?;
        v = v << 4 | d as u64;
    }
    Some(v)
}

/// p50 and p99 of the samples, in microseconds.
fn percentiles(samples: &mut [u32]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64;
    (at(0.50), at(0.99))
}

/// CPU seconds used by the calling thread so far.
pub fn thread_cpu() -> f64 {
    proc_cpu("/proc/thread-self/stat")
}

/// CPU seconds (user + system) of the process or thread behind a
/// `/proc/.../stat` file (clock ticks of 10 ms).
pub fn proc_cpu(path: &str) -> f64 {
    let (user, sys) = proc_cpu_split(path);
    user + sys
}

/// CPU seconds in user space and in the kernel, apart.
pub fn proc_cpu_split(path: &str) -> (f64, f64) {
    let Ok(s) = std::fs::read_to_string(path) else {
        return (0.0, 0.0);
    };
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return (0.0, 0.0);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// Checks the parser and the timestamp codec (run before every comparison:
/// bench targets have no test harness).
pub fn self_check() {
    {
        let mut stream = Vec::new();
        for len in [0usize, 5, 125, 126, 300, 70_000] {
            let mut f = vec![0x81];
            if len < 126 {
                f.push(len as u8);
            } else if len <= 65535 {
                f.push(126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                f.push(127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
            f.extend(std::iter::repeat_n(b'a', len));
            stream.extend_from_slice(&f);
        }
        for chunk in [1, 3, 7, 1000, 1 << 20] {
            let mut p = FrameParser::default();
            let mut n = 0;
            for c in stream.chunks(chunk) {
                p.feed(c, &mut Inflate::default(), |op, _| {
                    assert_eq!(op, 1);
                    n += 1;
                });
            }
            assert_eq!(n, 6, "chunk {chunk}");
        }
    }

    {
        // A compressed frame (RSV1), split anywhere, inflates to its text.
        let text = format!("{}{}", "0123456789abcdef", "chat ".repeat(200));
        let mut z = flate2::Compress::new(flate2::Compression::new(3), false);
        let mut body = Vec::with_capacity(4096);
        z.compress_vec(text.as_bytes(), &mut body, flate2::FlushCompress::Sync)
            .unwrap();
        body.truncate(body.len() - 4);
        assert!(body.len() < 126);
        let mut frame = vec![0xC1, body.len() as u8];
        frame.extend_from_slice(&body);
        for chunk in [1, 5, 1000] {
            let (mut p, mut inflate, mut n) = (FrameParser::default(), Inflate::default(), 0);
            for c in frame.chunks(chunk) {
                p.feed(c, &mut inflate, |op, pre| {
                    assert_eq!((op, pre), (1, &b"0123456789abcdef"[..]));
                    n += 1;
                });
            }
            assert_eq!((n, inflate.inflated), (1, text.len() as u64));
        }
    }

    {
        assert_eq!(
            parse_hex(&format_hex(0xdead_beef_1234)),
            Some(0xdead_beef_1234)
        );
    }
}
