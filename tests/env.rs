//! `Config::from_env` reads the real process environment. One test in a
//! binary of its own, because it changes the environment.

use std::time::Duration;

use heat_observer::Config;

#[test]
fn from_env_reads_the_process_environment() {
    // SAFETY: this binary has a single test, so no other thread reads the
    // environment while it is changed.
    unsafe {
        std::env::set_var("P28_LATE_OBS_MAX_WAIT_MS", "3000");
        std::env::set_var("P28_LATE_OBS_POLL_MS", "150");
        std::env::remove_var("P28_LATE_OBS_ENABLED");
    }
    let config = Config::from_env().unwrap();
    assert_eq!(config.max_wait(), Duration::from_millis(3000));
    assert_eq!(config.poll(), Duration::from_millis(150));
    assert!(config.enabled());

    unsafe { std::env::set_var("P28_LATE_OBS_ENABLED", "ture") };
    let err = Config::from_env().unwrap_err();
    assert_eq!(
        (err.variable(), err.value()),
        ("P28_LATE_OBS_ENABLED", "ture")
    );
}
