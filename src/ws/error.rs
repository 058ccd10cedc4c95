//! The ways a peer can break RFC 6455, and the close code for each.

use std::fmt;

use super::CloseCode;

/// A violation of RFC 6455 by the peer.
///
/// The connection must be failed: send a close frame with
/// [`close_code`](ProtocolError::close_code) and drop the connection.
///
/// # Example
///
/// ```
/// use wshub::CloseCode;
/// use wshub::__private::ws::{Decoder, ProtocolError};
///
/// let mut decoder = Decoder::default();
/// let mut unmasked_text = *b"\x81\x02hi";
/// let err = decoder.feed(&mut unmasked_text).next_frame().unwrap_err();
/// assert_eq!(err, ProtocolError::UnmaskedFrame);
/// assert_eq!(err.close_code(), CloseCode::PROTOCOL);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A client frame without a mask.
    UnmaskedFrame,
    /// RSV2 or RSV3 set, or RSV1 where permessage-deflate does not allow it
    /// (not negotiated, a control frame, a continuation frame).
    ReservedBits,
    /// An opcode reserved for future use.
    ReservedOpcode(u8),
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A control frame without FIN.
    FragmentedControlFrame,
    /// A continuation frame without a fragmented message in progress.
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// A 64-bit payload length with the most significant bit set.
    InvalidPayloadLength,
    /// A frame payload larger than [`Limits::max_frame_size`](super::Limits::max_frame_size).
    FrameTooLarge,
    /// A message larger than [`Limits::max_message_size`](super::Limits::max_message_size).
    MessageTooLarge,
    /// A text message or close reason that is not UTF-8.
    InvalidUtf8,
    /// A close code that may not be sent (see [`CloseCode::is_valid`]); the
    /// raw value, as received.
    InvalidCloseCode(u16),
    /// A close frame with a one-byte payload.
    InvalidClosePayload,
    /// A compressed message whose deflate data is corrupt (permessage-deflate).
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code to fail the connection with: [`CloseCode::INVALID`]
    /// (1007) for invalid UTF-8 or corrupt compressed data, [`CloseCode::SIZE`] (1009) for oversized
    /// frames and messages, [`CloseCode::PROTOCOL`] (1002) for everything
    /// else.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::CloseCode;
    /// use wshub::__private::ws::ProtocolError;
    ///
    /// assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID);
    /// assert_eq!(ProtocolError::MessageTooLarge.close_code(), CloseCode::SIZE);
    /// assert_eq!(ProtocolError::ReservedBits.close_code(), CloseCode::PROTOCOL);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => CloseCode::INVALID,
            ProtocolError::FrameTooLarge | ProtocolError::MessageTooLarge => CloseCode::SIZE,
            _ => CloseCode::PROTOCOL,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnmaskedFrame => f.write_str("client frame is not masked"),
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::ControlFrameTooLong => {
                f.write_str("control frame longer than 125 bytes")
            }
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message while a fragmented message is in progress")
            }
            ProtocolError::InvalidPayloadLength => f.write_str("invalid 64-bit payload length"),
            ProtocolError::FrameTooLarge => f.write_str("frame too large"),
            ProtocolError::MessageTooLarge => f.write_str("message too large"),
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidClosePayload => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCompressedData => f.write_str("corrupt compressed message"),
        }
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::ProtocolError;

    #[test]
    fn error_display() {
        assert_eq!(
            ProtocolError::ReservedOpcode(0xB).to_string(),
            "reserved opcode 0xb"
        );
        assert_eq!(
            ProtocolError::InvalidCloseCode(1005).to_string(),
            "invalid close code 1005"
        );
    }
}
