use super::*;

#[test]
fn the_characters_that_hide_what_a_plan_id_is_are_hidden() {
    for c in [
        '\u{202E}', '\u{200B}', '\u{FEFF}', '\u{200D}', '\u{2066}', '\n', '\u{85}',
    ] {
        assert!(is_hidden(c), "U+{:04X}", c as u32);
    }
    for c in ['a', ' ', '-', 'é', 'ß', '€', '中', '\u{1F600}'] {
        assert!(!is_hidden(c), "U+{:04X}", c as u32);
    }
}
