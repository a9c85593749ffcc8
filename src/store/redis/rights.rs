//! The rights the observer needs, proven one by one on a live connection:
//! each right as a command on the keys the observer touches, built to be
//! checked against the ACL and then refused by the server (`XADD` with id
//! `0-0`, `SET ... PX 0`, `EVALSHA` of no script, `CLIENT CACHING` without
//! tracking), so nothing is written. `check-config --connect` prints them;
//! a store whose call was refused for a right says which ones are missing
//! in the same words (a script's refusal names no right).

use redis::{Cmd, ConnectionLike};

use crate::config::{Config, Detect};
use crate::obs_point::ObsPoint;

/// One right as an ACL rule with the key it was tried on (`+xadd on
/// quantum:stream:apply.heat.observed`), and why it is missing (the
/// server's `NOPERM`), `None` when the user has it.
pub(crate) type RightCheck = (String, Option<String>);

/// The rights the observer uses with `config`, each as a command.
pub(crate) fn probes(config: &Config) -> Vec<(String, Cmd)> {
    let heat = config.heat_key("check-config-probe");
    let stream = config.stream().to_owned();
    let dedupe = config.dedupe_key(ObsPoint::PUBLISH_PLAN_POST, "check-config-probe");
    let sha = "0".repeat(40);
    let cmd = |args: &[&str]| {
        let mut c = redis::cmd(args[0]);
        c.arg(&args[1..]);
        c
    };
    let mut probes = vec![
        (
            "+script|load (the scripts are loaded once)".to_owned(),
            cmd(&["SCRIPT", "LOAD", "return 1"]),
        ),
        (
            format!("+exists on {heat} (the look; reads only: %R~ is enough)"),
            cmd(&["EXISTS", &heat]),
        ),
        ("+time (when a look was made)".to_owned(), cmd(&["TIME"])),
        (
            format!("+evalsha on {stream} and {dedupe} (the write)"),
            cmd(&["EVALSHA", &sha, "2", &stream, &dedupe]),
        ),
        (
            format!("+xadd on {stream}"),
            cmd(&["XADD", &stream, "NOMKSTREAM", "0-0", "probe", "1"]),
        ),
        (
            format!("+set on {dedupe} (the dedupe claim)"),
            cmd(&["SET", &dedupe, "1", "PX", "0"]),
        ),
        (format!("+get on {dedupe}"), cmd(&["GET", &dedupe])),
        (format!("+del on {dedupe}"), cmd(&["DEL", &dedupe])),
    ];
    if config.detect() == Detect::Push {
        probes.extend([
            ("+client|id (push)".to_owned(), cmd(&["CLIENT", "ID"])),
            (
                "+client|tracking (push)".to_owned(),
                cmd(&["CLIENT", "TRACKING", "on", "OPTIN", "REDIRECT", "0"]),
            ),
            (
                "+client|caching (push)".to_owned(),
                cmd(&["CLIENT", "CACHING", "yes"]),
            ),
        ]);
    }
    probes
}

/// Proves each of `config`'s rights on `con`. The server checks a user's
/// rights before it runs a command: `NOPERM` means a right is missing, any
/// other answer that it is there.
///
/// # Errors
/// The first error that is no answer at all (a timeout, a broken link):
/// the rest cannot be proven.
pub(crate) fn check(
    con: &mut dyn ConnectionLike,
    config: &Config,
) -> redis::RedisResult<Vec<RightCheck>> {
    let mut checks = Vec::new();
    for (right, probe) in probes(config) {
        let missing = match con
            .req_command(&probe)
            .and_then(redis::Value::extract_error)
        {
            Err(e) if e.code() == Some("NOPERM") => Some(e.to_string()),
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                return Err(e);
            }
            _ => None,
        };
        checks.push((right, missing));
    }
    Ok(checks)
}

/// The missing rights of `checks` in one phrase, or `None` if none is.
pub(crate) fn missing_phrase(checks: &[RightCheck]) -> Option<String> {
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(_, missing)| missing.is_some())
        .map(|(right, _)| right.as_str())
        .collect();
    (!missing.is_empty()).then(|| format!("user lacks {}", missing.join(", ")))
}
