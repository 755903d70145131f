//! Property tests of the wire codec: every message survives a round trip, framing
//! survives arbitrary split points, and no byte string makes the decoder panic.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use raftbench::codec::{self, CodecError, Frame, DEFAULT_MAX_FRAME};
use raftbench::raft::message::{
    AppendEntries, AppendEntriesResponse, AppendKind, Message, MessageBody, RejectHint,
    RequestVote, RequestVoteResponse,
};
use raftbench::raft::types::{Entry, EntryKind};

fn any_entry() -> impl Strategy<Value = Entry> {
    (
        any::<u64>(),
        any::<u64>(),
        prop_oneof![Just(EntryKind::Normal), Just(EntryKind::Noop)],
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(term, index, kind, data)| Entry {
            term,
            index,
            kind,
            data: Bytes::from(data),
        })
}

fn body() -> impl Strategy<Value = MessageBody> {
    let append = (
        any::<[u64; 4]>(),
        prop_oneof![
            Just(AppendKind::Entries),
            Just(AppendKind::Heartbeat),
            Just(AppendKind::CommitNotice)
        ],
        proptest::collection::vec(any_entry(), 0..12),
    )
        .prop_map(|([pi, pt, lc, cf], kind, entries)| {
            MessageBody::AppendEntries(AppendEntries {
                prev_log_index: pi,
                prev_log_term: pt,
                entries,
                leader_commit: lc,
                compact_floor: cf,
                kind,
            })
        });
    let hint =
        (any::<Option<u64>>(), any::<u64>(), any::<u64>()).prop_map(|(t, ci, li)| RejectHint {
            conflict_term: t,
            conflict_index: ci,
            last_index: li,
        });
    let response = (any::<u64>(), any::<u64>(), proptest::option::of(hint)).prop_map(
        |(prev_log_index, match_index, reject)| {
            MessageBody::AppendEntriesResponse(AppendEntriesResponse {
                prev_log_index,
                match_index,
                reject,
            })
        },
    );
    let vote = (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(i, t, pre_vote)| {
        MessageBody::RequestVote(RequestVote {
            last_log_index: i,
            last_log_term: t,
            pre_vote,
        })
    });
    let vote_resp = (any::<bool>(), any::<bool>()).prop_map(|(granted, pre_vote)| {
        MessageBody::RequestVoteResponse(RequestVoteResponse { granted, pre_vote })
    });
    prop_oneof![append, response, vote, vote_resp]
}

fn message() -> impl Strategy<Value = Message> {
    (any::<u64>(), any::<u64>(), any::<u64>(), body()).prop_map(|(from, to, term, body)| Message {
        from,
        to,
        term,
        body,
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        1 => any::<u64>().prop_map(Frame::Hello),
        6 => message().prop_map(Frame::Raft),
    ]
}

proptest! {
    // 10,000 cases: each case is a whole message with up to 12 entries.
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn message_round_trips(m in message()) {
        let mut buf = BytesMut::new();
        codec::encode(&m, &mut buf);
        prop_assert_eq!(buf.len(), codec::encoded_len(&m));
        prop_assert_eq!(codec::decode(buf.freeze()), Ok(m));
    }
}

proptest! {
    // 2,000 cases: each case is a stream of up to 8 frames fed in up to 8 pieces.
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn stream_of_frames_survives_any_split(
        frames in proptest::collection::vec(frame(), 0..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames {
            codec::encode_frame(f, &mut wire);
        }
        let wire = wire.freeze();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        let mut rd = BytesMut::new();
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts {
            rd.put_slice(&wire[at..c]);
            at = c;
            while let Some(f) = codec::try_decode_any(&mut rd, DEFAULT_MAX_FRAME).unwrap() {
                out.push(f);
            }
        }
        prop_assert!(rd.is_empty());
        prop_assert_eq!(out, frames);
    }
}

proptest! {
    // 10,000 cases of arbitrary bytes; none may panic any entry point of the decoder.
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let bytes = Bytes::from(data);
        let _ = codec::decode(bytes.clone());
        let _ = codec::decode_frame(bytes.clone());
        let _ = codec::decode_body(bytes.clone());
        let mut rd = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = codec::try_decode_any(&mut rd, 1024) {}
    }

    // 10,000 cases of one valid frame with a few bytes overwritten: reaches deeper
    // into the decoder than random bytes do.
    #[test]
    fn corrupted_frames_never_panic(
        m in message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut buf = BytesMut::new();
        codec::encode(&m, &mut buf);
        for (i, b) in edits {
            let at = i.index(buf.len());
            buf[at] = b;
        }
        let bytes = buf.freeze();
        let _ = codec::decode(bytes.clone());
        let mut rd = BytesMut::from(&bytes[..]);
        let _ = codec::try_decode_frame(&mut rd, DEFAULT_MAX_FRAME);
    }
}

#[test]
fn each_error_variant_is_reachable() {
    let m = Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::RequestVoteResponse(RequestVoteResponse {
            granted: true,
            pre_vote: false,
        }),
    };
    let mut good = BytesMut::new();
    codec::encode(&m, &mut good);

    let mut b = good.clone();
    b[4] = 9;
    assert_eq!(codec::decode(b.freeze()), Err(CodecError::BadVersion(9)));

    let mut b = good.clone();
    b[5] = 0xee;
    assert_eq!(
        codec::decode(b.freeze()),
        Err(CodecError::UnknownType(0xee))
    );

    assert!(matches!(
        codec::decode(good.clone().freeze().slice(..10)),
        Err(CodecError::Truncated { .. })
    ));

    let mut rd = BytesMut::new();
    rd.put_u32(DEFAULT_MAX_FRAME as u32 + 1);
    assert!(matches!(
        codec::try_decode_frame(&mut rd, DEFAULT_MAX_FRAME),
        Err(CodecError::FrameTooLarge { .. })
    ));

    let mut b = good.clone();
    b.put_u8(0);
    assert_eq!(codec::decode(b.freeze()), Err(CodecError::TrailingBytes(1)));

    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] = 7;
    assert!(matches!(
        codec::decode(b.freeze()),
        Err(CodecError::Invalid { value: 7, .. })
    ));

    let mut b = BytesMut::new();
    codec::encode_hello(4, &mut b);
    assert_eq!(codec::decode(b.freeze()), Err(CodecError::UnexpectedHello));
}
