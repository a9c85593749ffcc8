use heat_observer_testkit::server;
use redis::{Client, Connection, ProtocolVersion};

use super::{read_exists, send_exists};

/// A connection to `url` speaking `protocol`.
fn connect(url: &str, protocol: ProtocolVersion) -> Connection {
    let info = Client::open(url)
        .expect("a URL")
        .get_connection_info()
        .clone();
    let settings = info.redis_settings().clone().set_protocol(protocol);
    Client::open(info.set_redis_settings(settings))
        .and_then(|c| c.get_connection())
        .expect("connect to the test Redis")
}

/// Looks at `keys` (registering interest with `register`) and returns the
/// answers, each `Ok(found)` or the error's text.
fn look(con: &mut Connection, keys: &[&str], register: bool) -> Vec<Result<bool, String>> {
    send_exists(con, keys, register, true).expect("sent");
    let (found, time) = read_exists(con, keys.len(), register, true).expect("read");
    assert!(
        matches!(time, Some(Ok(us)) if us > 0),
        "TIME answered: {time:?}"
    );
    found
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
}

/// A data connection that speaks RESP3 (a URL with `?protocol=resp3`) is
/// sent `tracking-redir-broken` when the subscriber its tracking is
/// redirected to is gone and a key it registered is written. That push
/// comes between replies; read as one, every later key of the look would
/// take the answer of the key before it, and the connection, kept,
/// would answer the next look with this one's last reply.
#[test]
fn a_push_between_replies_is_not_read_as_a_keys_answer() {
    let Some(target) = server::any("a_push_between_replies_is_not_read_as_a_keys_answer") else {
        return;
    };
    let url = target.url();
    let run = format!("pipelined-push-{}", std::process::id());
    let (written, missing) = (format!("{run}:written"), format!("{run}:missing"));
    let mut admin = connect(&url, ProtocolVersion::RESP2);
    redis::cmd("DEL")
        .arg(&written)
        .arg(&missing)
        .exec(&mut admin)
        .expect("DEL");

    let mut subscriber = connect(&url, ProtocolVersion::RESP3);
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(&mut subscriber)
        .expect("CLIENT ID");
    let mut data = connect(&url, ProtocolVersion::RESP3);
    crate::store::redis::tracking::enable(id)
        .exec(&mut data)
        .expect("CLIENT TRACKING");
    assert_eq!(look(&mut data, &[&written], true), [Ok(false)]);

    // The subscriber goes; the write of a registered key then sends the
    // data connection its push.
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .exec(&mut admin)
        .expect("CLIENT KILL");
    redis::cmd("SET")
        .arg(&written)
        .arg(1)
        .exec(&mut admin)
        .expect("SET");

    assert_eq!(
        look(&mut data, &[&missing, &written, &missing], false),
        [Ok(false), Ok(true), Ok(false)]
    );
    // Nothing left unread: the next look is answered by its own replies.
    assert_eq!(
        look(&mut data, &[&written, &missing], false),
        [Ok(true), Ok(false)]
    );
    redis::cmd("DEL")
        .arg(&written)
        .exec(&mut admin)
        .expect("DEL");
}

/// Whatever leaves a reply unread on a kept connection (the defect of
/// #26 in any of its forms), the look that reads it must not take it as a
/// key's answer: the replies are read one late, so `TIME`, the look's
/// last command, is answered by the last key's `EXISTS`. The look fails
/// as a whole (and the caller drops the connection) instead of answering
/// each key with the reply of the command before it.
#[test]
fn a_reply_left_unread_before_a_look_fails_the_look_instead_of_answering_a_key() {
    let name = "a_reply_left_unread_before_a_look_fails_the_look_instead_of_answering_a_key";
    let Some(target) = server::any(name) else {
        return;
    };
    let url = target.url();
    let run = format!("pipelined-unread-{}", std::process::id());
    let (written, missing) = (format!("{run}:written"), format!("{run}:missing"));
    let mut admin = connect(&url, ProtocolVersion::RESP2);
    redis::cmd("SET")
        .arg(&written)
        .arg(1)
        .exec(&mut admin)
        .expect("SET");
    redis::cmd("DEL")
        .arg(&missing)
        .exec(&mut admin)
        .expect("DEL");

    for keys in [
        vec![missing.as_str()],
        vec![missing.as_str(), missing.as_str()],
    ] {
        let mut data = connect(&url, ProtocolVersion::RESP2);
        // A reply nobody reads: `1`, as a found key's would be.
        data.send_packed_command(&redis::cmd("EXISTS").arg(&written).get_packed_command())
            .expect("sent");
        send_exists(&mut data, &keys, false, true).expect("sent");
        let read = read_exists(&mut data, keys.len(), false, true);
        let error = read.map(|_| ()).expect_err("a look read one reply late");
        // A protocol error, so the link drops the connection.
        assert!(!crate::store::redis::link::is_server_reply(&error));
        let said = crate::store::redis::link::store_error("node", &error).to_string();
        assert!(
            said.starts_with("unexpected store reply: node: replies out of step with the commands")
                && said.contains("TIME answered int(0)"),
            "{said}"
        );
    }
    redis::cmd("DEL")
        .arg(&written)
        .exec(&mut admin)
        .expect("DEL");
}
