//! What a server sends: unmasked frames.

use super::frame::MAX_CONTROL_PAYLOAD;
use super::{CloseCode, OpCode};

/// Writes the header of an unmasked (server) frame into `out` and returns
/// its length: 2, 4 or 10 bytes.
///
/// Lets the caller write header and payload without building a frame in
/// memory. Control frames must be final with at most 125 bytes of payload.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::{OpCode, encode_header};
///
/// let mut header = [0; 10];
/// let n = encode_header(OpCode::Binary, true, 300, &mut header);
/// assert_eq!(&header[..n], [0x82, 126, 0x01, 0x2c]);
/// ```
pub fn encode_header(opcode: OpCode, fin: bool, payload_len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = (u8::from(fin) << 7) | u8::from(opcode);
    if let Ok(len @ 0..=125) = u8::try_from(payload_len) {
        out[1] = len;
        2
    } else if let Ok(len) = u16::try_from(payload_len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    }
}

/// Encodes a final, unmasked frame: header and payload in one buffer, ready
/// to be shared by every recipient.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::{OpCode, encode_frame};
///
/// assert_eq!(encode_frame(OpCode::Text, b"hi"), b"\x81\x02hi");
/// assert_eq!(encode_frame(OpCode::Close, b""), b"\x88\x00"); // close without status
/// ```
pub fn encode_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    debug_assert!(!opcode.is_control() || payload.len() <= MAX_CONTROL_PAYLOAD);
    let mut header = [0; 10];
    let n = encode_header(opcode, true, payload.len(), &mut header);
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&header[..n]);
    frame.extend_from_slice(payload);
    frame
}

/// Encodes a close frame with a status code and reason.
///
/// The reason is truncated on a character boundary to fit the 125-byte
/// control frame limit. `code` is sent as given; it should pass
/// [`CloseCode::is_valid`]. For a close without status use
/// `encode_frame(OpCode::Close, b"")`.
///
/// # Example
///
/// ```
/// use wshub::CloseCode;
/// use wshub::__private::ws::encode_close;
///
/// assert_eq!(encode_close(CloseCode::NORMAL, "bye"), b"\x88\x05\x03\xe8bye");
/// assert_eq!(encode_close(CloseCode::AWAY, &"é".repeat(100)).len(), 2 + 2 + 122);
/// ```
pub fn encode_close(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut header = [0; 10];
    let n = encode_header(OpCode::Close, true, 2 + end, &mut header);
    let mut frame = Vec::with_capacity(n + 2 + end);
    frame.extend_from_slice(&header[..n]);
    frame.extend_from_slice(&u16::from(code).to_be_bytes());
    frame.extend_from_slice(&reason.as_bytes()[..end]);
    frame
}

#[cfg(test)]
mod tests {
    use std::str;

    use super::*;

    #[test]
    fn encoding() {
        let mut header = [0; 10];
        let cases: [(usize, &[u8]); 5] = [
            (0, &[0x81, 0]),
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0, 126]),
            (65535, &[0x81, 126, 0xFF, 0xFF]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (len, expected) in cases {
            let n = encode_header(OpCode::Text, true, len, &mut header);
            assert_eq!(&header[..n], expected);
        }
        let n = encode_header(OpCode::Continuation, false, 3, &mut header);
        assert_eq!(&header[..n], [0x00, 3]);

        let big = encode_frame(OpCode::Binary, &[1; 300]);
        assert_eq!(big.len(), 304);
        assert_eq!(big[..4], [0x82, 126, 0x01, 0x2C]);

        let close = encode_close(CloseCode::AWAY, &"é".repeat(100));
        assert_eq!(close.len(), 2 + 125 - 1);
        assert_eq!(close[1] as usize, close.len() - 2);
        assert!(str::from_utf8(&close[4..]).is_ok());
        assert_eq!(encode_close(CloseCode::NORMAL, ""), [0x88, 2, 0x03, 0xE8]);
    }
}
