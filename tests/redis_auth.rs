//! A Redis with `requirepass` and an ACL user allowed only what the
//! observer needs: the URL's credentials work, and no log line, error or
//! `Debug` output shows a password. Its own binary, for the capturing logger.

mod support;

use std::sync::Mutex;

use heat_observer::{Config, LateObserver, RedisConnector, store::Connector};
use log::{Log, Metadata, Record};
use redis::Commands;
use support::server::{self, unique, xrange};
use support::{ms, wait_stats};

const ADMIN_PASSWORD: &str = "admin-Pa55word-never-logged";
const OBSERVER_PASSWORD: &str = "observer-Pa55word-never-logged";

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        LINES.lock().unwrap().push(format!(
            "{} {} {}",
            record.level(),
            record.target(),
            record.args()
        ));
    }
    fn flush(&self) {}
}

#[test]
fn credentials_in_the_url_work_and_never_show_up_in_logs() {
    static LOGGER: Capture = Capture;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let Some(server) = server::private_with(
        "credentials_in_the_url_work",
        &["--requirepass", ADMIN_PASSWORD],
    ) else {
        return;
    };
    let ns = unique("acl");
    let config = Config::builder()
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(format!("{ns}:by_plan:"))
        .max_wait(ms(200))
        .poll(ms(20))
        .build()
        .unwrap();
    let admin_url = format!("redis://:{ADMIN_PASSWORD}@127.0.0.1:{}", server.port());
    let mut admin = server::connect(&admin_url);
    // A rule written for Redis 6 (no selectors, heat keys writable).
    // (`tests/acl.rs` runs the rules of docs/operators.md.)
    let rule = acl_rule(&config);
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("heat-observer")
        .arg("on")
        .arg(format!(">{OBSERVER_PASSWORD}"));
    for part in rule.split_whitespace() {
        setuser.arg(part);
    }
    let _: () = setuser.query(&mut admin).expect("ACL SETUSER");
    let _: () = admin.set(config.heat_key("a1"), 1).unwrap();

    // The restricted user: its rights are enough for every call the
    // observer makes (a missing right would fail the look or the write).
    let user_url = format!(
        "redis://heat-observer:{OBSERVER_PASSWORD}@127.0.0.1:{}",
        server.port()
    );
    let user = LateObserver::start(
        config.clone(),
        RedisConnector::new(&user_url, &config).unwrap(),
    )
    .unwrap();
    user.observe_late("a1", "S").unwrap();
    user.observe_late("a2", "S").unwrap();
    let stats = wait_stats(&user, "both decided and written", |s| s.finished() == 2);
    assert_eq!(
        (stats.found, stats.not_found, stats.store_errors),
        (1, 1, 0),
        "{stats:?}"
    );
    assert_eq!(xrange(&mut admin, config.stream()).len(), 2);
    // ...and no more: it cannot touch other keys.
    let mut as_user = server::connect(&user_url);
    assert!(as_user.set::<_, _, ()>("other:key", 1).is_err());

    // The default user's password in the URL works too.
    let admin_observer = LateObserver::start(
        config.clone(),
        RedisConnector::new(&admin_url, &config).unwrap(),
    )
    .unwrap();
    admin_observer.observe_late("a1", "S").unwrap();
    wait_stats(&admin_observer, "deduplicated against the first", |s| {
        s.deduplicated == 1
    });

    // A wrong password fails the calls, and the warnings say where, not how.
    let wrong_url = format!(
        "redis://heat-observer:{OBSERVER_PASSWORD}-wrong@127.0.0.1:{}",
        server.port()
    );
    let connector = RedisConnector::new(&wrong_url, &config).unwrap();
    let debug = format!("{connector:?} {:?}", connector.connect(0));
    let wrong = LateObserver::start(config.clone(), connector).unwrap();
    wrong.observe_late("a3", "S").unwrap();
    wait_stats(&wrong, "the look fails", |s| s.failed == 1);
    drop((user, admin_observer, wrong));

    let lines = LINES.lock().unwrap().clone();
    let address = format!("127.0.0.1:{}", server.port());
    // An operator's error, said as such: which user, and what to check.
    let said = format!(
        "ERROR heat_observer Late observer cannot use Redis: {address}: authentication failed \
         for user \"heat-observer\"; check the user and password of the Redis URL"
    );
    assert!(lines.iter().any(|l| l.starts_with(&said)), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("store: redis {address}"))),
        "{lines:#?}"
    );
    for text in lines.iter().chain([&debug]) {
        assert!(
            !text.contains(ADMIN_PASSWORD) && !text.contains(OBSERVER_PASSWORD),
            "leaked: {text}"
        );
        assert!(!text.contains("redis://"), "a URL in: {text}");
    }
}

/// The ACL rule the README documents for Redis 6, for `config`'s key names.
fn acl_rule(config: &Config) -> String {
    format!(
        "resetkeys ~{prefix}* ~{stream} ~{{{stream}}}:dedupe:* resetchannels -@all +evalsha +script|load +exists +set +get +del +xadd",
        prefix = config.heat_key_prefix(),
        stream = config.stream()
    )
}
