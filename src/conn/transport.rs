//! A connection's bytes on the wire: plain TCP, or TLS through a rustls
//! `ServerConnection` driven on the same readiness events.
//!
//! The contract the hub relies on, for both:
//! - [`read`] puts plaintext into the caller's buffer (the hub-wide
//!   scratch), so an idle connection holds no plaintext buffer of its own;
//!   [`Input::wire`] is what it took from the socket, for the read budget,
//!   and `drained` says a short read emptied the socket with nothing left
//!   behind in the transport (the hub may then skip the read that would
//!   only say `WouldBlock`).
//! - [`flush`] writes the outbox; a frame counts as written once the
//!   transport took it (the kernel, or rustls, which encrypts it at once).
//!   `Flush::Blocked` means bytes are still waiting for writable readiness:
//!   for TLS that includes encrypted records rustls holds, so a close is
//!   not considered sent before its record is on the socket.

use std::io::{self, Read};

use super::Conn;
use super::outbox::{Flush, Outbound};

/// The per-connection TLS state: boxed, so a plain connection pays one
/// pointer for it.
#[cfg(feature = "tls")]
pub(crate) type TlsSession = Box<rustls::ServerConnection>;

/// Without the `tls` feature there is no TLS session to hold.
#[cfg(not(feature = "tls"))]
#[derive(Debug)]
pub(crate) enum TlsSession {}

/// What one [`read`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// The peer closed (TCP EOF, or a TLS close_notify).
    Eof,
    /// `plain` bytes are at the start of the buffer (possibly none: a TLS
    /// handshake message); `wire` bytes came off the socket; `drained`: the
    /// read was short (the socket is empty) and no plaintext waits in the
    /// transport.
    Bytes {
        plain: usize,
        wire: usize,
        drained: bool,
    },
}

/// Reads once: plaintext into `buf`. `WouldBlock` when the socket is drained.
pub(crate) fn read<const Q: usize>(conn: &mut Conn<Q>, buf: &mut [u8]) -> io::Result<Input> {
    match &mut conn.tls {
        None => match conn.stream.read(buf)? {
            0 => Ok(Input::Eof),
            n => Ok(Input::Bytes {
                plain: n,
                wire: n,
                drained: n < buf.len(),
            }),
        },
        #[cfg(feature = "tls")]
        Some(tls) => tls_io::read(tls, &mut conn.stream, buf),
        #[cfg(not(feature = "tls"))]
        Some(never) => match *never {},
    }
}

/// Writes the outbox (and, for TLS, the records rustls holds).
pub(crate) fn flush<const Q: usize>(
    conn: &mut Conn<Q>,
    written: &mut impl FnMut(Outbound),
) -> io::Result<Flush> {
    match &mut conn.tls {
        None => conn.outbox.flush(&mut conn.stream, written),
        #[cfg(feature = "tls")]
        Some(tls) => tls_io::flush(tls, &mut conn.stream, &mut conn.outbox, written),
        #[cfg(not(feature = "tls"))]
        Some(never) => match *never {},
    }
}

/// Whether the transport has output waiting (TLS records not yet on the
/// socket, such as handshake replies after a read).
pub(crate) fn wants_write<const Q: usize>(conn: &Conn<Q>) -> bool {
    match &conn.tls {
        None => false,
        #[cfg(feature = "tls")]
        Some(tls) => tls.wants_write(),
        #[cfg(not(feature = "tls"))]
        Some(never) => match *never {},
    }
}

/// Ends our direction: a TLS close_notify (best effort), then a TCP FIN.
pub(crate) fn shutdown_write<const Q: usize>(conn: &mut Conn<Q>) {
    #[cfg(feature = "tls")]
    if let Some(tls) = &mut conn.tls {
        tls.send_close_notify();
        let _ = tls_io::send_records(tls, &mut conn.stream);
    }
    let _ = conn.stream.shutdown(std::net::Shutdown::Write);
}

/// The client's certificate (DER), when it presented one (mutual TLS).
pub(crate) fn peer_certificate<const Q: usize>(conn: &Conn<Q>) -> Option<&[u8]> {
    match &conn.tls {
        None => None,
        #[cfg(feature = "tls")]
        Some(tls) => tls.peer_certificates()?.first().map(|c| c.as_ref()),
        #[cfg(not(feature = "tls"))]
        Some(never) => match *never {},
    }
}

#[cfg(feature = "tls")]
mod tls_io {
    use std::io::{self, ErrorKind, IoSlice, Read, Write};

    use mio::net::TcpStream;
    use rustls::ServerConnection;

    use super::Input;
    use crate::conn::outbox::{Flush, Outbound, Outbox};

    /// Where ciphertext goes in the caller's buffer: behind room for the
    /// plaintext of one whole TLS record (at most 16 KiB + 2 KiB of
    /// expansion + a 5-byte header on the wire, so 20 KiB is more).
    const CIPHER_AT: usize = 20 * 1024;

    /// Reads the socket once, into the back of `buf`, and decrypts all of
    /// it into the front of `buf`.
    ///
    /// Why not `read_tls(sock)`: rustls reads at most 4 KiB per call, so a
    /// 16 KiB message took five `read` system calls, and a plain read's
    /// "short read means drained" shortcut did not apply. Here one `read`
    /// takes up to 44 KiB and rustls is fed from memory. The plaintext of
    /// the records fed so far never reaches the ciphertext not fed yet:
    /// plaintext is shorter than its record, and rustls holds at most one
    /// partial record (< `CIPHER_AT`) from before, so everything decrypted
    /// fits in front and nothing is left in rustls.
    pub(super) fn read(
        tls: &mut ServerConnection,
        sock: &mut TcpStream,
        buf: &mut [u8],
    ) -> io::Result<Input> {
        // Plaintext rustls still holds goes first (none, normally).
        match plaintext(tls, buf)? {
            Some(0) => return Ok(Input::Eof),
            Some(n) => {
                return Ok(Input::Bytes {
                    plain: n,
                    wire: 0,
                    drained: false,
                });
            }
            None => {}
        }
        let at = CIPHER_AT.min(buf.len() / 2);
        let wire = loop {
            match sock.read(&mut buf[at..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if wire == 0 {
            // rustls tells a truncation (EOF without close_notify) apart;
            // for the hub both end the connection.
            return Ok(Input::Eof);
        }
        let (mut fed, end, mut plain) = (at, at + wire, 0);
        let (mut closed, mut left) = (false, false);
        while fed < end && !closed {
            let n = tls.read_tls(&mut &buf[fed..end])?;
            if n == 0 {
                // After the peer's close_notify rustls takes nothing more.
                closed = true;
                break;
            }
            fed += n;
            if let Err(e) = tls.process_new_packets() {
                // rustls queued an alert for the peer: a best-effort send.
                let _ = send_records(tls, sock);
                return Err(io::Error::new(ErrorKind::InvalidData, e));
            }
            if plain == fed {
                // Only with a buffer too small for the rule above: the
                // plaintext waits in rustls for the next call.
                left = true;
                continue;
            }
            match plaintext(tls, &mut buf[plain..fed])? {
                Some(0) => closed = true,
                Some(n) => plain += n,
                None => {}
            }
        }
        if closed && plain == 0 {
            return Ok(Input::Eof);
        }
        Ok(Input::Bytes {
            plain,
            wire,
            // After a close_notify the next read reports the end.
            drained: wire < buf.len() - at && !closed && !left,
        })
    }

    /// Decrypted bytes into `buf`: `Some(0)` after the peer's close_notify
    /// (or an EOF without one), `None` when there are none yet.
    fn plaintext(tls: &mut ServerConnection, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match tls.reader().read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }

    /// Writes the records rustls holds until it holds none, or the socket
    /// would block (`WouldBlock`).
    pub(super) fn send_records(tls: &mut ServerConnection, sock: &mut TcpStream) -> io::Result<()> {
        while tls.wants_write() {
            match tls.write_tls(sock) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) fn flush<const Q: usize>(
        tls: &mut ServerConnection,
        sock: &mut TcpStream,
        outbox: &mut Outbox<Q>,
        written: &mut impl FnMut(Outbound),
    ) -> io::Result<Flush> {
        let result = outbox.flush(&mut Sink { tls, sock }, written)?;
        // Records left in rustls wait for writable readiness, like bytes
        // the kernel would not take.
        match send_records(tls, sock) {
            Ok(()) => Ok(result),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Flush::Blocked),
            Err(e) => Err(e),
        }
    }

    /// The outbox's writer: frames into rustls (encrypted into records at
    /// once), records onto the socket. rustls' buffer limit bounds what it
    /// holds; when that is full and the socket blocks, this blocks too.
    struct Sink<'a> {
        tls: &'a mut ServerConnection,
        sock: &'a mut TcpStream,
    }

    impl Sink<'_> {
        fn send(&mut self) -> io::Result<()> {
            match send_records(self.tls, self.sock) {
                Err(e) if e.kind() != ErrorKind::WouldBlock => Err(e),
                _ => Ok(()),
            }
        }
    }

    impl Write for Sink<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.send()?;
            let n = self.tls.writer().write_vectored(bufs)?;
            self.send()?;
            if n == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
