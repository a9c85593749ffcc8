//! A private `redis-server` per test, on a free loopback port, the way
//! redis-rs's own tests do it: `--save "" --appendonly no`, PING with a
//! deadline before use, killed on drop. `REDIS_URL` points the tests that
//! need no control over the server at an existing one instead.
//!
//! Without redis-server and without `REDIS_URL` the tests say loudly that
//! they were skipped; with `HEAT_OBSERVER_REQUIRE_REDIS=1` (set by `.ci/run`)
//! that is a failure instead.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The variable that turns a skip into a failure.
pub const REQUIRE: &str = "HEAT_OBSERVER_REQUIRE_REDIS";

/// Where a test's Redis is.
pub enum Target {
    /// `REDIS_URL`: a server the test does not control.
    External(String),
    /// A private server the test may stop, kill and restart.
    Private(Server),
}

impl Target {
    pub fn url(&self) -> String {
        match self {
            Target::External(url) => url.clone(),
            Target::Private(server) => server.url(),
        }
    }
}

/// A Redis for a test that only needs one: `REDIS_URL` if set, else a
/// private server, else `None` after saying loudly that `test` is skipped.
pub fn any(test: &str) -> Option<Target> {
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.trim().is_empty()
    {
        return Some(Target::External(url));
    }
    private(test).map(Target::Private)
}

/// A private server, for a test that stops, kills or reconfigures it.
pub fn private(test: &str) -> Option<Server> {
    private_with(test, &[])
}

/// A private server started with extra arguments.
pub fn private_with(test: &str, args: &[&str]) -> Option<Server> {
    if !available() {
        skip(test, "redis-server is not on PATH");
        return None;
    }
    Some(Server::start(free_port(), args))
}

/// Whether `redis-server` can be run.
pub fn available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn skip(test: &str, why: &str) {
    if std::env::var(REQUIRE).is_ok_and(|v| v == "1") {
        panic!("{test}: {why}, and {REQUIRE}=1 forbids skipping");
    }
    // Straight to stderr: the test harness captures eprintln! of passing tests.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {why} (set REDIS_URL or install redis-server) ***"
    );
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

pub struct Server {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    socket: PathBuf,
}

impl Server {
    /// Starts redis-server on `port` and waits until it answers PING.
    pub fn start(port: u16, args: &[&str]) -> Server {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let socket = std::env::temp_dir().join(format!(
            "heat-observer-{}-{}-{}.sock",
            std::process::id(),
            port,
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let mut server = Server {
            child: None,
            port,
            args: args.iter().map(|s| s.to_string()).collect(),
            socket,
        };
        // One left by a process that died with the same id and port.
        let _ = std::fs::remove_file(std::env::temp_dir().join(server.rdb_name()));
        server.restart();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's unix socket.
    pub fn socket(&self) -> &PathBuf {
        &self.socket
    }

    /// (Re)starts the server on the same port and waits for PING.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            // A file of its own: a replica's sync writes one even without
            // `save`, and a shared dump.rdb would be loaded by every
            // server started after it.
            .args(["--dbfilename", &self.rdb_name()])
            .args([
                "--unixsocket",
                &self.socket.to_string_lossy(),
                "--unixsocketperm",
                "700",
            ])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the server answers a raw PING, with `+PONG` or, when it
    /// wants a password, `-NOAUTH`: either way it is up.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() || !self.running() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING",
                self.port
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether our child still runs (it exits at once if the port is taken,
    /// and then another server may be the one answering).
    fn running(&mut self) -> bool {
        let exited = self.child.as_mut().map(|c| c.try_wait());
        assert!(
            !matches!(exited, Some(Ok(Some(_)))),
            "redis-server exited at start: port {} taken?",
            self.port
        );
        true
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        tcp.write_all(b"PING\r\n").is_ok()
            && tcp.read_exact(&mut reply).is_ok()
            && (reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH"))
    }

    fn connection_with(&self, url: &str) -> Option<redis::Connection> {
        let client = redis::Client::open(url).ok()?;
        client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()
    }

    /// A connection for the test's own checks (no password).
    pub fn connection(&self) -> redis::Connection {
        self.connection_with(&self.url())
            .expect("connect to the test redis-server")
    }

    /// Kills the server at once (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn stall(&self) {
        self.signal("-STOP");
    }

    /// Thaws a stalled server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("server running")
            .id()
            .to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.resume_if_running();
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(std::env::temp_dir().join(self.rdb_name()));
    }
}

impl Server {
    fn rdb_name(&self) -> String {
        format!("heat-observer-{}-{}.rdb", std::process::id(), self.port)
    }

    fn resume_if_running(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
    }
}

/// A connection to `url` for the test's own checks.
pub fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .expect("connect to the test Redis")
}

/// The entries of `stream`, oldest first: `(id, [(field, value)])`.
pub fn xrange(con: &mut redis::Connection, stream: &str) -> Vec<(String, Vec<(String, String)>)> {
    let raw: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(con)
        .expect("XRANGE");
    raw.into_iter()
        .map(|(id, flat)| {
            let pairs = flat
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            (id, pairs)
        })
        .collect()
}

/// A name no other test uses, for streams and key prefixes on a shared
/// server.
pub fn unique(what: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!(
        "test:{what}:{}:{}:{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}
