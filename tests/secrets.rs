//! No secret, not even a piece of one, reaches any output. Passwords that
//! hold each of `/ # ? @ : %` and a space go, raw and percent-encoded,
//! through `from_env` (with every log line captured at trace), `start`,
//! `check-config`, `Debug`, errors and the metrics: no 4-character piece of
//! any of them may show up. One test in a binary of its own: it changes the
//! process environment and installs a capturing logger.

mod support;

use std::sync::Mutex;

use heat_observer::{Config, LateObserver, RedisConnector};
use log::{Log, Metadata, Record};
use support::server;
use support::{ms, wait_stats};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        LINES.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

/// One password per character that ends a URL's address part early or
/// needs encoding, each with pieces found nowhere else.
const PASSWORDS: [&str; 7] = [
    "Kq7/Zx9wVb",
    "Jm4#Rt8yPn",
    "Wd2?Hs6uLc",
    "Fg5@Np3kTe",
    "Yb8:Qr1mXa",
    "Uv6%Ce4jSo",
    "Hn9 Gt2pDw",
];

fn encoded(password: &str) -> String {
    password
        .chars()
        .map(|c| match c {
            '/' | '#' | '?' | '@' | ':' | '%' | ' ' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Every 4-character piece of `password` found in `text`.
fn pieces_in(password: &str, text: &str) -> Vec<String> {
    let chars: Vec<char> = password.chars().collect();
    chars
        .windows(4)
        .map(|w| w.iter().collect::<String>())
        .filter(|piece| text.contains(piece.as_str()))
        .collect()
}

#[test]
fn no_piece_of_a_password_reaches_any_output() {
    static LOGGER: Capture = Capture;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let Some(server) = server::private("no_piece_of_a_password") else {
        return;
    };
    let mut admin = server::connect(&server.url());
    let mut outputs: Vec<String> = Vec::new();
    let mut started = 0;
    for (i, password) in PASSWORDS.iter().enumerate() {
        let user = format!("user{i}");
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query(&mut admin)
            .expect("ACL SETUSER");
        let port = server.port();
        let urls = [
            format!("redis://{user}:{password}@127.0.0.1:{port}"),
            format!("redis://{user}:{}@127.0.0.1:{port}", encoded(password)),
            format!("redis//{user}:{password}@127.0.0.1:{port}"),
            format!("redis://{user}:{password}@127.0.0.1:{port}/x"),
        ];
        for url in urls {
            // from_env: the fail-open start, reading the process environment.
            // SAFETY: this binary has one test, so no other thread reads
            // the environment while it changes.
            unsafe {
                std::env::set_var("P28_LATE_OBS_REDIS_URL", &url);
                std::env::set_var("P28_LATE_OBS_MAX_WAIT_MS", "100");
                std::env::set_var("P28_LATE_OBS_POLL_MS", "20");
                std::env::set_var("P28_LATE_OBS_DETECT", "push");
            }
            let observer = LateObserver::from_env("redis://127.0.0.1:1");
            if observer.stats().enabled {
                started += 1;
                observer.observe_late(&format!("plan-{i}"), "S").unwrap();
                wait_stats(&observer, "decided", |s| s.finished() == 1);
            }
            outputs.push(format!("{observer:?}"));
            outputs.push(format!("{:?}", observer.config()));
            outputs.push(format!("{:?}", observer.config().variables()));
            outputs.push(observer.render_metrics());
            outputs.push(format!("{:?}", observer.shutdown(ms(2000))));

            // start: the long form, and the errors of a URL that cannot work.
            let config = Config::builder().redis_url(&url).build().unwrap();
            outputs.push(format!("{config:?} {:?}", config.variables()));
            match RedisConnector::new(&url, &config) {
                Ok(connector) => {
                    outputs.push(format!("{connector:?}"));
                    let observer = LateObserver::start(config, connector).unwrap();
                    outputs.push(format!("{observer:?}"));
                    drop(observer);
                }
                Err(e) => outputs.push(format!("{e} {e:?}")),
            }

            // check-config, on an env file and on the environment.
            let path = std::env::temp_dir().join(format!("secrets-{}.env", std::process::id()));
            std::fs::write(&path, format!("P28_LATE_OBS_REDIS_URL={url}\n")).unwrap();
            let checked = support::check_config(Some(path.to_str().unwrap()), Vec::new(), false);
            outputs.push(checked.out);
            let env = vec![("P28_LATE_OBS_REDIS_URL".to_owned(), url.clone())];
            outputs.push(support::check_config(None, env, false).out);
            let _ = std::fs::remove_file(path);
        }
    }
    outputs.extend(LINES.lock().unwrap().iter().cloned());
    assert!(started >= PASSWORDS.len(), "the encoded URLs all start");
    let all = outputs.join("\n");
    for password in PASSWORDS {
        let found = pieces_in(password, &all);
        assert!(found.is_empty(), "pieces of {password:?} leaked: {found:?}");
    }
    let lines = LINES.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("percent-encoded")),
        "the advice is given"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("TRACE")),
        "trace lines were captured"
    );
}
