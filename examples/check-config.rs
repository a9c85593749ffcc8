//! The runbook's step 2, checked before the restart: reads an env file
//! (`KEY=VALUE` lines, `#` comments, blank lines, optional `export` and
//! quotes) or, without a path, the process environment, and prints the
//! startup line the service will log and every effective setting with where
//! it came from. An invalid value prints the library's own error, naming the
//! variable and the value, and exits 2; an unknown `P28_LATE_OBS_*` name (a
//! typo) is a warning.
//!
//! ```text
//! cargo run --example check-config -- /etc/quantum/apply-layer.env
//! P28_LATE_OBS_MAX_WAIT_MS=3000 cargo run --example check-config
//! ```

use std::collections::BTreeMap;

use heat_observer::{Config, RedisConnector};

/// What a check found: the text to print and the exit code.
pub struct Checked {
    pub code: i32,
    pub out: String,
}

/// Checks the settings in the env file at `path`, or in `env` (the process
/// environment, as `(name, value)` pairs) when there is no path.
pub fn check(path: Option<&str>, env: Vec<(String, String)>) -> Checked {
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
    let config = match Config::from_lookup(|name| vars.get(name).cloned()) {
        Ok(config) => config,
        Err(e) => return fail(e.to_string()),
    };
    // The URL the service will use, checked as the library checks it.
    if let Some(url) = config.redis_url()
        && let Err(e) = RedisConnector::new(url, &config)
    {
        return fail(format!("P28_LATE_OBS_REDIS_URL: {e}"));
    }
    let mut out = format!("{}\n\n", config.startup_line());
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
    let known: Vec<&str> = settings.iter().map(|(name, _)| *name).collect();
    for name in vars.keys().filter(|n| n.starts_with("P28_LATE_OBS_")) {
        if !known.contains(&name.as_str()) {
            let nearest = known
                .iter()
                .min_by_key(|k| distance(k, name))
                .unwrap_or(&"");
            out.push_str(&format!(
                "warning: unknown variable {name}, ignored (did you mean {nearest}?)\n"
            ));
        }
    }
    if let Some(advice) = config.advice() {
        out.push_str(&format!("warning: {advice}\n"));
    }
    Checked { code: 0, out }
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

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[allow(dead_code)]
fn main() {
    let path = std::env::args().nth(1);
    if path.as_deref().is_some_and(|p| p == "--help" || p == "-h") {
        println!("usage: check-config [ENV_FILE]  (no file: the process environment)");
        return;
    }
    let checked = check(path.as_deref(), std::env::vars().collect());
    if checked.code == 0 {
        print!("{}", checked.out);
    } else {
        eprint!("{}", checked.out);
    }
    std::process::exit(checked.code);
}
