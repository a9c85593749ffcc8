//! The frames a subscriber receives, read from its own bytes: RESP3
//! `invalidate` pushes, nothing else. A subscriber sends nothing after its
//! handshake and subscribes to no channel, so any other frame means the
//! connection is not what it should be; it is rebuilt.

/// One push frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// These keys were invalidated.
    Invalidate(Vec<String>),
    /// Every key was (a flush): a null payload.
    Flush,
}

/// The first frame of `buf` and its length in bytes, or `None` while it is
/// incomplete.
///
/// # Errors
/// What was wrong, when `buf` does not start with an `invalidate` push.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let mut at = Cursor { buf, at: 0 };
    let frame = match at.frame() {
        Ok(frame) => frame,
        Err(Incomplete::Yes) => return Ok(None),
        Err(Incomplete::No(why)) => return Err(why),
    };
    Ok(Some((frame, at.at)))
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
    /// `>2`, `invalidate`, then an array of keys or a null.
    fn frame(&mut self) -> Result<Frame, Incomplete> {
        let (kind, n) = self.header()?;
        if kind != b'>' || n != 2 {
            return Err(wrong("a push of two items", kind));
        }
        if self.bulk()? != b"invalidate" {
            return Err(Incomplete::No("a push other than invalidate".into()));
        }
        match self.header()? {
            (b'_', _) => Ok(Frame::Flush),
            (b'*', n) if n < 0 => Ok(Frame::Flush),
            (b'*', n) => {
                let mut keys = Vec::with_capacity(n.min(1024) as usize);
                for _ in 0..n {
                    keys.push(String::from_utf8_lossy(self.bulk()?).into_owned());
                }
                Ok(Frame::Invalidate(keys))
            }
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

    /// A bulk string's bytes.
    fn bulk(&mut self) -> Result<&'a [u8], Incomplete> {
        let (kind, len) = self.header()?;
        if kind != b'$' || len < 0 {
            return Err(wrong("a bulk string", kind));
        }
        let len = len as usize;
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
        let rest = &self.buf[self.at..];
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            // A header line is short: a long one without its end is wrong.
            return Err(if rest.len() > 32 {
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
mod tests {
    use super::*;

    fn push(keys: &[&str]) -> Vec<u8> {
        let mut out = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len()).into_bytes();
        for k in keys {
            out.extend(format!("${}\r\n{k}\r\n", k.len()).bytes());
        }
        out
    }

    #[test]
    fn an_invalidate_push_names_its_keys() {
        let bytes = push(&["k:1", "k:22"]);
        let (frame, used) = parse(&bytes).unwrap().unwrap();
        assert_eq!(frame, Frame::Invalidate(vec!["k:1".into(), "k:22".into()]));
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn a_null_payload_is_a_flush() {
        let bytes = b">2\r\n$10\r\ninvalidate\r\n_\r\n";
        assert_eq!(parse(bytes).unwrap(), Some((Frame::Flush, bytes.len())));
        let resp2_null = b">2\r\n$10\r\ninvalidate\r\n*-1\r\n";
        assert_eq!(parse(resp2_null).unwrap().unwrap().0, Frame::Flush);
    }

    #[test]
    fn every_cut_of_a_frame_waits_for_more_and_two_frames_are_read_apart() {
        let mut bytes = push(&["quantum:harvest:heat:by_plan:p-1"]);
        let first = bytes.len();
        for cut in 0..first {
            assert_eq!(parse(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        bytes.extend(push(&["b"]));
        let (_, used) = parse(&bytes).unwrap().unwrap();
        assert_eq!(used, first);
        let (frame, _) = parse(&bytes[used..]).unwrap().unwrap();
        assert_eq!(frame, Frame::Invalidate(vec!["b".into()]));
    }

    #[test]
    fn anything_else_is_an_error_that_says_what() {
        let message = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n";
        assert!(parse(message).unwrap_err().contains("a push of two items"));
        let other = b">2\r\n$7\r\nmessage\r\n*0\r\n";
        assert!(parse(other).unwrap_err().contains("other than invalidate"));
        let reply = b"+OK\r\n";
        assert!(parse(reply).unwrap_err().contains("'+'"));
        let broken = b">2\r\n$10\r\ninvalidateXY*0\r\n";
        assert!(parse(broken).unwrap_err().contains("without its end"));
        let endless = [b'>'; 64];
        assert!(parse(&endless).unwrap_err().contains("without its end"));
    }
}
