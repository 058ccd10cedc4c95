//! What goes over the wire: opcodes, and the frames the decoder hands out.

use super::{CloseCode, ProtocolError};

/// Largest payload of a control frame (RFC 6455 §5.5).
pub(super) const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcode (RFC 6455 §5.2).
///
/// # Example
///
/// ```
/// use wshub::__private::ws::OpCode;
///
/// assert_eq!(u8::from(OpCode::Ping), 0x9);
/// assert_eq!(OpCode::try_from(0x2), Ok(OpCode::Binary));
/// assert!(OpCode::try_from(0x3).is_err()); // reserved
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// Continuation of a fragmented message (`0x0`).
    Continuation,
    /// First frame of a text message (`0x1`).
    Text,
    /// First frame of a binary message (`0x2`).
    Binary,
    /// Connection close (`0x8`).
    Close,
    /// Ping (`0x9`).
    Ping,
    /// Pong (`0xA`).
    Pong,
}

impl OpCode {
    /// Returns `true` for close, ping and pong, which may not be fragmented
    /// and carry at most 125 bytes.
    ///
    /// # Example
    ///
    /// ```
    /// use wshub::__private::ws::OpCode;
    ///
    /// assert!(OpCode::Pong.is_control());
    /// assert!(!OpCode::Text.is_control());
    /// ```
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

impl From<OpCode> for u8 {
    fn from(opcode: OpCode) -> u8 {
        match opcode {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }
}

impl TryFrom<u8> for OpCode {
    type Error = ProtocolError;

    fn try_from(value: u8) -> Result<OpCode, ProtocolError> {
        match value {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xA => Ok(OpCode::Pong),
            other => Err(ProtocolError::ReservedOpcode(other)),
        }
    }
}

/// A decoded frame or, for fragmented messages, a whole reassembled message.
///
/// Payloads borrow from the [`Feed`](super::Feed) that produced them: either the caller's
/// input buffer or the decoder's own buffers.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::{CloseFrame, Frame};
///
/// fn describe(frame: Frame<'_>) -> String {
///     match frame {
///         Frame::Text(text) => format!("text: {text}"),
///         Frame::Binary(data) => format!("{} bytes", data.len()),
///         Frame::Ping(_) | Frame::Pong(_) => "heartbeat".to_owned(),
///         Frame::Close(Some(CloseFrame { code, reason })) => format!("close {code} {reason}"),
///         Frame::Close(None) => "close".to_owned(),
///     }
/// }
/// assert_eq!(describe(Frame::Text("hi")), "text: hi");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete text message, validated as UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping; answer it with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// A close frame, with its status if the peer sent one.
    Close(Option<CloseFrame<'a>>),
}

/// Status carried by a close frame.
///
/// # Example
///
/// ```
/// use wshub::CloseCode;
/// use wshub::__private::ws::CloseFrame;
///
/// let close = CloseFrame { code: CloseCode::AWAY, reason: "going away" };
/// assert_eq!(u16::from(close.code), 1001);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// Status code, already checked with [`CloseCode::is_valid`].
    pub code: CloseCode,
    /// Reason, already checked to be UTF-8.
    pub reason: &'a str,
}

#[cfg(test)]
mod tests {
    use super::OpCode;

    #[test]
    fn opcode_round_trip() {
        for op in [
            OpCode::Continuation,
            OpCode::Text,
            OpCode::Binary,
            OpCode::Close,
            OpCode::Ping,
            OpCode::Pong,
        ] {
            assert_eq!(OpCode::try_from(u8::from(op)), Ok(op));
        }
    }
}
