use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::*;

#[test]
fn a_wait_ends_with_data_at_once_and_without_it_at_its_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let quiet = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _quiet_peer = listener.accept().unwrap();
    let told = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut told_peer, _) = listener.accept().unwrap();

    let fds = [quiet.as_raw_fd(), told.as_raw_fd()];
    let started = Instant::now();
    assert_eq!(
        readable(&fds, Duration::from_millis(30)).unwrap(),
        [false, false]
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(30),
        "ended early: {waited:?}"
    );

    told_peer.write_all(b"x").unwrap();
    let got = readable(&fds, Duration::from_secs(10)).unwrap();
    assert_eq!(got, [false, true]);

    drop(told_peer);
    assert_eq!(
        readable(&fds[1..], Duration::ZERO).unwrap(),
        [true],
        "its end"
    );
}
