#[test]
fn the_front_is_one_cache_line() {
    assert_eq!(std::mem::size_of::<super::Front>(), 64);
}
