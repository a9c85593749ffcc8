use super::*;

#[test]
fn the_socket_timeout_takes_few_values() {
    let got: Vec<u64> = [0, 1, 3, 5, 9, 10, 19, 250, 5000]
        .iter()
        .map(|ms| quantized(Duration::from_millis(*ms)).as_millis() as u64)
        .collect();
    assert_eq!(got, [1, 1, 2, 4, 8, 10, 10, 250, 1000]);
}

#[test]
fn an_invalidate_push_names_its_keys_and_a_null_one_is_a_flush() {
    let keys = vec![Value::Array(vec![
        Value::BulkString(b"k:1".to_vec()),
        Value::BulkString(b"k:2".to_vec()),
    ])];
    assert_eq!(
        invalidated(keys),
        Changes::Invalidated(vec!["k:1".into(), "k:2".into()])
    );
    assert_eq!(invalidated(vec![Value::Nil]), Changes::Lost);
}
