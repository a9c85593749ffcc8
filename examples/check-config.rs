//! The runbook's step 2, checked before the restart: reads an env file
//! (`KEY=VALUE` lines, `#` comments, blank lines, optional `export` and
//! quotes) or, without a path, the process environment, and prints the
//! startup line the service will log and every effective setting with where
//! it came from. It checks what the library checks, with the library's own
//! function (`Config::from_vars`): an invalid value, or an unknown
//! `P28_LATE_OBS_*` name (a typo, named with the nearest known one), prints
//! the library's error and exits 2.
//!
//! With `--connect`, it also connects to `P28_LATE_OBS_REDIS_URL` (the
//! password and database the service will use) and proves every right the
//! observer needs in the chosen detection mode: each command on the keys it
//! will touch, in a form the server checks against the ACL and then
//! refuses to run (`XADD` with id `0-0`, `SET ... PX 0`, `EVALSHA` of an
//! unknown script, `CLIENT CACHING` without tracking), so nothing is
//! written. It names each missing right and exits 2 if one is missing or
//! the connection fails.
//!
//! ```text
//! cargo run --example check-config -- /etc/quantum/apply-layer.env
//! cargo run --example check-config -- --connect /etc/quantum/apply-layer.env
//! P28_LATE_OBS_MAX_WAIT_MS=3000 cargo run --example check-config
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use heat_observer::{Config, Detect, RedisConnector};

/// What a check found: the text to print and the exit code.
pub struct Checked {
    pub code: i32,
    pub out: String,
}

/// Checks the settings in the env file at `path`, or in `env` (the process
/// environment, as `(name, value)` pairs) when there is no path.
pub fn check(path: Option<&str>, env: Vec<(String, String)>) -> Checked {
    check_with(path, env, false)
}

/// [`check`], then, if `connecting` and the settings are valid, [`connect`].
pub fn check_with(path: Option<&str>, env: Vec<(String, String)>, connecting: bool) -> Checked {
    let (vars, source) = match path {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match parse_env_file(&text) {
                Ok(vars) => (vars, "file"),
                Err(e) => return fail(format!("{path}: {e}")),
            },
            Err(e) => return fail(format!("cannot read {path}: {e}")),
        },
        None => (env.into_iter().collect(), "environment"),
    };
    // Only the prefix's names: the process environment holds much else.
    let ours = vars
        .iter()
        .filter(|(name, _)| name.to_ascii_uppercase().starts_with("P28_LATE_OBS_"));
    let config = match Config::from_vars(ours) {
        Ok(config) => config,
        Err(e) => return fail(e.to_string()),
    };
    // The URL the service will use, checked as the library checks it.
    if let Some(url) = config.redis_url()
        && let Err(e) = RedisConnector::new(url, &config)
    {
        return fail(format!("P28_LATE_OBS_REDIS_URL: {e}"));
    }
    // The startup line as the service logs it, with where `enabled` came
    // from (a restored backup without the P28 lines leaves it on).
    let enabled_from = match vars.get("P28_LATE_OBS_ENABLED") {
        Some(value) => format!("P28_LATE_OBS_ENABLED={}", value.trim()),
        None => "P28_LATE_OBS_ENABLED not set: on by default".to_owned(),
    };
    let line = config.startup_line();
    let mut out = format!("{}; {enabled_from})\n\n", &line[..line.len() - 1]);
    let settings = config.variables();
    for (name, value) in &settings {
        let from = if vars.contains_key(*name) {
            source
        } else {
            "default"
        };
        let shown = if value.is_empty() { "(unset)" } else { value };
        let line = format!("{name}={shown}");
        out.push_str(&format!("{line:<50} ({from})\n"));
    }
    if let Some(advice) = config.advice() {
        out.push_str(&format!("warning: {advice}\n"));
    }
    let mut checked = Checked { code: 0, out };
    if connecting {
        // Redis as the service finds it: its own variable, else the
        // service's REDIS_URL (which it passes to `from_env`).
        let found = match config.redis_url() {
            Some(url) => Some((url.to_owned(), "P28_LATE_OBS_REDIS_URL")),
            None => vars.get("REDIS_URL").map(|url| (url.clone(), "REDIS_URL")),
        };
        match found {
            Some((url, variable)) => connect(&config, &url, variable, &mut checked),
            None => {
                checked.code = 2;
                checked.out.push_str(
                    "error: --connect: neither P28_LATE_OBS_REDIS_URL nor REDIS_URL is set\n",
                );
            }
        }
    }
    checked
}

/// Connects to `url` (read from `variable`) as the service will and
/// proves each right it needs for `config`'s detection mode, with the
/// library's own probes (`RedisConnector::check_rights`, what the service
/// says when a right is refused); appends what it found to `checked`.
pub fn connect(config: &Config, url: &str, variable: &str, checked: &mut Checked) {
    let connector = match RedisConnector::with_timeout(url, Duration::from_secs(2)) {
        Ok(connector) => connector,
        Err(e) => {
            checked.code = 2;
            checked.out.push_str(&format!("error: {variable}: {e}\n"));
            return;
        }
    };
    let address = connector.address().to_owned();
    let checks = match connector.check_rights(config) {
        Ok(checks) => checks,
        Err(e) => {
            checked.code = 2;
            // The error names the address and what failed, never the URL.
            checked
                .out
                .push_str(&format!("error: cannot connect: {e}\n"));
            return;
        }
    };
    checked.out.push_str(&format!(
        "\nconnected to {address} (from {variable}; authenticated, database selected); rights \
         for detect={}:\n",
        match config.detect() {
            Detect::Push => "push",
            _ => "poll",
        }
    ));
    let mut missing = 0;
    for (right, why_missing) in checks {
        match why_missing {
            None => checked.out.push_str(&format!("  ok       {right}\n")),
            Some(why) => {
                missing += 1;
                checked
                    .out
                    .push_str(&format!("  MISSING  {right}: {why}\n"));
            }
        }
    }
    if missing > 0 {
        checked.code = 2;
        checked.out.push_str(&format!(
            "error: the user lacks {missing} right(s) the observer needs; see docs/operators.md, ACL\n"
        ));
    }
}

fn fail(message: String) -> Checked {
    Checked {
        code: 2,
        out: format!("error: {message}\n"),
    }
}

/// `KEY=VALUE` per line, as systemd's `EnvironmentFile=` reads them.
fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "line {}: expected KEY=VALUE, found {line:?}",
                i + 1
            ));
        };
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(value);
        vars.insert(key.trim().to_owned(), unquoted.to_owned());
    }
    Ok(vars)
}

#[allow(dead_code)]
fn main() {
    let mut args = Vec::new();
    for (i, arg) in std::env::args_os().skip(1).enumerate() {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(_) => {
                eprintln!("error: argument {} is not valid UTF-8", i + 1);
                std::process::exit(2);
            }
        }
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "usage: check-config [--connect] [ENV_FILE]  (no file: the process environment)\n  \
             --connect  connect to Redis as the service does (P28_LATE_OBS_REDIS_URL, else \
             REDIS_URL) and prove every right the observer needs"
        );
        return;
    }
    let connecting = args.iter().any(|a| a == "--connect");
    args.retain(|a| a != "--connect");
    let path = args.first().cloned();
    let checked = check_with(path.as_deref(), std::env::vars().collect(), connecting);
    if checked.code == 0 {
        print!("{}", checked.out);
    } else {
        eprint!("{}", checked.out);
    }
    std::process::exit(checked.code);
}
