//! The write side of one connection: a fixed ring of data frames, a few
//! control frames that overtake them, and the close frame that ends them.
//!
//! Frames are shared [`Payload`]s, written straight from the shared bytes with
//! vectored writes, so the hub keeps no per-connection write buffer at all. A
//! frame is never interleaved with another: control frames overtake data
//! frames only at frame boundaries.

use std::io::{self, IoSlice, Write};

use crate::delivery::Tag;

use crate::message::Payload;
use crate::util::queue::RingQueue;

/// Control frames (pongs, notices) waiting at once. Enough for a burst of
/// pings to get one pong each (Autobahn 2.10 sends ten at once); beyond it a
/// new pong replaces the newest waiting one, since a peer only needs the pong
/// to the latest ping (RFC 6455 5.5.3).
const CONTROL_SLOTS: usize = 16;
/// First byte of an unfragmented pong frame.
const PONG_HEAD: u8 = 0x8a;
/// Frames handed to one `write_vectored` call.
const MAX_IOV: usize = 16;

/// A data frame waiting in a connection's ring.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    /// The encoded frame, shared with the other recipients.
    pub payload: Payload,
    /// When it was queued, for `send_timeout`: milliseconds on the hub's
    /// clock (wrapping; ages are differences). Four bytes instead of an
    /// `Instant`'s sixteen, in every entry of every ring.
    pub enqueued: u32,
    /// The delivery it belongs to, for sends with retry.
    pub tag: Option<Tag>,
}

/// When a queued close frame goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseWhen {
    /// After the frame being written: queued data is abandoned.
    Now,
    /// After every queued data frame (graceful close, shutdown).
    AfterData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Control,
    Data,
    Close,
}

/// Whether everything queued has reached the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Nothing left to write.
    Drained,
    /// The socket is full; wait for writable readiness.
    Blocked,
}

pub(crate) struct Outbox<const Q: usize> {
    data: RingQueue<Outbound, Q>,
    control: RingQueue<Payload, CONTROL_SLOTS>,
    close: Option<(Payload, CloseWhen)>,
    close_sent: bool,
    /// The lane whose head frame is partly written, and how far.
    partial: Option<(Lane, usize)>,
}

impl<const Q: usize> Outbox<Q> {
    pub(crate) fn new() -> Self {
        Outbox {
            data: RingQueue::new(),
            control: RingQueue::new(),
            close: None,
            close_sent: false,
            partial: None,
        }
    }

    /// Queues a data frame; a full ring gives it back (`queue_full`).
    pub(crate) fn push(&mut self, out: Outbound) -> Result<(), Outbound> {
        if self.close.is_some() {
            return Err(out);
        }
        self.data.push_back(out)
    }

    /// Data frames the ring can still take (none once closing).
    pub(crate) fn free(&self) -> usize {
        if self.close.is_some() {
            0
        } else {
            Q - self.data.len()
        }
    }

    /// Queues a control frame (pong, ping); false when the control lane is full.
    ///
    /// On a full lane a pong replaces the newest waiting pong (unless that one
    /// is partly written): dropping the new one instead would leave the
    /// latest ping unanswered, which RFC 6455 5.5.3 does not allow.
    pub(crate) fn push_control(&mut self, frame: Payload) -> bool {
        if self.close.is_some() {
            return false;
        }
        let frame = match self.control.push_back(frame) {
            Ok(()) => return true,
            Err(frame) => frame,
        };
        let back_is_partial =
            self.control.len() == 1 && matches!(self.partial, Some((Lane::Control, _)));
        if frame.frame().first() != Some(&PONG_HEAD) || back_is_partial {
            return false;
        }
        match self.control.back_mut() {
            Some(back) if back.frame().first() == Some(&PONG_HEAD) => {
                *back = frame;
                true
            }
            _ => false,
        }
    }

    /// Queues the close frame; the first one wins.
    pub(crate) fn close(&mut self, frame: Payload, when: CloseWhen) {
        match &mut self.close {
            None => self.close = Some((frame, when)),
            // An urgent close overrides a graceful one not yet started.
            Some((_, w)) if when == CloseWhen::Now && !self.close_sent => *w = CloseWhen::Now,
            Some(_) => {}
        }
    }

    /// The close frame has been written completely.
    pub(crate) fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Data frames waiting (including one partly written).
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether anything at all waits to be written.
    pub(crate) fn has_pending(&self) -> bool {
        !self.close_sent && (self.chunks().next().is_some())
    }

    /// When the oldest data frame not yet being written was queued.
    pub(crate) fn oldest_waiting(&self) -> Option<u32> {
        let skip = usize::from(matches!(self.partial, Some((Lane::Data, _))));
        self.data.iter().nth(skip).map(|o| o.enqueued)
    }

    /// Removes data frames at least `timeout` ms old at `now` from the front (a
    /// frame already partly written stays: it is on the wire), oldest first.
    pub(crate) fn expire(&mut self, now: u32, timeout: u32, expired: &mut impl FnMut(Outbound)) {
        // Frames wait in queue order, so the expired ones are a run at the
        // front, behind the frame being written (if any).
        let in_flight = match self.partial {
            Some((Lane::Data, _)) => self.data.pop_front(),
            _ => None,
        };
        while self
            .data
            .front()
            .is_some_and(|o| now.wrapping_sub(o.enqueued) >= timeout)
        {
            if let Some(out) = self.data.pop_front() {
                expired(out);
            }
        }
        if let Some(out) = in_flight {
            // It came out of this ring a moment ago: there is room.
            let _ = self.data.push_front(out);
        }
    }

    /// Takes every data frame not started yet (a close that goes now will
    /// never write them); a frame partly written stays and is finished.
    pub(crate) fn abandon_waiting(&mut self, abandoned: &mut impl FnMut(Outbound)) {
        let in_flight = match self.partial {
            Some((Lane::Data, _)) => self.data.pop_front(),
            _ => None,
        };
        while let Some(out) = self.data.pop_front() {
            abandoned(out);
        }
        if let Some(out) = in_flight {
            let _ = self.data.push_front(out);
        }
    }

    /// Takes every data frame not yet written completely (the connection is
    /// gone: the caller fails them).
    pub(crate) fn drain_data(&mut self) -> impl Iterator<Item = Outbound> + '_ {
        if matches!(self.partial, Some((Lane::Data, _))) {
            self.partial = None;
        }
        self.data.drain()
    }

    /// The frames to write next, in wire order, from the partly written one on.
    fn chunks(&self) -> impl Iterator<Item = (Lane, &[u8])> {
        let (first_lane, offset) = match self.partial {
            Some((lane, off)) => (Some(lane), off),
            None => (None, 0),
        };
        let head = first_lane.and_then(|lane| {
            let frame = match lane {
                Lane::Control => self.control.front()?.frame(),
                Lane::Data => self.data.front()?.payload.frame(),
                Lane::Close => self.close.as_ref()?.0.frame(),
            };
            Some((lane, &frame[offset..]))
        });
        let skip = |lane| usize::from(first_lane == Some(lane));
        let (close_now, close_later) = match (&self.close, first_lane) {
            (_, Some(Lane::Close)) => (None, None),
            _ if self.close_sent => (None, None),
            (Some((p, CloseWhen::Now)), _) => (Some(p), None),
            (Some((p, CloseWhen::AfterData)), _) => (None, Some(p)),
            (None, _) => (None, None),
        };
        let data_allowed = !self.close_sent && close_now.is_none();
        let control_allowed = !self.close_sent && first_lane != Some(Lane::Close);
        let control = self
            .control
            .iter()
            .skip(skip(Lane::Control))
            .filter(move |_| control_allowed)
            .map(|p| (Lane::Control, p.frame()));
        let data = self
            .data
            .iter()
            .skip(skip(Lane::Data))
            .filter(move |_| data_allowed)
            .map(|o| (Lane::Data, o.payload.frame()));
        let close_now = close_now.map(|p| (Lane::Close, p.frame()));
        let close_later = close_later.map(|p| (Lane::Close, p.frame()));
        head.into_iter()
            .chain(control)
            .chain(close_now)
            .chain(data)
            .chain(close_later)
    }

    /// Writes as much as the socket takes. `written` gets every data frame
    /// that reached the socket completely.
    pub(crate) fn flush<W: Write>(
        &mut self,
        w: &mut W,
        written: &mut impl FnMut(Outbound),
    ) -> io::Result<Flush> {
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            if self.only_whole_data() {
                // The common case, kept off the general lane logic: whole
                // data frames, nothing to interleave.
                for (slot, out) in slices.iter_mut().zip(self.data.iter()) {
                    *slot = IoSlice::new(out.payload.frame());
                    count += 1;
                }
            } else {
                for (slot, (lane, chunk)) in slices.iter_mut().zip(self.chunks()) {
                    *slot = IoSlice::new(chunk);
                    count += 1;
                    // Nothing may follow a close frame on the wire.
                    if lane == Lane::Close {
                        break;
                    }
                }
            }
            if count == 0 {
                return Ok(Flush::Drained);
            }
            // One frame (the common case with one message in flight): a
            // plain `send`, which skips `writev`'s iovec import and VFS
            // checks.
            let result = if count == 1 {
                w.write(&slices[0])
            } else {
                w.write_vectored(&slices[..count])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n, written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Nothing but whole data frames waits: no partial frame, no control
    /// frame, no close.
    fn only_whole_data(&self) -> bool {
        self.partial.is_none() && self.control.is_empty() && self.close.is_none()
    }

    fn advance(&mut self, mut n: usize, written: &mut impl FnMut(Outbound)) {
        if self.only_whole_data() {
            while let Some(len) = self.data.front().map(|o| o.payload.frame().len()) {
                if n < len {
                    if n > 0 {
                        self.partial = Some((Lane::Data, n));
                    }
                    return;
                }
                n -= len;
                if let Some(out) = self.data.pop_front() {
                    written(out);
                }
            }
            return;
        }
        while n > 0 {
            let Some((lane, chunk_len)) = self.chunks().next().map(|(l, c)| (l, c.len())) else {
                return;
            };
            if n < chunk_len {
                let done = self.partial.map_or(0, |(_, off)| off);
                self.partial = Some((lane, done + n));
                return;
            }
            n -= chunk_len;
            self.partial = None;
            match lane {
                Lane::Control => {
                    self.control.pop_front();
                }
                Lane::Data => {
                    if let Some(out) = self.data.pop_front() {
                        written(out);
                    }
                }
                Lane::Close => self.close_sent = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket stand-in that takes at most `room` bytes, then would block.
    struct Sink {
        bytes: Vec<u8>,
        room: usize,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.bytes.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut total = 0;
            for b in bufs {
                match self.write(b) {
                    Ok(n) => total += n,
                    Err(e) if total == 0 => return Err(e),
                    Err(_) => break,
                }
                if self.room == 0 {
                    break;
                }
            }
            Ok(total)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn out(text: &str) -> Outbound {
        Outbound {
            payload: Payload::text(text),
            enqueued: 0,
            tag: None,
        }
    }

    #[test]
    fn partial_writes_keep_frames_whole_and_control_overtakes_at_boundaries() {
        let mut ob: Outbox<4> = Outbox::new();
        ob.push(out("aaaa")).unwrap();
        ob.push(out("bbbb")).unwrap();
        let mut sink = Sink {
            bytes: vec![],
            room: 3,
        };
        let mut done = Vec::new();
        assert_eq!(
            ob.flush(&mut sink, &mut |o| done.push(o)).unwrap(),
            Flush::Blocked
        );
        // A pong queued mid-frame must wait for the frame to finish.
        assert!(ob.push_control(Payload::encode(crate::ws::OpCode::Pong, b"p")));
        sink.room = 1000;
        assert_eq!(
            ob.flush(&mut sink, &mut |o| done.push(o)).unwrap(),
            Flush::Drained
        );
        let mut expect = Payload::text("aaaa").frame().to_vec();
        expect.extend_from_slice(Payload::encode(crate::ws::OpCode::Pong, b"p").frame());
        expect.extend_from_slice(Payload::text("bbbb").frame());
        assert_eq!(sink.bytes, expect);
        assert_eq!(done.len(), 2);
        assert!(!ob.has_pending());
    }

    #[test]
    fn a_burst_of_pongs_keeps_the_pong_to_the_latest_ping() {
        let pong = |i: usize| Payload::encode(crate::ws::OpCode::Pong, format!("p{i}").as_bytes());
        let mut ob: Outbox<4> = Outbox::new();
        for i in 0..CONTROL_SLOTS + 5 {
            assert!(ob.push_control(pong(i)), "pong {i} refused");
        }
        let mut sink = Sink {
            bytes: vec![],
            room: usize::MAX,
        };
        ob.flush(&mut sink, &mut |_| {}).unwrap();
        // The first CONTROL_SLOTS - 1 in order, then the very last one.
        let mut expect = Vec::new();
        for i in (0..CONTROL_SLOTS - 1).chain([CONTROL_SLOTS + 4]) {
            expect.extend_from_slice(pong(i).frame());
        }
        assert_eq!(sink.bytes, expect);
    }

    #[test]
    fn full_ring_gives_the_frame_back() {
        let mut ob: Outbox<2> = Outbox::new();
        ob.push(out("1")).unwrap();
        ob.push(out("2")).unwrap();
        assert!(ob.push(out("3")).is_err());
        assert_eq!(ob.len(), 2);
    }

    #[test]
    fn close_now_abandons_data_after_the_current_frame() {
        let mut ob: Outbox<4> = Outbox::new();
        ob.push(out("first")).unwrap();
        ob.push(out("second")).unwrap();
        let mut sink = Sink {
            bytes: vec![],
            room: 2,
        };
        ob.flush(&mut sink, &mut |_| {}).unwrap();
        let close = Payload::encode(crate::ws::OpCode::Close, &[0x03, 0xEA]);
        ob.close(close.clone(), CloseWhen::Now);
        assert!(ob.push(out("late")).is_err());
        sink.room = 1000;
        assert_eq!(ob.flush(&mut sink, &mut |_| {}).unwrap(), Flush::Drained);
        let mut expect = Payload::text("first").frame().to_vec();
        expect.extend_from_slice(close.frame());
        assert_eq!(sink.bytes, expect);
        assert!(ob.close_sent());
        assert_eq!(ob.drain_data().count(), 1);
    }

    #[test]
    fn graceful_close_goes_after_data() {
        let mut ob: Outbox<4> = Outbox::new();
        ob.push(out("x")).unwrap();
        let close = Payload::encode(crate::ws::OpCode::Close, &[0x03, 0xE9]);
        ob.close(close.clone(), CloseWhen::AfterData);
        let mut sink = Sink {
            bytes: vec![],
            room: 1000,
        };
        let mut n = 0;
        ob.flush(&mut sink, &mut |_| n += 1).unwrap();
        let mut expect = Payload::text("x").frame().to_vec();
        expect.extend_from_slice(close.frame());
        assert_eq!(sink.bytes, expect);
        assert_eq!(n, 1);
        assert!(ob.close_sent());
    }

    #[test]
    fn expiry_skips_the_frame_on_the_wire() {
        let mut ob: Outbox<4> = Outbox::new();
        for t in ["a", "b", "c"] {
            ob.push(out(t)).unwrap();
        }
        let mut sink = Sink {
            bytes: vec![],
            room: 2,
        };
        ob.flush(&mut sink, &mut |_| {}).unwrap();
        let mut gone = Vec::new();
        ob.expire(10, 10, &mut |o| gone.push(o.payload.body().to_vec()));
        assert_eq!(gone, vec![b"b".to_vec(), b"c".to_vec()]);
        sink.room = 100;
        ob.flush(&mut sink, &mut |_| {}).unwrap();
        assert_eq!(sink.bytes, Payload::text("a").frame());
    }

    /// Splits a server byte stream into frames (unmasked, FIN set).
    fn frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (head, len) = match bytes[1] {
                126 => (4, u16::from_be_bytes([bytes[2], bytes[3]]) as usize),
                127 => (
                    10,
                    u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                ),
                n => (2, n as usize),
            };
            out.push(bytes[..head + len].to_vec());
            bytes = &bytes[head + len..];
        }
        out
    }

    #[test]
    fn random_writes_never_split_or_reorder_frames() {
        let mut rng = crate::testutil::Rng(42);
        for _ in 0..200 {
            let mut ob: Outbox<8> = Outbox::new();
            let mut sink = Sink {
                bytes: vec![],
                room: 0,
            };
            let (mut data, mut control) = (Vec::new(), Vec::new());
            for step in 0..120 {
                match rng.below(5) {
                    0 => {
                        let o = out(&"d".repeat(rng.index(300)));
                        let frame = o.payload.frame().to_vec();
                        if ob.push(o).is_ok() {
                            data.push(frame);
                        }
                    }
                    1..=3 => {
                        let p = Payload::encode(crate::ws::OpCode::Pong, &[step as u8]);
                        let full = ob.control.is_full();
                        if ob.push_control(p.clone()) {
                            let frame = p.frame().to_vec();
                            match control.last_mut() {
                                // A full lane: the newest waiting pong was replaced.
                                Some(last) if full => *last = frame,
                                _ => control.push(frame),
                            }
                        }
                    }
                    _ => {
                        sink.room = rng.index(400);
                        ob.flush(&mut sink, &mut |_| {}).unwrap();
                    }
                }
            }
            sink.room = usize::MAX;
            ob.flush(&mut sink, &mut |_| {}).unwrap();
            let (got_data, got_control): (Vec<_>, Vec<_>) =
                frames(&sink.bytes).into_iter().partition(|f| f[0] == 0x81);
            assert_eq!(got_data, data);
            assert_eq!(got_control, control);
        }
    }

    #[test]
    fn many_frames_byte_by_byte() {
        let mut ob: Outbox<8> = Outbox::new();
        let mut expect = Vec::new();
        for i in 0..8 {
            let o = out(&"z".repeat(i * 30));
            expect.extend_from_slice(o.payload.frame());
            ob.push(o).unwrap();
        }
        let mut sink = Sink {
            bytes: vec![],
            room: 0,
        };
        let mut n = 0;
        while ob.has_pending() {
            sink.room = 1;
            ob.flush(&mut sink, &mut |_| n += 1).unwrap();
        }
        assert_eq!(sink.bytes, expect);
        assert_eq!(n, 8);
    }
}

#[cfg(test)]
mod size {
    use super::Outbound;

    /// A ring entry: the shared frame (thin `Arc` and header length, two
    /// words with padding), the 32-bit enqueue time and the tag, whose niche
    /// holds `None`. 32 bytes on 64-bit targets, 24 on 32-bit.
    const ENTRY: usize = 2 * size_of::<usize>() + 4 + 12;

    // At compile time too: `cargo check --tests` for a 32-bit target checks
    // the 32-bit size without running anything.
    const _: () = assert!(size_of::<Outbound>() == ENTRY);

    #[test]
    fn a_ring_entry_is_two_words_and_sixteen_bytes() {
        assert_eq!(size_of::<Outbound>(), ENTRY);
        assert_eq!(
            ENTRY,
            if cfg!(target_pointer_width = "64") {
                32
            } else {
                24
            }
        );
    }
}
