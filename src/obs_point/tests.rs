use super::*;

#[test]
fn names_outside_the_safe_alphabet_are_refused() {
    let too_long: &'static str = Box::leak("x".repeat(MAX_OBS_POINT_LEN + 1).into_boxed_str());
    for bad in ["", "a b", "a:b", "a\"b", "a\nb", "é", too_long] {
        assert_eq!(
            ObsPoint::new(bad),
            Err(InvalidInput::BadObsPoint),
            "{bad:?}"
        );
    }
    for good in ["x", "publish_plan_post", "v2.late-check"] {
        assert_eq!(ObsPoint::new(good).map(|p| p.as_str()), Ok(good));
    }
}
