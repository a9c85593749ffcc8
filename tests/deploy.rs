//! The operators' kit in `deploy/`: the Prometheus rules pass `promtool
//! check rules` and their own `promtool test rules`; the Grafana dashboard
//! has the runbook's panels verbatim and a sound structure; the
//! check-config example reads env files as the runbook's step 2 writes them.

use std::process::Command;

#[allow(dead_code)]
#[path = "../examples/check-config.rs"]
mod check_config;

use serde_json::Value;

const RULES: &str = "deploy/prometheus/heat-observer.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/heat-observer.rules.test.yml";
const DASHBOARD: &str = "deploy/grafana/heat-observer.json";

/// The runbook's panel 3 and panel 4 expressions, as it writes them.
const PANEL_3: &str = "sum by (obs_point, heat_found) (\n  increase(p28_observed_total[15m])\n)";
const PANEL_4: &str = "sum(increase(p28_observed_total{obs_point=\"publish_plan_post\",heat_found=\"1\"}[15m]))\n/\nsum(increase(p28_observed_total{obs_point=\"publish_plan_post\"}[15m]))";

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

#[test]
fn the_dashboard_has_the_runbooks_panels_and_a_sound_structure() {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    assert!(
        dashboard["schemaVersion"].as_u64().unwrap() >= 36,
        "Grafana 9+"
    );
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource"),
        "a datasource variable"
    );
    // An import asks for the data source (Grafana's `__inputs`), and the
    // variable starts on the one chosen.
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["current"]["value"] == "${DS_PROMETHEUS}")
    );
    let instance = variables
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    assert_eq!(instance["type"], "query");
    assert_eq!(instance["includeAll"], true);
    assert!(
        instance["definition"]
            .as_str()
            .is_some_and(|q| q.starts_with("label_values(p28_") && q.ends_with(", instance)"))
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = Vec::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("");
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        ids.push(panel["id"].as_u64().unwrap());
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{title}: hard-coded datasource"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no target");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(expr.contains("p28_"), "{title}: {expr}");
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            exprs.push(expr.to_owned());
        }
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "panel ids repeat: {ids:?}");
    // Every series a panel reads is filtered by the instance variable;
    // without that filter, the runbook's panels read verbatim.
    for e in &exprs {
        assert_eq!(
            e.matches("p28_").count(),
            e.matches("{instance=~\"$instance\"").count(),
            "a series not filtered by instance: {e}"
        );
    }
    let exprs: Vec<String> = exprs
        .iter()
        .map(|e| {
            e.replace("{instance=~\"$instance\"}", "")
                .replace("instance=~\"$instance\",", "")
        })
        .collect();
    assert!(
        exprs.iter().any(|e| e == PANEL_3),
        "the runbook's panel 3, verbatim"
    );
    assert!(
        exprs.iter().any(|e| e == PANEL_4),
        "the runbook's panel 4, verbatim"
    );
    for series in [
        "p28_refused_total",
        "p28_failed_total",
        "p28_queue_depth",
        "p28_in_flight",
        "p28_heat_wait_seconds_bucket",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(series)),
            "no panel shows {series}"
        );
    }
    let kinds: Vec<&str> = panels.iter().filter_map(|p| p["type"].as_str()).collect();
    assert!(kinds.contains(&"heatmap"), "{kinds:?}");
    assert_eq!(
        exprs
            .iter()
            .filter(|e| e.starts_with("histogram_quantile("))
            .count(),
        3
    );
}

fn check_file(text: &str) -> check_config::Checked {
    let path = std::env::temp_dir().join(format!(
        "heat-observer-{}-{}.env",
        std::process::id(),
        text.len()
    ));
    std::fs::write(&path, text).unwrap();
    let checked = check_config::check(Some(path.to_str().unwrap()), Vec::new());
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
    let missing = check_config::check(Some("/nonexistent/apply-layer.env"), Vec::new());
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
    let checked = check_config::check(None, env);
    assert!(checked.out.contains("wait=3000ms"));
    assert!(checked.out.contains("(environment)"));
}

#[test]
fn the_tools_refuse_an_argument_that_is_not_utf8_without_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    // cargo test builds the examples next to this binary's directory.
    let examples = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples");
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/\xff\xfe.env");
    for tool in ["check-config", "apply"] {
        let path = examples.join(tool);
        if !path.exists() {
            eprintln!("*** SKIPPED: {} is not built ***", path.display());
            continue;
        }
        let out = std::process::Command::new(&path).arg(bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tool}: {err}");
        assert!(
            err.contains("argument 1 is not valid UTF-8"),
            "{tool}: {err}"
        );
        assert!(!err.contains("panicked"), "{tool}: {err}");
    }
}
