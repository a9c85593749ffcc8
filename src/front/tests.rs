use super::*;

#[test]
fn the_front_is_one_cache_line() {
    assert_eq!(std::mem::size_of::<Front>(), 64);
}

#[test]
fn the_first_close_wins_and_wakes_every_waiter() {
    let mode = Mode {
        late: true,
        workers: true,
        config_error: false,
    };
    let shared = Shared::new(Config::default(), None, mode, Refused::Disabled);
    assert_eq!(shared.stop_asked(), None);
    assert!(shared.woken().try_recv().is_err());
    shared.close(StopMode::Now);
    shared.close(StopMode::Drain {
        until: std::time::Instant::now(),
    });
    assert_eq!(shared.stop_asked(), Some(StopMode::Now));
    assert_eq!(shared.front.door.load(SeqCst), CLOSED);
    assert!(matches!(
        shared.woken().recv(),
        Err(crossbeam_channel::RecvError)
    ));
}
