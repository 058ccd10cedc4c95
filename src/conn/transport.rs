//! A connection's bytes on the wire: plain TCP, or TLS through a rustls
//! `ServerConnection` driven on the same readiness events.
//!
//! The contract the hub relies on, for both:
//! - [`read`] puts plaintext into the caller's buffer (the hub-wide
//!   scratch), so an idle connection holds no plaintext buffer of its own;
//!   [`Input::wire`] is what it took from the socket, for the read budget.
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
    /// handshake message); `wire` bytes came off the socket.
    Bytes { plain: usize, wire: usize },
}

/// Reads once: plaintext into `buf`. `WouldBlock` when the socket is drained.
pub(crate) fn read<const Q: usize>(conn: &mut Conn<Q>, buf: &mut [u8]) -> io::Result<Input> {
    match &mut conn.tls {
        None => match conn.stream.read(buf)? {
            0 => Ok(Input::Eof),
            n => Ok(Input::Bytes { plain: n, wire: n }),
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

    pub(super) fn read(
        tls: &mut ServerConnection,
        sock: &mut TcpStream,
        buf: &mut [u8],
    ) -> io::Result<Input> {
        // Plaintext rustls still holds goes first: then, and only then,
        // more records from the socket (rustls refuses to read while its
        // plaintext buffer is full).
        match plaintext(tls, buf)? {
            Some(0) => return Ok(Input::Eof),
            Some(n) => return Ok(Input::Bytes { plain: n, wire: 0 }),
            None => {}
        }
        let wire = loop {
            match tls.read_tls(sock) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if wire == 0 {
            return Ok(Input::Eof);
        }
        if let Err(e) = tls.process_new_packets() {
            // rustls queued an alert for the peer: a best-effort send.
            let _ = send_records(tls, sock);
            return Err(io::Error::new(ErrorKind::InvalidData, e));
        }
        let plain = plaintext(tls, buf)?.unwrap_or(0);
        Ok(Input::Bytes { plain, wire })
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
