//! The instrumented Apply service of the lab refuses an argument that is
//! not UTF-8 with a clear error, without a panic.

#[test]
fn apply_sim_refuses_an_argument_that_is_not_utf8_without_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    // `cargo test` builds the examples next to this binary's directory.
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/apply-sim");
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/\xff\xfe.env");
    let out = std::process::Command::new(&path).arg(bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("argument 1 is not valid UTF-8"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
