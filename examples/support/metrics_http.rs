//! A small `/metrics` endpoint for the examples, on tiny_http (a
//! dev-dependency: the library itself serves nothing). Responds with the
//! crate's `CONTENT_TYPE`; binds where it is told (loopback by default).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use heat_observer::metrics::CONTENT_TYPE;
use tiny_http::{Header, Response, Server};

pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `render()` at `GET /metrics` on `addr` until dropped.
    pub fn start(
        addr: &str,
        render: impl Fn() -> String + Send + 'static,
    ) -> Result<MetricsServer, String> {
        let server =
            Server::http(addr).map_err(|e| format!("cannot serve /metrics on {addr}: {e}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("{addr} is not an IP address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let content_type = Header::from_bytes("Content-Type", CONTENT_TYPE).expect("valid header");
        let handle = thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                // Wakes every 100 ms to notice the stop flag.
                while !flag.load(Ordering::Relaxed) {
                    let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    let response = if request.url() == "/metrics" {
                        Response::from_string(render()).with_header(content_type.clone())
                    } else {
                        Response::from_string("not found: try /metrics\n").with_status_code(404)
                    };
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        Ok(MetricsServer {
            addr,
            stop,
            handle: Some(handle),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
