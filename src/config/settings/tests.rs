use super::*;

#[test]
fn the_readme_table_is_the_settings_table() {
    let readme = include_str!("../../../README.md");
    let want = readme_table();
    assert!(
        readme.contains(&want),
        "README.md's table of settings differs from src/config/settings.rs; it should read:\n{want}"
    );
}

#[test]
fn every_variable_is_read_shown_and_documented_once() {
    let env: Vec<&str> = SETTINGS.iter().filter(|s| s.env).map(|s| s.name).collect();
    assert!(env.iter().all(|n| n.starts_with(super::super::PREFIX)));
    let mut unique = env.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), env.len());
    let shown: Vec<&str> = Config::default()
        .variables()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(shown, env);
    for s in SETTINGS {
        assert!(!s.doc.is_empty() && !s.default.is_empty(), "{}", s.name);
    }
}

#[test]
fn the_defaults_are_what_the_table_says() {
    let c = Config::default();
    for s in SETTINGS.iter().filter(|s| s.env && s.default != "unset") {
        let shown = (s.show)(&c);
        if s.name == ENV_SHUTDOWN_TIMEOUT_MS {
            assert_eq!(shown, "2500");
        } else {
            assert_eq!(shown, s.default, "{}", s.name);
        }
    }
}
