//! Validation of what callers pass to `observe_*`. Runs on the caller's
//! thread, so it only scans the two short strings once.

use std::fmt;
use std::time::Duration;

use crate::config::MAX_WAIT_LIMIT;

/// Longest accepted plan id, in bytes.
pub const MAX_PLAN_ID_LEN: usize = 128;
/// Longest accepted symbol, in bytes.
pub const MAX_SYMBOL_LEN: usize = 32;

/// Why an observation was refused as invalid. Nothing invalid is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The plan id is empty.
    EmptyPlanId,
    /// The plan id is longer than [`MAX_PLAN_ID_LEN`] bytes.
    PlanIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The symbol is longer than [`MAX_SYMBOL_LEN`] bytes.
    SymbolTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The named field holds a control character (a newline would break
    /// the runbook's `redis-cli | awk` reading of the stream).
    ControlCharacter {
        /// `"plan_id"` or `"symbol"`.
        field: &'static str,
    },
    /// The wait is longer than [`MAX_WAIT_LIMIT`].
    WaitTooLong {
        /// The wait asked for, in milliseconds.
        ms: u128,
    },
    /// An observation point name outside the accepted alphabet.
    BadObsPoint,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyPlanId => f.write_str("plan_id is empty"),
            Self::PlanIdTooLong { len } => {
                write!(
                    f,
                    "plan_id is {len} bytes long, more than {MAX_PLAN_ID_LEN}"
                )
            }
            Self::SymbolTooLong { len } => {
                write!(f, "symbol is {len} bytes long, more than {MAX_SYMBOL_LEN}")
            }
            Self::ControlCharacter { field } => write!(f, "{field} holds a control character"),
            Self::WaitTooLong { ms } => write!(
                f,
                "wait of {ms} ms is longer than {} ms",
                MAX_WAIT_LIMIT.as_millis()
            ),
            Self::BadObsPoint => {
                f.write_str("obs_point must be 1 to 64 ASCII letters, digits, '_', '.' or '-'")
            }
        }
    }
}

impl std::error::Error for InvalidInput {}

/// Checks one observation's arguments.
pub(crate) fn validate(plan_id: &str, symbol: &str, wait: Duration) -> Result<(), InvalidInput> {
    if plan_id.is_empty() {
        return Err(InvalidInput::EmptyPlanId);
    }
    if plan_id.len() > MAX_PLAN_ID_LEN {
        return Err(InvalidInput::PlanIdTooLong { len: plan_id.len() });
    }
    if symbol.len() > MAX_SYMBOL_LEN {
        return Err(InvalidInput::SymbolTooLong { len: symbol.len() });
    }
    if has_control(plan_id) {
        return Err(InvalidInput::ControlCharacter { field: "plan_id" });
    }
    if has_control(symbol) {
        return Err(InvalidInput::ControlCharacter { field: "symbol" });
    }
    if wait > MAX_WAIT_LIMIT {
        return Err(InvalidInput::WaitTooLong {
            ms: wait.as_millis(),
        });
    }
    Ok(())
}

/// Whether `s` holds a control character (Unicode category Cc: C0, DEL,
/// C1). It runs on the caller's thread, so it is a short byte loop: no char
/// decoding, and little code to fetch when the caller's caches are cold. C0
/// and DEL are single bytes; C1 (U+0080..U+009F) is 0xC2 followed by
/// 0x80..=0x9F.
fn has_control(s: &str) -> bool {
    let mut after_c2 = false;
    for &b in s.as_bytes() {
        if b < 0x20 || b == 0x7f || (after_c2 && b <= 0x9f) {
            return true;
        }
        after_c2 = b == 0xc2;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(2);

    #[test]
    fn ordinary_plans_pass() {
        assert_eq!(validate("p-123", "BTCUSDT", W), Ok(()));
        assert_eq!(validate("p", "", Duration::ZERO), Ok(()));
        let id = "a".repeat(MAX_PLAN_ID_LEN);
        let sym = "S".repeat(MAX_SYMBOL_LEN);
        assert_eq!(validate(&id, &sym, MAX_WAIT_LIMIT), Ok(()));
    }

    #[test]
    fn the_byte_scan_agrees_with_char_is_control_on_every_code_point() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(has_control(&s), c.is_control(), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn each_bad_input_names_what_was_wrong() {
        let long_id = "a".repeat(MAX_PLAN_ID_LEN + 1);
        let long_sym = "S".repeat(MAX_SYMBOL_LEN + 1);
        let cases = [
            (validate("", "X", W), InvalidInput::EmptyPlanId),
            (
                validate(&long_id, "X", W),
                InvalidInput::PlanIdTooLong { len: 129 },
            ),
            (
                validate("p", &long_sym, W),
                InvalidInput::SymbolTooLong { len: 33 },
            ),
            (
                validate("p\n1", "X", W),
                InvalidInput::ControlCharacter { field: "plan_id" },
            ),
            (
                validate("p", "BTC\r", W),
                InvalidInput::ControlCharacter { field: "symbol" },
            ),
            (
                validate("p\u{85}", "X", W),
                InvalidInput::ControlCharacter { field: "plan_id" },
            ),
            (
                validate("p", "X", MAX_WAIT_LIMIT + Duration::from_millis(1)),
                InvalidInput::WaitTooLong { ms: 3_600_001 },
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want));
        }
        assert_eq!(
            InvalidInput::ControlCharacter { field: "symbol" }.to_string(),
            "symbol holds a control character"
        );
    }
}
