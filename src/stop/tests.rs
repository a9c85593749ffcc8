use super::*;

#[test]
fn the_first_ask_wins_and_wakes_every_waiter() {
    let stop = StopSignal::new();
    assert_eq!(stop.asked(), None);
    assert!(stop.woken().try_recv().is_err());
    stop.ask(StopMode::Now);
    stop.ask(StopMode::Drain {
        until: std::time::Instant::now(),
    });
    assert_eq!(stop.asked(), Some(StopMode::Now));
    assert!(matches!(
        stop.woken().recv(),
        Err(crossbeam_channel::RecvError)
    ));
}
