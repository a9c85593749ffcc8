use super::*;

fn push(keys: &[&str]) -> Vec<u8> {
    let mut out = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len()).into_bytes();
    for k in keys {
        out.extend(format!("${}\r\n{k}\r\n", k.len()).bytes());
    }
    out
}

const FLUSH: &[u8] = b">2\r\n$10\r\ninvalidate\r\n_\r\n";

/// Feeds `bytes` to a reader in pieces cut at `cuts`, keeping the buffer
/// as a socket would; returns the frames and the largest buffer held.
fn feed(bytes: &[u8], cuts: &[usize]) -> (Result<Vec<Frame>, String>, usize) {
    let mut reader = FrameReader::default();
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut most = 0;
    let mut from = 0;
    for &to in cuts.iter().chain([&bytes.len()]) {
        buf.extend_from_slice(&bytes[from..to]);
        from = to;
        most = most.max(buf.len());
        match reader.read(&mut buf) {
            Ok(got) => frames.extend(got),
            Err(why) => return (Err(why), most),
        }
    }
    (Ok(frames), most)
}

fn whole(bytes: &[u8]) -> Result<Vec<Frame>, String> {
    feed(bytes, &[]).0
}

/// A fixed-seed xorshift: the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn an_invalidate_push_names_its_keys() {
    let bytes = push(&["k:1", "k:22"]);
    assert_eq!(
        whole(&bytes).unwrap(),
        [Frame::Invalidate(vec!["k:1".into(), "k:22".into()])]
    );
}

#[test]
fn a_null_payload_is_a_flush() {
    assert_eq!(whole(FLUSH).unwrap(), [Frame::Flush]);
    let resp2_null = b">2\r\n$10\r\ninvalidate\r\n*-1\r\n";
    assert_eq!(whole(resp2_null).unwrap(), [Frame::Flush]);
}

#[test]
fn every_split_point_of_a_run_of_frames_gives_the_same_frames() {
    let mut bytes = push(&["quantum:harvest:heat:by_plan:p-1", "b"]);
    bytes.extend(FLUSH);
    bytes.extend(push(&[]));
    bytes.extend(push(&["c"]));
    let want = whole(&bytes).unwrap();
    assert_eq!(want.len(), 4);
    for cut in 0..=bytes.len() {
        assert_eq!(feed(&bytes, &[cut]).0.unwrap(), want, "cut at {cut}");
    }
    for a in 0..bytes.len() {
        for b in a..bytes.len() {
            assert_eq!(feed(&bytes, &[a, b]).0.unwrap(), want, "cuts {a}, {b}");
        }
    }
}

#[test]
fn random_frames_in_random_pieces_come_out_whole_and_in_order() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for case in 0..300 {
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for _ in 0..rng.below(6) + 1 {
            if rng.below(8) == 0 {
                bytes.extend(FLUSH);
                want.push(Frame::Flush);
                continue;
            }
            let keys: Vec<String> = (0..rng.below(40))
                .map(|_| {
                    let len = rng.below(70);
                    (0..len)
                        .map(|_| char::from(b'!' + rng.below(90) as u8))
                        .collect()
                })
                .collect();
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            bytes.extend(push(&refs));
            want.push(Frame::Invalidate(keys));
        }
        let mut cuts: Vec<usize> = (0..rng.below(12)).map(|_| rng.below(bytes.len())).collect();
        cuts.sort_unstable();
        assert_eq!(
            feed(&bytes, &cuts).0.unwrap(),
            want,
            "case {case}, cuts {cuts:?}"
        );
        // A truncated run gives the frames before the cut and waits.
        let cut = rng.below(bytes.len());
        let got = feed(&bytes[..cut], &[]).0.unwrap();
        assert!(want.starts_with(&got), "case {case}, truncated at {cut}");
    }
}

#[test]
fn random_bytes_never_panic_and_never_hold_more_than_a_key() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let alphabet = b">2*$_-\r\n0123456789invalidate:x";
    for _ in 0..2000 {
        let len = rng.below(300);
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        // Half the cases start as a real frame does, to get past the head.
        if rng.below(2) == 0 {
            let mut head = b">2\r\n$10\r\ninvalidate\r\n".to_vec();
            head.append(&mut bytes);
            bytes = head;
        }
        let cuts: Vec<usize> = (0..bytes.len()).step_by(rng.below(7) + 1).collect();
        let (_, most) = feed(&bytes, &cuts);
        assert!(most <= MAX_PENDING + bytes.len().min(8));
    }
}

#[test]
fn huge_negative_and_nested_lengths_are_refused_at_once_not_waited_for() {
    let cases: [(&[u8], &str); 8] = [
        (
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$9223372036854775807\r\n",
            "length 9223372036854775807",
        ),
        (
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$65537\r\n",
            "length 65537",
        ),
        (
            b">2\r\n$10\r\ninvalidate\r\n*9223372036854775807\r\n",
            "more than",
        ),
        (b">2\r\n$10\r\ninvalidate\r\n*1\r\n$-5\r\n", "length -5"),
        (
            b">2\r\n$9223372036854775807\r\n",
            "length 9223372036854775807",
        ),
        (b">9223372036854775807\r\n", "a push of two items"),
        (
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n*1\r\n*1\r\n*1\r\n",
            "expected a bulk string",
        ),
        (
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$99999999999999999999999\r\n",
            "a length",
        ),
    ];
    for (bytes, want) in cases {
        let got = whole(bytes).unwrap_err();
        assert!(
            got.contains(want),
            "{:?}: {got}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn anything_else_is_an_error_that_says_what() {
    let message = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n";
    assert!(whole(message).unwrap_err().contains("a push of two items"));
    let other = b">2\r\n$7\r\nmessage\r\n*0\r\n";
    assert!(whole(other).unwrap_err().contains("other than invalidate"));
    let reply = b"+OK\r\n";
    assert!(whole(reply).unwrap_err().contains("'+'"));
    let broken = b">2\r\n$10\r\ninvalidateXY*0\r\n";
    assert!(whole(broken).unwrap_err().contains("without its end"));
    let endless = [b'>'; 64];
    assert!(whole(&endless).unwrap_err().contains("without its end"));
}

#[test]
fn a_frame_of_200000_keys_is_read_as_it_comes_with_a_small_buffer() {
    // One script writing 200,000 heat keys: 2.8 MB in one push. Read in
    // 16 KiB pieces, the buffer never holds more than a piece and a key,
    // so each byte is parsed once (it was parsed again after every read).
    let keys: Vec<String> = (0..200_000)
        .map(|i| format!("quantum:harvest:heat:by_plan:{i}"))
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let bytes = push(&refs);
    assert!(bytes.len() > 2_000_000);
    let cuts: Vec<usize> = (1..=bytes.len() / 16_384).map(|i| i * 16_384).collect();
    let (frames, most) = feed(&bytes, &cuts);
    assert!(most < 16_384 + 128, "the buffer held {most} bytes");
    let frames = frames.unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0], Frame::Invalidate(keys));
}
