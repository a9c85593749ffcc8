use super::*;

fn os(s: &str) -> OsString {
    OsString::from(s)
}

#[test]
fn flags_accept_the_documented_spellings_in_any_case_with_blanks() {
    for yes in ["true", "TRUE", " True ", "1", "yes", "YES", "on", "On\t"] {
        assert_eq!(flag("F", os(yes)), Ok(true), "{yes:?}");
    }
    for no in ["false", "False", "0", "no", " NO", "off", "OFF "] {
        assert_eq!(flag("F", os(no)), Ok(false), "{no:?}");
    }
}

#[test]
fn flags_refuse_anything_else_and_name_the_value() {
    for bad in ["ture", "2", "y", "enabled", "", "  "] {
        let err = flag("F", os(bad)).unwrap_err();
        assert_eq!(err.variable(), "F");
        assert_eq!(err.value(), bad);
    }
}

#[test]
fn millis_refuse_units_signs_fractions_and_overflow() {
    assert_eq!(millis("M", os(" 2000 ")), Ok(Duration::from_millis(2000)));
    for bad in ["2s", "-5", "1.5", "", "99999999999999999999999", "0x10"] {
        let err = millis("M", os(bad)).unwrap_err();
        assert_eq!(err.value(), bad, "{bad:?}");
    }
}

#[test]
fn non_utf8_is_refused_not_ignored() {
    use std::os::unix::ffi::OsStringExt;
    let err = count("C", OsString::from_vec(vec![0x31, 0xff])).unwrap_err();
    assert_eq!(err.kind(), &ConfigErrorKind::NotUnicode);
}
