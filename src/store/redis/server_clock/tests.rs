use std::time::{Duration, Instant};

use super::{ServerClock, WINDOW};

const SERVER_AHEAD_US: i64 = 1_700_000_000_000_000;

fn us(d: Duration) -> i64 {
    d.as_micros() as i64
}

/// A server whose clock is `SERVER_AHEAD_US` ahead of `clock.epoch`.
fn server_time(clock: &ServerClock, at: Instant) -> i64 {
    SERVER_AHEAD_US + us(at - clock.epoch)
}

#[test]
fn a_late_reply_maps_to_when_the_server_read_time_after_a_fast_one() {
    let mut clock = ServerClock::new();
    let t0 = clock.epoch + Duration::from_millis(10);
    // A fast round trip: read at +100 µs, back at +150 µs.
    let read = t0 + Duration::from_micros(100);
    let arrived = t0 + Duration::from_micros(150);
    let first = clock.read_by(server_time(&clock, read), t0, arrived);
    assert_eq!(first, arrived, "the first reply bounds only itself");
    // A look read at +1 ms, its reply read 40 ms later (another master
    // held the worker): bounded 50 µs after the read, not at arrival.
    let sent = t0 + Duration::from_millis(1);
    let read = sent + Duration::from_micros(80);
    let arrived = sent + Duration::from_millis(40);
    let by = clock.read_by(server_time(&clock, read), sent, arrived);
    assert!(by >= read, "never before the read");
    assert_eq!(by - read, Duration::from_micros(50));
}

#[test]
fn the_bound_is_never_before_the_read_and_never_after_the_arrival() {
    let mut clock = ServerClock::new();
    let mut at = clock.epoch;
    // Round trips of 30 µs to 3 ms, reads anywhere inside them.
    for i in 0..500u64 {
        let sent = at + Duration::from_micros(17 * i % 400);
        let trip = Duration::from_micros(30 + (i * 7919) % 3000);
        let read = sent + trip.mul_f64((i % 10) as f64 / 10.0);
        let arrived = sent + trip;
        let by = clock.read_by(server_time(&clock, read), sent, arrived);
        assert!(read <= by && by <= arrived, "{i}: {by:?}");
        at = arrived + Duration::from_millis(1);
    }
}

#[test]
fn a_server_clock_stepped_back_bounds_by_the_arrival() {
    let mut clock = ServerClock::new();
    let sent = clock.epoch + Duration::from_millis(5);
    let arrived = sent + Duration::from_micros(50);
    clock.read_by(server_time(&clock, arrived), sent, arrived);
    // The server's clock goes back a second: its TIME maps before the call.
    let sent = arrived + Duration::from_millis(10);
    let arrived = sent + Duration::from_millis(30);
    let back = server_time(&clock, sent) - 1_000_000;
    assert_eq!(clock.read_by(back, sent, arrived), arrived);
    // Measured anew from there: a later read maps to itself, not a
    // second early.
    let sent = arrived + Duration::from_millis(10);
    let read = sent + Duration::from_micros(20);
    let arrived = read + Duration::from_micros(30);
    let by = clock.read_by(server_time(&clock, read) - 1_000_000, sent, arrived);
    assert!(by >= read, "{:?} before the read", read - by);
}

#[test]
fn the_best_bound_is_kept_for_the_window_only() {
    let mut clock = ServerClock::new();
    let sent = clock.epoch + Duration::from_millis(1);
    let arrived = sent + Duration::from_micros(10);
    clock.read_by(server_time(&clock, arrived), sent, arrived);
    let best = clock.offset.unwrap().0;
    // Slower round trips within the window keep it.
    let sent = arrived + WINDOW / 2;
    let arrived = sent + Duration::from_millis(5);
    clock.read_by(server_time(&clock, sent), sent, arrived);
    assert_eq!(clock.offset.unwrap().0, best);
    // After the window a slower one replaces it (drift is bounded by the
    // window, at the price of a looser bound).
    let sent = arrived + WINDOW;
    let arrived = sent + Duration::from_millis(5);
    clock.read_by(server_time(&clock, sent), sent, arrived);
    assert!(clock.offset.unwrap().0 < best);
}
