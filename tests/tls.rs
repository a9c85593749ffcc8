//! `rediss://` (feature `tls`) against a local redis-server with a
//! certificate from a CA the test makes with openssl.
#![cfg(feature = "tls")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use heat_observer::{Config, LateObserver, RedisConnector, TlsCerts};
use redis::Commands;
use support::server::{self, Server, unique, xrange};
use support::{ms, wait_stats};

/// A CA and a server certificate for 127.0.0.1 and localhost, in `dir`.
fn make_certs(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=heat-observer test CA",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn events_go_over_tls_with_the_given_root_certificate() {
    let test = "events_go_over_tls_with_the_given_root_certificate";
    if !server::available() {
        return server::skip(test, "redis-server is not on PATH");
    }
    let dir = TempDir(std::env::temp_dir().join(unique("tls").replace(':', "-")));
    std::fs::create_dir_all(&dir.0).unwrap();
    if !make_certs(&dir.0) {
        return server::skip(test, "openssl could not make certificates");
    }
    let file = |name: &str| dir.0.join(name).to_string_lossy().into_owned();
    let tls_port = server::free_port();
    let tls_port_arg = tls_port.to_string();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let args = [
        "--tls-port",
        &tls_port_arg,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ];
    // The plain port serves the test's own checks; the observer uses TLS.
    let server = Server::start(server::free_port(), &args);
    let ns = unique("tls");
    let config = Config::builder()
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(format!("{ns}:by_plan:"))
        .max_wait(ms(1000))
        .poll(ms(20))
        // The handshake (RSA, in a debug build of ring) takes longer than
        // the 50 ms default; the default suits release builds.
        .redis_timeout(ms(1000))
        .build()
        .unwrap();
    let mut plain = server.connection();
    let _: () = plain.set(config.heat_key("t1"), 1).unwrap();

    let url = format!("rediss://127.0.0.1:{tls_port}");
    let certs = TlsCerts::new().root_cert_pem(std::fs::read(dir.0.join("ca.crt")).unwrap());
    let connector = RedisConnector::with_tls(&url, &config, certs).unwrap();
    assert_eq!(connector.address(), format!("127.0.0.1:{tls_port}"));
    let observer = LateObserver::start(config.clone(), connector).unwrap();
    observer.observe_late("t1", "S").unwrap();
    observer.observe_late("t2", "S").unwrap();
    let stats = wait_stats(&observer, "both written over TLS", |s| {
        s.found + s.not_found == 2
    });
    assert_eq!((stats.found, stats.store_errors), (1, 0), "{stats:?}");
    assert_eq!(xrange(&mut plain, config.stream()).len(), 2);

    // Without the test CA the server's certificate is not trusted: the
    // handshake fails, and the jobs end as failed, counted.
    let untrusted = RedisConnector::new(&url, &config).unwrap();
    let observer = LateObserver::start(config.clone(), untrusted).unwrap();
    observer.observe_late("t3", "S").unwrap();
    let stats = wait_stats(&observer, "the job fails", |s| s.failed == 1);
    assert!(stats.store_errors >= 1);
    assert_eq!(xrange(&mut plain, config.stream()).len(), 2);
}
