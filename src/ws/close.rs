//! Close status codes (RFC 6455 §7.4).

/// Returns whether a peer may send `code` in a close frame.
///
/// Accepts 1000–1003, 1007–1014 and 3000–4999. Rejects codes that are
/// reserved for local use only (1005, 1006, 1015), unassigned (1004, 0–999,
/// 1016–2999) or out of range.
///
/// # Example
///
/// ```
/// use wshub::codec::is_valid_close_code;
///
/// assert!(is_valid_close_code(1000));
/// assert!(is_valid_close_code(4321));
/// assert!(!is_valid_close_code(1005));
/// ```
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
