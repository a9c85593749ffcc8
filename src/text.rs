//! Characters that make text read differently than it is: control
//! characters (Unicode Cc: a newline breaks the runbook's `redis-cli | awk`
//! reading of the stream) and format characters (Unicode Cf: U+202E turns
//! what follows right to left, U+200B and U+FEFF are invisible), refused in
//! plan ids, symbols and names so that the stream, the dedupe keys and the
//! logs show what was written.

/// Whether `c` is a control or a format character.
pub(crate) fn is_hidden(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// Unicode general category Cf (Unicode 15.1), from its table; std has no
/// query for it.
fn is_format(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

#[cfg(test)]
mod tests;
