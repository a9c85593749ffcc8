//! The operators' kit in `deploy/`: the Prometheus rules pass `promtool
//! check rules` and their own `promtool test rules`; the check-config
//! example reads env files as the runbook's step 2 writes them. (The
//! Grafana dashboard is checked in the lab, `lab/tests/dashboard.rs`: it
//! reads JSON.)

mod support;

use std::process::Command;

const RULES: &str = "deploy/prometheus/heat-observer.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/heat-observer.rules.test.yml";

/// Runs promtool with `args`; `None` (said loudly) when it is not there,
/// unless HEAT_OBSERVER_REQUIRE_PROMTOOL=1.
fn promtool(args: &[&str]) -> Option<(bool, String)> {
    match Command::new("promtool").args(args).output() {
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            Some((out.status.success(), said))
        }
        Err(_) if std::env::var_os("HEAT_OBSERVER_REQUIRE_PROMTOOL").is_some() => {
            panic!("promtool is not on PATH and HEAT_OBSERVER_REQUIRE_PROMTOOL=1")
        }
        Err(_) => {
            eprintln!("\n*** SKIPPED promtool: not on PATH (apt-get install prometheus) ***");
            None
        }
    }
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let Some((ok, said)) = promtool(&["check", "rules", RULES]) else {
        return;
    };
    assert!(ok, "{said}");
    assert!(said.contains("SUCCESS: 11 rules found"), "{said}");
    let (ok, said) = promtool(&["test", "rules", RULE_TESTS]).unwrap();
    assert!(ok, "{said}");
    // The unit tests can fail: the same alerts with a wrong expectation.
    let tests = std::fs::read_to_string(RULE_TESTS).unwrap();
    let broken = tests.replace("instance: \"a:8043\"", "instance: \"z:1\"");
    let dir = std::env::temp_dir().join(format!("heat-observer-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(RULES, dir.join("heat-observer.rules.yml")).unwrap();
    std::fs::write(dir.join("broken.test.yml"), broken).unwrap();
    let (ok, said) = promtool(&[
        "test",
        "rules",
        dir.join("broken.test.yml").to_str().unwrap(),
    ])
    .unwrap();
    assert!(!ok, "a wrong expectation passed: {said}");
    let _ = std::fs::remove_dir_all(dir);
}

fn check_file(text: &str) -> support::Checked {
    let path = std::env::temp_dir().join(format!(
        "heat-observer-{}-{}.env",
        std::process::id(),
        text.len()
    ));
    std::fs::write(&path, text).unwrap();
    let checked = support::check_config(Some(path.to_str().unwrap()), Vec::new(), false);
    let _ = std::fs::remove_file(path);
    checked
}

#[test]
fn check_config_reads_the_runbooks_env_file() {
    let good = "# P2.8A.3 Late Observer (post-publish delayed observation)\n\
                P28_LATE_OBS_ENABLED=true\n\n\
                P28_LATE_OBS_MAX_WAIT_MS=2000\n\
                export P28_LATE_OBS_POLL_MS=\"100\"\n\
                OTHER_SERVICE_SETTING=x\n";
    let checked = check_file(good);
    assert_eq!(checked.code, 0, "{}", checked.out);
    let lines: Vec<&str> = checked.out.lines().collect();
    assert_eq!(
        lines[0],
        "P2.8A.3 Late Observer: True (wait=2000ms, poll=100ms; P28_LATE_OBS_ENABLED=true)"
    );
    let line = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name}=")))
            .copied()
            .unwrap()
    };
    assert!(line("P28_LATE_OBS_MAX_WAIT_MS").ends_with("(file)"));
    assert!(line("P28_LATE_OBS_POLL_MS").starts_with("P28_LATE_OBS_POLL_MS=100 "));
    assert!(line("P28_LATE_OBS_WORKERS").ends_with("(default)"));
    assert!(!checked.out.contains("warning"), "{}", checked.out);

    let rollback = check_file("P28_LATE_OBS_ENABLED=false\n");
    assert!(rollback.out.starts_with(
        "P2.8A.3 Late Observer: False (wait=2000ms, poll=100ms; P28_LATE_OBS_ENABLED=false)"
    ));

    // The runbook's other rollback restores the backup taken before the
    // P28 lines: the flag is then unset, and on by default. Said as such,
    // so that the operator adds P28_LATE_OBS_ENABLED=false (README).
    let restored = check_file("REDIS_URL=redis://127.0.0.1:6379\nOTHER=x\n");
    assert!(
        restored.out.starts_with(
            "P2.8A.3 Late Observer: True (wait=2000ms, poll=100ms; P28_LATE_OBS_ENABLED not set: \
             on by default)"
        ),
        "{}",
        restored.out
    );
    let restored_off = check_file("REDIS_URL=redis://127.0.0.1:6379\nP28_LATE_OBS_ENABLED=false\n");
    assert!(restored_off.out.starts_with("P2.8A.3 Late Observer: False"));
}

#[test]
fn check_config_refuses_each_bad_value_with_the_librarys_error() {
    for (line, error) in [
        (
            "P28_LATE_OBS_POLL_MS=2s",
            r#"invalid P28_LATE_OBS_POLL_MS="2s": expected a whole number of milliseconds"#,
        ),
        (
            "P28_LATE_OBS_MAX_WAIT_MS=-5",
            r#"invalid P28_LATE_OBS_MAX_WAIT_MS="-5""#,
        ),
        (
            "P28_LATE_OBS_ENABLED=ture",
            r#"invalid P28_LATE_OBS_ENABLED="ture""#,
        ),
        (
            "P28_LATE_OBS_WORKERS=",
            r#"invalid P28_LATE_OBS_WORKERS="": the value is empty"#,
        ),
        (
            "P28_LATE_OBS_POLL_MS=0",
            r#"invalid P28_LATE_OBS_POLL_MS="0": must be at least 1"#,
        ),
        (
            "P28_LATE_OBS_POLL_MS=5000",
            r#"invalid P28_LATE_OBS_POLL_MS="5000": the poll interval must not exceed"#,
        ),
        (
            "P28_LATE_OBS_QUEUE_CAPACITY=0",
            r#"invalid P28_LATE_OBS_QUEUE_CAPACITY="0""#,
        ),
        ("P28_LATE_OBS_NAME=a\u{7}b", r#"invalid P28_LATE_OBS_NAME="#),
        ("not a setting", "line 1: expected KEY=VALUE"),
    ] {
        let checked = check_file(&format!("{line}\n"));
        assert_eq!(checked.code, 2, "{line}: {}", checked.out);
        assert!(
            checked.out.starts_with("error: "),
            "{line}: {}",
            checked.out
        );
        assert!(checked.out.contains(error), "{line}: {}", checked.out);
    }
}

#[test]
fn check_config_refuses_typos_as_the_library_does_and_warns_about_a_slow_timeout() {
    // A typo is refused, as the library refuses it at start.
    let typo = check_file("P28_LATE_OBS_MAXWAIT_MS=5000\n");
    assert_eq!(typo.code, 2, "{}", typo.out);
    let library = heat_observer::Config::from_vars([("P28_LATE_OBS_MAXWAIT_MS", "5000")])
        .unwrap_err()
        .to_string();
    assert_eq!(typo.out, format!("error: {library}\n"));
    assert!(library.contains("P28_LATE_OBS_MAX_WAIT_MS"), "{library}");
    let checked = check_file("P28_LATE_OBS_REDIS_TIMEOUT_MS=100\n");
    assert_eq!(checked.code, 0, "{}", checked.out);
    assert!(checked.out.contains(
        "warning: P28_LATE_OBS_REDIS_TIMEOUT_MS=100 is not below P28_LATE_OBS_POLL_MS=100"
    ));
    let missing = support::check_config(Some("/nonexistent/apply-layer.env"), Vec::new(), false);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .out
            .starts_with("error: cannot read /nonexistent/apply-layer.env"),
        "{}",
        missing.out
    );
    // Without a file: the process environment given.
    let env = vec![("P28_LATE_OBS_MAX_WAIT_MS".to_owned(), "3000".to_owned())];
    let checked = support::check_config(None, env, false);
    assert!(checked.out.contains("wait=3000ms"));
    assert!(checked.out.contains("(environment)"));
}

#[test]
fn check_config_refuses_an_argument_that_is_not_utf8_without_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let path = support::examples_dir().join("check-config");
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/\xff\xfe.env");
    let out = Command::new(&path).arg(bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("argument 1 is not valid UTF-8"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
