//! Client-to-server masking (RFC 6455 §5.3).

/// XORs `buf` with the masking key, as if `buf` started `offset` bytes into
/// the payload, so a payload can be unmasked piecewise as it arrives.
/// Masking and unmasking are the same operation.
///
/// # Example
///
/// ```
/// use wshub::__private::ws::apply_mask;
///
/// let mask = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = *b"Hello, world";
/// apply_mask(&mut payload, mask, 0);
/// // Unmasking in two pieces gives back the original.
/// let (a, b) = payload.split_at_mut(5);
/// apply_mask(a, mask, 0);
/// apply_mask(b, mask, 5);
/// assert_eq!(&payload, b"Hello, world");
/// ```
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    // Eight bytes at a time: the key repeats every four bytes, so each
    // 8-byte block starts at the same phase. The compiler vectorizes this.
    let [k0, k1, k2, k3] = key;
    let wide = u64::from_ne_bytes([k0, k1, k2, k3, k0, k1, k2, k3]);
    let mut blocks = buf.chunks_exact_mut(8);
    for block in &mut blocks {
        let mut word = [0; 8];
        word.copy_from_slice(block);
        block.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (byte, k) in blocks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::apply_mask;
    use crate::testutil::Rng;

    #[test]
    fn mask_matches_naive() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let len = rng.index(100);
            let data = rng.bytes(len);
            let mask = rng.mask();
            let offset = rng.index(1 << 20);
            let naive: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[(offset + i) % 4])
                .collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask, offset);
            assert_eq!(fast, naive);
            // Piecewise application continues the phase.
            let mut pieces = data.clone();
            let split = rng.index(data.len() + 1);
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, mask, offset);
            apply_mask(b, mask, offset + split);
            assert_eq!(pieces, naive);
        }
    }
}
