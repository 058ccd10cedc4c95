//! UTF-8 validation of text that arrives in pieces.

use std::str;

use super::ProtocolError;

/// Incremental UTF-8 validation across arbitrary chunk boundaries.
///
/// Fails on the first chunk that makes the text invalid whatever follows
/// (`std` reports exactly that distinction through `Utf8Error::error_len`),
/// and carries an incomplete trailing code point over to the next chunk.
#[derive(Clone, Copy, Default)]
pub(super) struct Utf8Validator {
    partial: [u8; 4],
    partial_len: usize,
}

impl Utf8Validator {
    pub(super) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.partial_len > 0 {
            // Complete the carried-over code point first. Its lead byte is
            // valid, otherwise it would have failed already.
            let have = self.partial_len;
            let width = match self.partial[0] {
                0xF0.. => 4,
                0xE0.. => 3,
                _ => 2,
            };
            let n = (width - have).min(bytes.len());
            self.partial[have..have + n].copy_from_slice(&bytes[..n]);
            self.partial_len = 0;
            match str::from_utf8(&self.partial[..have + n]) {
                Ok(_) => bytes = &bytes[n..],
                Err(e) if e.error_len().is_none() => {
                    self.partial_len = have + n; // still short: `bytes` is used up
                    return Ok(());
                }
                Err(_) => return Err(ProtocolError::InvalidUtf8),
            }
        }
        match str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &bytes[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }
}
