//! The README's least-privilege ACL rules, read from the README itself, on a
//! real redis-server: with them the observer does all it should, in poll
//! and in push, and the server's `ACL LOG` stays empty (nothing it tried
//! was refused, so no fallback hides a missing right); without the push
//! rights it polls and says so.

mod support;

use heat_observer::{Config, Detect, LateObserver, RedisConnector};
use support::server::{self, Server, unique, xrange};
use support::{ms, wait_stats};

const PASSWORD: &str = "least-Privilege-9";

/// The rule lines of the operators' guide's ACL section, in order.
fn readme_rules() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operators.md"))
        .expect("docs/operators.md");
    let section = readme
        .split("\n### ACL\n")
        .nth(1)
        .expect("an ACL section")
        .split("\n### ")
        .next()
        .unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with("ACL SETUSER heat-observer"))
        .map(str::to_owned)
        .collect()
}

/// `rule` for `config`'s names and this test's password, as arguments.
fn rule_args(rule: &str, config: &Config) -> Vec<String> {
    let defaults = Config::default();
    rule.replace(defaults.heat_key_prefix(), config.heat_key_prefix())
        .replace(defaults.stream(), config.stream())
        .replace(">PASSWORD", &format!(">{PASSWORD}"))
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

fn set_user(server: &Server, rules: &[String], config: &Config) {
    let mut admin = server.connection();
    redis::cmd("ACL")
        .arg("DELUSER")
        .arg("heat-observer")
        .exec(&mut admin)
        .unwrap();
    for rule in rules {
        redis::cmd("ACL")
            .arg(rule_args(rule, config))
            .exec(&mut admin)
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
    }
    redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .exec(&mut admin)
        .unwrap();
}

fn acl_log(server: &Server) -> Vec<redis::Value> {
    redis::cmd("ACL")
        .arg("LOG")
        .query(&mut server.connection())
        .unwrap()
}

fn config(detect: Detect) -> Config {
    let ns = unique("acl");
    Config::builder()
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(format!("{ns}:by_plan:"))
        .detect(detect)
        .max_wait(ms(400))
        .poll(ms(50))
        .build()
        .unwrap()
}

/// Runs one plan whose key is there, one whose key comes after the intake
/// look, one that never gets it; returns the stats at the end.
fn run(server: &Server, config: &Config) -> heat_observer::Stats {
    let url = format!(
        "redis://heat-observer:{PASSWORD}@127.0.0.1:{}",
        server.port()
    );
    let observer =
        LateObserver::start(config.clone(), RedisConnector::new(&url, config).unwrap()).unwrap();
    if config.detect() == Detect::Push {
        wait_stats(&observer, "both workers pushing", |s| s.push_workers == 2);
    }
    let mut admin = server.connection();
    redis::cmd("SET")
        .arg(config.heat_key("there"))
        .arg(1)
        .exec(&mut admin)
        .unwrap();
    for plan in ["there", "comes", "never"] {
        observer.observe_late(plan, "S").unwrap();
    }
    wait_stats(&observer, "the intake looks", |s| s.keys_checked >= 3);
    redis::cmd("SET")
        .arg(config.heat_key("comes"))
        .arg(1)
        .exec(&mut admin)
        .unwrap();
    let stats = wait_stats(&observer, "all three written", |s| {
        s.found + s.not_found == 3 && s.append_calls >= 1
    });
    let report = observer.shutdown(ms(3000));
    assert!(report.stats.is_balanced(), "{report:?}");
    stats
}

#[test]
fn the_readme_rules_are_enough_for_poll_and_push_and_nothing_is_refused() {
    let Some(server) = server::private("the_readme_rules_are_enough") else {
        return;
    };
    let rules = readme_rules();
    assert_eq!(
        rules.len(),
        2,
        "a rule for poll, one more for push: {rules:?}"
    );

    let poll = config(Detect::Poll);
    set_user(&server, &rules[..1], &poll);
    let stats = run(&server, &poll);
    assert_eq!(
        (stats.found, stats.not_found, stats.store_errors),
        (2, 1, 0)
    );
    assert_eq!(xrange(&mut server.connection(), poll.stream()).len(), 3);
    assert_eq!(acl_log(&server), [], "poll: something was refused");

    let push = config(Detect::Push);
    set_user(&server, &rules, &push);
    let stats = run(&server, &push);
    assert_eq!(
        (stats.found, stats.not_found, stats.store_errors),
        (2, 1, 0)
    );
    let events = xrange(&mut server.connection(), push.stream());
    let by_push = events
        .iter()
        .filter(|(_, f)| f.iter().any(|(k, v)| k == "decided_by" && v == "push"))
        .count();
    assert_eq!(
        by_push, 1,
        "the key written after the intake look: {events:?}"
    );
    assert_eq!(acl_log(&server), [], "push: something was refused");

    // Least privilege: the observer's user can neither write a heat key
    // nor destroy, replace, rename or expire the stream.
    let url = format!(
        "redis://heat-observer:{PASSWORD}@127.0.0.1:{}",
        server.port()
    );
    let mut as_user = server::connect(&url);
    let heat = push.heat_key("there");
    let stream = push.stream();
    let attempts: [&[&str]; 10] = [
        &["SET", &heat, "forged"],
        &["DEL", &heat],
        &["RENAME", &heat, "elsewhere"],
        &["EXPIRE", &heat, "1"],
        &["SET", stream, "overwritten"],
        &["DEL", stream],
        &["UNLINK", stream],
        &["RENAME", stream, "elsewhere"],
        &["EXPIRE", stream, "1"],
        &["XTRIM", stream, "MAXLEN", "0"],
    ];
    for args in attempts {
        let refused = redis::cmd(args[0])
            .arg(&args[1..])
            .exec(&mut as_user)
            .expect_err(&format!("{args:?} was allowed"));
        assert_eq!(refused.code(), Some("NOPERM"), "{args:?}: {refused}");
    }
    // And a script the user loads is held to the same rights.
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return redis.call('DEL', KEYS[1])")
        .query(&mut as_user)
        .unwrap();
    let refused = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg(stream)
        .exec(&mut as_user)
        .expect_err("a script deleted the stream");
    assert!(refused.to_string().contains("can't access"), "{refused}");
    let left = xrange(&mut server.connection(), stream).len();
    assert_eq!(left, 3, "the stream is whole");
}

#[test]
fn push_without_its_rights_polls_and_every_plan_is_still_decided() {
    let Some(server) = server::private("push_without_its_rights") else {
        return;
    };
    let rules = readme_rules();
    let push = config(Detect::Push);
    set_user(&server, &rules[..1], &push);
    let url = format!(
        "redis://heat-observer:{PASSWORD}@127.0.0.1:{}",
        server.port()
    );
    let observer =
        LateObserver::start(push.clone(), RedisConnector::new(&url, &push).unwrap()).unwrap();
    observer.observe_late("p", "S").unwrap();
    let stats = wait_stats(&observer, "decided by polling", |s| s.not_found == 1);
    assert_eq!(stats.push_workers, 0);
    assert!(observer.shutdown(ms(3000)).stats.is_balanced());
}

#[test]
fn check_config_connect_proves_the_readme_rights_and_names_each_missing_one() {
    let Some(server) = server::private("check_config_connect") else {
        return;
    };
    let rules = readme_rules();
    // check-config reads the environment, where the names are the defaults.
    let defaults = Config::default();
    let url = |password: &str| {
        format!(
            "redis://heat-observer:{password}@127.0.0.1:{}",
            server.port()
        )
    };
    let check = |detect: &str, url: String| {
        let env = vec![
            ("P28_LATE_OBS_REDIS_URL".to_owned(), url),
            ("P28_LATE_OBS_DETECT".to_owned(), detect.to_owned()),
        ];
        support::check_config(None, env, true)
    };

    set_user(&server, &rules[..1], &defaults);
    let poll = check("poll", url(PASSWORD));
    assert_eq!(poll.code, 0, "{}", poll.out);
    assert_eq!(
        poll.out.matches("\n  ok       +").count(),
        8,
        "{}",
        poll.out
    );
    // The poll rule alone lacks push's three rights, each named.
    let push = check("push", url(PASSWORD));
    assert_eq!(push.code, 2, "{}", push.out);
    for right in ["+client|id", "+client|tracking", "+client|caching"] {
        assert!(
            push.out.contains(&format!("MISSING  {right} (push)")),
            "{}",
            push.out
        );
    }
    set_user(&server, &rules, &defaults);
    let push = check("push", url(PASSWORD));
    assert_eq!(push.code, 0, "{}", push.out);
    assert!(
        push.out.contains("(from P28_LATE_OBS_REDIS_URL;"),
        "{}",
        push.out
    );

    // Only the service's REDIS_URL, as the service finds it: used, named.
    let env = vec![("REDIS_URL".to_owned(), url(PASSWORD))];
    let only_service_url = support::check_config(None, env, true);
    assert_eq!(only_service_url.code, 0, "{}", only_service_url.out);
    assert!(
        only_service_url.out.contains("(from REDIS_URL;"),
        "{}",
        only_service_url.out
    );
    let neither = support::check_config(None, Vec::new(), true);
    assert_eq!(neither.code, 2);
    assert!(
        neither
            .out
            .contains("neither P28_LATE_OBS_REDIS_URL nor REDIS_URL is set"),
        "{}",
        neither.out
    );

    let without_xadd: Vec<String> = rules[..1]
        .iter()
        .map(|r| r.replace("(+xadd ", "("))
        .collect();
    set_user(&server, &without_xadd, &defaults);
    let poll = check("poll", url(PASSWORD));
    assert_eq!(poll.code, 2, "{}", poll.out);
    assert!(
        poll.out
            .contains(&format!("MISSING  +xadd on {}", defaults.stream())),
        "{}",
        poll.out
    );
    assert_eq!(poll.out.matches("MISSING").count(), 1, "{}", poll.out);

    // A wrong password is said by kind; no piece of it is shown.
    let wrong = check("poll", url("Wr0ng-Pass-77"));
    assert_eq!(wrong.code, 2, "{}", wrong.out);
    assert!(wrong.out.contains("authentication failed"), "{}", wrong.out);
    assert!(
        !wrong.out.contains("Wr0ng") && !wrong.out.contains("Pass-77"),
        "{}",
        wrong.out
    );

    // The probes wrote nothing.
    let mut admin = server.connection();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut admin).unwrap();
    assert_eq!(keys, Vec::<String>::new(), "written by the probes");
}

#[test]
fn a_refused_call_names_the_missing_right_as_check_config_does() {
    // A script refused by the ACL names no right ("The user executing the
    // script can't run this command"), and a refused look names a key, not
    // the command: the store proves its rights and says which it lacks.
    let Some(server) = server::private("a_refused_call_names_the_missing_right") else {
        return;
    };
    let rules = readme_rules();
    let url = format!(
        "redis://heat-observer:{PASSWORD}@127.0.0.1:{}",
        server.port()
    );
    let cases = [
        ("(+xadd ", "(", "+xadd on"),
        ("(+set ", "(", "+set on"),
        (" +exists", "", "+exists on"),
    ];
    for (cut, with, right) in cases {
        let config = config(Detect::Poll);
        let rule = rules[0].replace(cut, with);
        set_user(&server, &[rule], &config);
        let connector = RedisConnector::new(&url, &config).unwrap();
        let mut store = heat_observer::store::Connector::connect(&connector, 0);
        let error = if right.starts_with("+exists") {
            heat_observer::store::Store::look(&mut store, &[&config.heat_key("p")], false)
                .unwrap_err()
        } else {
            let event = heat_observer::store::Event::new(
                "p",
                "S",
                heat_observer::ObsPoint::PUBLISH_PLAN_POST,
            );
            let dedupe = config.dedupe_key(heat_observer::ObsPoint::PUBLISH_PLAN_POST, "p");
            let claim = heat_observer::store::Claim {
                dedupe_key: &dedupe,
                owner: "o",
                event: &event,
            };
            let spec = heat_observer::store::StreamSpec {
                name: config.stream().to_owned(),
                maxlen: 1000,
                dedupe_ttl: ms(60_000),
            };
            heat_observer::store::Store::claim_and_append(&mut store, &spec, &[claim]).unwrap_err()
        };
        assert_eq!(
            error.kind(),
            heat_observer::store::StoreErrorKind::Permission,
            "{error}"
        );
        assert!(error.message().contains(right), "{right}: {error}");
        assert!(error.message().contains("user lacks"), "{right}: {error}");
        // check-config says the same of the same user.
        let checks = connector.check_rights(&config).unwrap();
        let missing: Vec<&str> = checks
            .iter()
            .filter(|(_, missing)| missing.is_some())
            .map(|(right, _)| right.as_str())
            .collect();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert!(
            error.message().contains(missing[0]),
            "{error} vs {missing:?}"
        );
    }
}
