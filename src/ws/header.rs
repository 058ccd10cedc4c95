//! The header of a client frame: parsed and checked byte by byte, so that
//! garbage is refused before anything behind it is buffered.

use super::frame::MAX_CONTROL_PAYLOAD;
use super::{OpCode, ProtocolError};

/// A parsed client frame header.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub(super) fin: bool,
    /// RSV1: the first frame of a compressed message (permessage-deflate).
    pub(super) rsv1: bool,
    pub(super) opcode: OpCode,
    pub(super) mask: [u8; 4],
    pub(super) header_len: usize,
    /// Header and payload.
    pub(super) frame_len: usize,
}

impl Header {
    pub(super) fn payload_len(&self) -> usize {
        self.frame_len - self.header_len
    }
}

/// What [`parse_header`] found.
pub(super) enum Parsed {
    Complete(Header),
    /// Header length needed, as far as known from the bytes so far.
    Incomplete(usize),
}

/// Parses and checks the stateless rules of a client frame header; RSV1 is
/// accepted on the first frame of a data message when `deflate` (RFC 7692
/// §6: never on control or continuation frames).
///
/// Each byte is checked as soon as it is there, so garbage is rejected
/// before anything behind it is buffered.
pub(super) fn parse_header(buf: &[u8], deflate: bool) -> Result<Parsed, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(Parsed::Incomplete(2));
    };
    if b0 & 0x30 != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    let opcode = OpCode::try_from(b0 & 0x0F)?;
    let rsv1 = b0 & 0x40 != 0;
    if rsv1 && !(deflate && matches!(opcode, OpCode::Text | OpCode::Binary)) {
        return Err(ProtocolError::ReservedBits);
    }
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControlFrame);
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(Parsed::Incomplete(2));
    };
    if b1 & 0x80 == 0 {
        return Err(ProtocolError::UnmaskedFrame);
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::ControlFrameTooLong);
    }
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + ext + 4;
    if buf.len() < header_len {
        return Ok(Parsed::Incomplete(header_len));
    }
    // Like most implementations, accept lengths that are not minimally
    // encoded: rejecting them protects nothing.
    let len = match ext {
        0 => u64::from(len7),
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        _ => {
            let mut be = [0; 8];
            be.copy_from_slice(&buf[2..10]);
            u64::from_be_bytes(be)
        }
    };
    if len >> 63 != 0 {
        return Err(ProtocolError::InvalidPayloadLength);
    }
    let frame_len = usize::try_from(len)
        .ok()
        .and_then(|len| len.checked_add(header_len))
        .ok_or(ProtocolError::FrameTooLarge)?;
    let mut mask = [0; 4];
    mask.copy_from_slice(&buf[header_len - 4..header_len]);
    Ok(Parsed::Complete(Header {
        fin,
        rsv1,
        opcode,
        mask,
        header_len,
        frame_len,
    }))
}
