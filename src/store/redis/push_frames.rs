//! The frames a subscriber receives, read from its own bytes: RESP3
//! `invalidate` pushes, nothing else. A subscriber sends nothing after its
//! handshake and subscribes to no channel, so any other frame means the
//! connection is not what it should be; it is rebuilt.
//!
//! The reader is incremental: a frame's keys are taken from the buffer as
//! each one arrives whole, so an invalidation of 200,000 keys (one script
//! that writes them all) is parsed once, in time linear in its bytes, and
//! the buffer holds at most one key that is not whole yet. What cannot be
//! a frame of this subscriber is refused at once instead of waited for: a
//! key longer than [`MAX_KEY`] bytes, a frame of more than [`MAX_KEYS`]
//! keys, a negative or unparsable length. The subscriber is then broken
//! and every watched key is looked at again: nothing is lost by refusing.

/// The longest key a message may name. The subscriber registered only heat
/// keys (a prefix and a plan id of at most 128 bytes); 64 KiB is far past
/// any of them, and far below what would make the buffer large.
pub(crate) const MAX_KEY: usize = 64 * 1024;
/// The most keys one frame may name: a script that writes more heat keys
/// than this at once turns into a loss (a look at everything).
pub(crate) const MAX_KEYS: usize = 1 << 20;
/// The most bytes a reader needs buffered to make progress: one key whole,
/// with its header and the frame's own header before it.
pub(crate) const MAX_PENDING: usize = MAX_KEY + 128;

/// One push frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// These keys were invalidated.
    Invalidate(Vec<String>),
    /// Every key was (a flush): a null payload.
    Flush,
}

/// Reads frames from a byte buffer as they arrive, keeping the keys of a
/// frame that is not whole yet.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    /// The frame being read: its keys so far and how many are still to come.
    partial: Option<(Vec<String>, usize)>,
}

impl FrameReader {
    /// Takes from the start of `buf` every frame read whole, and every key
    /// of a frame not whole yet, leaving in `buf` only the bytes of a
    /// header or key that are still incomplete.
    ///
    /// # Errors
    /// What was wrong, when the bytes are not `invalidate` pushes or
    /// exceed the limits; the reader and buffer are then to be dropped.
    pub(crate) fn read(&mut self, buf: &mut Vec<u8>) -> Result<Vec<Frame>, String> {
        let mut at = Cursor { buf, at: 0 };
        let mut frames = Vec::new();
        let result = self.read_from(&mut at, &mut frames);
        let used = at.at;
        buf.drain(..used);
        result.map(|()| frames)
    }

    fn read_from(&mut self, at: &mut Cursor<'_>, frames: &mut Vec<Frame>) -> Result<(), String> {
        loop {
            if self.partial.is_none() {
                let start = at.at;
                match at.head() {
                    Ok(Head::Flush) => frames.push(Frame::Flush),
                    Ok(Head::Keys(0)) => frames.push(Frame::Invalidate(Vec::new())),
                    Ok(Head::Keys(n)) => {
                        self.partial = Some((Vec::with_capacity(n.min(1024)), n));
                    }
                    Err(Incomplete::Yes) => {
                        at.at = start; // the head is read again, whole
                        return Ok(());
                    }
                    Err(Incomplete::No(why)) => return Err(why),
                }
                continue;
            }
            let Some((keys, left)) = self.partial.as_mut() else {
                continue;
            };
            while *left > 0 {
                let start = at.at;
                match at.bulk(MAX_KEY) {
                    Ok(key) => keys.push(String::from_utf8_lossy(key).into_owned()),
                    Err(Incomplete::Yes) => {
                        at.at = start;
                        return Ok(());
                    }
                    Err(Incomplete::No(why)) => return Err(why),
                }
                *left -= 1;
            }
            if let Some((keys, _)) = self.partial.take() {
                frames.push(Frame::Invalidate(keys));
            }
        }
    }
}

/// What starts a frame.
enum Head {
    /// A null payload.
    Flush,
    /// An array of this many keys follows.
    Keys(usize),
}

enum Incomplete {
    /// More bytes are needed.
    Yes,
    /// The bytes are wrong: why.
    No(String),
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// `>2`, `invalidate`, then an array header or a null.
    fn head(&mut self) -> Result<Head, Incomplete> {
        let (kind, n) = self.header()?;
        if kind != b'>' || n != 2 {
            return Err(wrong("a push of two items", kind));
        }
        if self.bulk(64)? != b"invalidate" {
            return Err(Incomplete::No("a push other than invalidate".into()));
        }
        match self.header()? {
            (b'_', _) => Ok(Head::Flush),
            (b'*', n) if n < 0 => Ok(Head::Flush),
            (b'*', n) => match usize::try_from(n) {
                Ok(n) if n <= MAX_KEYS => Ok(Head::Keys(n)),
                _ => Err(Incomplete::No(format!(
                    "a push of {n} keys, more than {MAX_KEYS}"
                ))),
            },
            (kind, _) => Err(wrong("an array of keys", kind)),
        }
    }

    /// A line's type byte and its number (0 for `_`, a null).
    fn header(&mut self) -> Result<(u8, i64), Incomplete> {
        let line = self.line()?;
        let (&kind, rest) = line
            .split_first()
            .ok_or(Incomplete::No("an empty line".into()))?;
        if kind == b'_' {
            return Ok((kind, 0));
        }
        let n = std::str::from_utf8(rest)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| wrong("a length", kind))?;
        Ok((kind, n))
    }

    /// A bulk string's bytes, at most `max` of them.
    fn bulk(&mut self, max: usize) -> Result<&'a [u8], Incomplete> {
        let (kind, len) = self.header()?;
        if kind != b'$' {
            return Err(wrong("a bulk string", kind));
        }
        let len = match usize::try_from(len) {
            Ok(len) if len <= max => len,
            _ => {
                return Err(Incomplete::No(format!(
                    "a bulk string of length {len}, not 0 to {max}"
                )));
            }
        };
        // Cannot overflow: `at` is within the buffer and `len` is bounded.
        let end = self.at + len;
        if self.buf.len() < end + 2 {
            return Err(Incomplete::Yes);
        }
        if &self.buf[end..end + 2] != b"\r\n" {
            return Err(Incomplete::No("a bulk string without its end".into()));
        }
        let bytes = &self.buf[self.at..end];
        self.at = end + 2;
        Ok(bytes)
    }

    /// The bytes up to the next CRLF, which is passed.
    fn line(&mut self) -> Result<&'a [u8], Incomplete> {
        // A header line is short: a long one without its end is wrong, and
        // the search never reads past it (a key's bytes are not scanned).
        let rest = &self.buf[self.at..];
        let window = &rest[..rest.len().min(32)];
        let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
            return Err(if rest.len() >= 32 {
                Incomplete::No("a line without its end".into())
            } else {
                Incomplete::Yes
            });
        };
        self.at += end + 2;
        Ok(&rest[..end])
    }
}

fn wrong(expected: &str, got: u8) -> Incomplete {
    Incomplete::No(format!(
        "expected {expected}, got a frame of type {:?}",
        char::from(got)
    ))
}

#[cfg(test)]
mod tests;
