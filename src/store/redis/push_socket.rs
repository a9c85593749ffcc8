//! A subscriber's connection when it is plain TCP or a Unix socket: a
//! stream of its own rather than redis-rs's connection, so that it can be
//! waited on with poll(2) (to the millisecond, several at once) and read
//! without blocking (every message that came, in one read). The handshake
//! (`HELLO 3` with the URL's user and password, `CLIENT ID`) is sent and
//! read with redis-rs's encoder and parser; after it, only `invalidate`
//! pushes come (see [`push_frames`](super::push_frames)).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, RedisError, RedisResult, Value};

use super::push_frames::{Frame, FrameReader, MAX_PENDING};

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn as_io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(true),
            Stream::Unix(s) => s.set_nonblocking(true),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

pub(crate) struct PushSocket {
    stream: Stream,
    /// Bytes read and not yet parsed (a header or key cut by a read): at
    /// most [`MAX_PENDING`] plus one read.
    buf: Vec<u8>,
    /// The frame being read, its keys taken from `buf` as they come.
    reader: FrameReader,
}

impl PushSocket {
    /// Whether `info` can be opened here: plain TCP or a Unix socket, not
    /// TLS.
    pub(crate) fn fits(info: &ConnectionInfo) -> bool {
        matches!(
            info.addr(),
            ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(..)
        )
    }

    /// Connects to `info`'s server, speaks RESP3 as its user, and reads the
    /// connection's client id.
    pub(crate) fn open(info: &ConnectionInfo, timeout: Duration) -> RedisResult<(PushSocket, i64)> {
        let stream = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Stream::Tcp(connect_tcp(host, *port, timeout)?),
            ConnectionAddr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            _ => return Err(protocol("a TLS subscriber is opened by redis-rs".into())),
        };
        stream.set_timeouts(Some(timeout))?;
        if let Stream::Tcp(s) = &stream {
            s.set_nodelay(true)?;
        }
        let mut socket = PushSocket {
            stream,
            buf: Vec::new(),
            reader: FrameReader::default(),
        };
        let settings = info.redis_settings();
        let mut hello = redis::cmd("HELLO");
        hello.arg(3);
        if let Some(password) = settings.password() {
            hello
                .arg("AUTH")
                .arg(settings.username().unwrap_or("default"))
                .arg(password);
        }
        let mut packed = hello.get_packed_command();
        packed.extend(redis::cmd("CLIENT").arg("ID").get_packed_command());
        socket.stream.as_io().write_all(&packed)?;
        // Nothing but these two replies can come before tracking is
        // redirected here, so the parser reads no further.
        let mut parser = redis::Parser::new();
        let mut reply = || parser.parse_value(socket.stream.as_io())?.extract_error();
        reply()?;
        let id = match reply()? {
            Value::Int(id) => id,
            other => return Err(protocol(format!("CLIENT ID answered {other:?}"))),
        };
        socket.stream.set_nonblocking()?;
        Ok((socket, id))
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.stream.fd()
    }

    /// Reads what the socket holds, without waiting, until the buffer
    /// holds [`MAX_PENDING`] bytes: what is left is read at the next wake
    /// (poll(2) says the socket can still be read), after the frames read
    /// so far have taken their bytes from the buffer.
    ///
    /// # Errors
    /// When the connection ended or failed.
    pub(crate) fn fill(&mut self) -> RedisResult<()> {
        let mut chunk = [0u8; 16 * 1024];
        while self.buf.len() < MAX_PENDING {
            match self.stream.as_io().read(&mut chunk) {
                Ok(0) => {
                    let why = "the server closed the connection";
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why).into());
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    // A short read took all there was (one system call
                    // saved); more is read at the next wake.
                    if n < chunk.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The frames read whole so far, taken from the buffer.
    ///
    /// # Errors
    /// When the bytes are not `invalidate` pushes.
    pub(crate) fn frames(&mut self) -> RedisResult<Vec<Frame>> {
        self.reader.read(&mut self.buf).map_err(protocol)
    }
}

fn protocol(why: String) -> RedisError {
    RedisError::from((ErrorKind::Parse, "not a subscriber's message", why))
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}
