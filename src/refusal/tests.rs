use super::*;

const W: Duration = Duration::from_secs(2);

#[test]
fn ordinary_plans_pass() {
    assert_eq!(validate("p-123", "BTCUSDT", W), Ok(()));
    assert_eq!(validate("p", "S", Duration::ZERO), Ok(()));
    let id = "a".repeat(MAX_PLAN_ID_LEN);
    let sym = "S".repeat(MAX_SYMBOL_LEN);
    assert_eq!(validate(&id, &sym, MAX_WAIT_LIMIT), Ok(()));
}

#[test]
fn the_word_check_agrees_with_the_byte_check_on_every_byte_at_every_place() {
    for b in 0..=255u8 {
        for at in 0..17 {
            let mut bytes = vec![b'a'; 17];
            bytes[at] = b;
            let want = bytes.iter().all(|&x| (0x20..0x7f).contains(&x));
            assert_eq!(is_printable_ascii(&bytes), want, "byte {b:#x} at {at}");
        }
    }
}

#[test]
fn the_scan_agrees_with_is_hidden_on_every_code_point() {
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let s = format!("a{c}b");
        assert_eq!(has_hidden(&s), is_hidden(c), "U+{:04X}", c as u32);
    }
}

#[test]
fn each_bad_input_names_what_was_wrong() {
    let long_id = "a".repeat(MAX_PLAN_ID_LEN + 1);
    let long_sym = "S".repeat(MAX_SYMBOL_LEN + 1);
    let cases = [
        (validate("", "X", W), InvalidInput::EmptyPlanId),
        (validate("p", "", W), InvalidInput::EmptySymbol),
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
        // Ids that read differently than they are: right-to-left
        // override, zero-width space, byte order mark.
        (
            validate("p-1\u{202E}2", "X", W),
            InvalidInput::ControlCharacter { field: "plan_id" },
        ),
        (
            validate("p\u{200B}1", "X", W),
            InvalidInput::ControlCharacter { field: "plan_id" },
        ),
        (
            validate("p", "\u{FEFF}BTC", W),
            InvalidInput::ControlCharacter { field: "symbol" },
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
        "symbol holds a control or format character"
    );
}
