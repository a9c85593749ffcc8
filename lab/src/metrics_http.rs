//! A small `/metrics` endpoint for the examples, on tiny_http (a
//! dev-dependency: the library itself serves nothing). Serves OpenMetrics
//! to a client that asks for it (Prometheus does), else the Prometheus text
//! format; binds where it is told (loopback by default).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use heat_observer::metrics::{MetricFamily, MetricsFormat};
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
        families: impl Fn() -> Vec<MetricFamily> + Send + 'static,
    ) -> Result<MetricsServer, String> {
        let server =
            Server::http(addr).map_err(|e| format!("cannot serve /metrics on {addr}: {e}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("{addr} is not an IP address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || {
                // Wakes every 100 ms to notice the stop flag.
                while !flag.load(Ordering::Relaxed) {
                    let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    let response = if request.url() == "/metrics" {
                        let format = negotiate(&request);
                        let content_type =
                            Header::from_bytes("Content-Type", format.content_type())
                                .expect("valid header");
                        Response::from_string(format.render(&families())).with_header(content_type)
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

/// OpenMetrics when the client's `Accept` names it, as Prometheus's does.
fn negotiate(request: &tiny_http::Request) -> MetricsFormat {
    let accept = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Accept"))
        .map(|h| h.value.as_str().to_owned())
        .unwrap_or_default();
    if accept.contains("application/openmetrics-text") {
        MetricsFormat::OpenMetrics
    } else {
        MetricsFormat::Prometheus
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
