//! How clients outside the process talk to a node: a small framed protocol over one
//! bidirectional QUIC stream with mutual TLS (or, labelled insecure, over plain TCP).
//!
//! Clients present a client certificate of the cluster CA (see [`crate::tls`]); a node
//! refuses any other during the handshake. Every frame is a u32 big-endian length, then a
//! version byte, a type byte, a u64 request id and the body. A client pipelines requests
//! on one connection; answers carry the id they answer, in whatever order they complete,
//! and a successful one carries the leader's [`Trace`]. A node bounds what each client can
//! make it hold ([`ClientLimits`]).
//!
//! Beyond requests, a node process answers the harness (version 3): its status with the
//! core's counters, its clock origin on `CLOCK_MONOTONIC`, its CPU time, RSS and transport
//! bytes; a four-timestamp clock exchange ([`ClockOffset`]); and a recording of its commit
//! and apply events and histograms that a client arms over a window of the node's clock
//! and takes back in chunks of at most [`CHUNK_BYTES`] ([`Recording`]). A listener without
//! a [`NodeProbe`] (an in-process node) refuses those with an error frame.

mod client;
mod clock;
mod connector;
mod listener;
mod pipeline;
mod recording;

pub use client::{RemoteClient, RemoteError};
pub use clock::{instant_to_monotonic_ns, monotonic_now_ns, ClockOffset, ClockSample};
pub use connector::{ClientTransport, ConnectError, Connector};
pub use listener::{ClientLimits, ClientListener, ListenerError, ListenerMonitor, ListenerStats};
pub use pipeline::{Answers, Pipeline, PipelineOptions, RemoteAnswer, SubmitError, Submitter};
pub use recording::{
    decode_recording, encode_recording, ArmSpec, EventRecord, NodeProbe, ObserverTee,
    ProcessRecorder, Recording, RecordingError, CHUNK_BYTES, DEFAULT_MAX_RECORDS,
    MAX_RECORDING_BYTES, RECORDING_TAIL,
};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::kv::Output;
use crate::raft::Time;
use crate::raft::{NodeId, Role, Stats};
use crate::server::{ClientError, NodeStatus, Reply, Trace};

/// Wire format version of the client protocol (2: replies may carry a [`Trace`]; 3: the
/// status carries counters, clock origin and process figures, and the clock exchange and
/// recording frames exist).
pub const VERSION: u8 = 3;
/// Largest frame either side accepts (a command or a value plus headers).
pub const MAX_FRAME: usize = 4 << 20;

const T_REQUEST: u8 = 1;
const T_REPLY: u8 = 2;
const T_STATUS_REQUEST: u8 = 3;
const T_STATUS: u8 = 4;
const T_CLOCK_REQUEST: u8 = 5;
const T_CLOCK: u8 = 6;
const T_ARM: u8 = 7;
const T_ARMED: u8 = 8;
const T_TAKE: u8 = 9;
const T_CHUNK: u8 = 10;
const T_ERROR: u8 = 11;

/// Bytes of a status frame's body: role, six indexes and ids, the core's twelve counters,
/// clock origin, CPU, RSS, transport bytes.
const STATUS_LEN: usize = 1 + 6 * 8 + 12 * 8 + 4 * 8;
/// Bytes of a recording chunk's header (total length, offset).
const CHUNK_HEADER: usize = 16;

const S_DONE: u8 = 0;
const S_NONE: u8 = 1;
const S_VALUE: u8 = 2;
const S_NOT_LEADER: u8 = 3;
const S_LOST: u8 = 4;
const S_SHUTTING_DOWN: u8 = 5;
const S_BAD_COMMAND: u8 = 6;
const S_OVERLOADED: u8 = 7;

/// Why a client-protocol frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The peer speaks another version.
    #[error("client protocol version {0}, expected {VERSION}")]
    Version(u8),
    /// The frame is shorter than its header or its fields.
    #[error("client frame truncated")]
    Truncated,
    /// The type or status byte is unknown.
    #[error("unknown client frame type or status {0}")]
    Unknown(u8),
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("client frame of {0} bytes exceeds the maximum")]
    TooLarge(usize),
}

/// Appends a request frame.
pub fn encode_request(id: u64, command: &[u8], buf: &mut BytesMut) {
    buf.put_u32((10 + command.len()) as u32);
    buf.put_u8(VERSION);
    buf.put_u8(T_REQUEST);
    buf.put_u64(id);
    buf.put_slice(command);
}

/// Appends a status request frame.
pub fn encode_status_request(id: u64, buf: &mut BytesMut) {
    buf.put_u32(10);
    buf.put_u8(VERSION);
    buf.put_u8(T_STATUS_REQUEST);
    buf.put_u64(id);
}

/// Appends a frame header for a body of `body` bytes.
fn put_header(ty: u8, id: u64, body: usize, buf: &mut BytesMut) {
    buf.put_u32((10 + body) as u32);
    buf.put_u8(VERSION);
    buf.put_u8(ty);
    buf.put_u64(id);
}

/// Appends a status frame.
pub fn encode_status(id: u64, st: &NodeStatus, buf: &mut BytesMut) {
    put_header(T_STATUS, id, STATUS_LEN, buf);
    buf.put_u8(match st.role {
        Role::Follower => 0,
        Role::Candidate => 1,
        Role::Leader => 2,
    });
    buf.put_u64(st.id);
    buf.put_u64(st.term);
    buf.put_u64(st.leader.unwrap_or(0));
    buf.put_u64(st.commit_index);
    buf.put_u64(st.applied_index);
    buf.put_u64(st.last_index);
    let s = &st.stats;
    for v in [
        s.appends,
        s.heartbeats,
        s.commit_notices,
        s.entries_sent,
        s.entry_bytes_sent,
        s.append_responses,
        s.vote_requests,
        s.vote_responses,
        s.elections,
        s.snapshot_chunks,
        s.snapshot_bytes_sent,
        s.snapshots_installed,
    ] {
        buf.put_u64(v);
    }
    buf.put_u64(st.clock_origin_ns);
    buf.put_u64(st.cpu_ns);
    buf.put_u64(st.rss_bytes);
    buf.put_u64(st.transport_bytes_sent);
}

/// Appends a clock request: the client's send time `t1` on its own clock.
pub fn encode_clock_request(id: u64, t1: u64, buf: &mut BytesMut) {
    put_header(T_CLOCK_REQUEST, id, 8, buf);
    buf.put_u64(t1);
}

/// Appends a clock answer: the client's `t1` echoed, the node's receive time `t2` and send
/// time `t3` on its `Time` clock.
pub fn encode_clock(id: u64, t1: u64, t2: u64, t3: u64, buf: &mut BytesMut) {
    put_header(T_CLOCK, id, 24, buf);
    buf.put_u64(t1);
    buf.put_u64(t2);
    buf.put_u64(t3);
}

/// Appends a request to arm a recording.
pub fn encode_arm(id: u64, spec: &ArmSpec, buf: &mut BytesMut) {
    put_header(T_ARM, id, 32, buf);
    buf.put_u64(spec.start.as_nanos());
    buf.put_u64(spec.end.as_nanos());
    buf.put_u64(spec.interval.as_nanos().min(u64::MAX as u128) as u64);
    buf.put_u64(spec.max_records);
}

/// Appends the answer that a recording is armed.
pub fn encode_armed(id: u64, buf: &mut BytesMut) {
    put_header(T_ARMED, id, 0, buf);
}

/// Appends a request to take the armed recording.
pub fn encode_take(id: u64, buf: &mut BytesMut) {
    put_header(T_TAKE, id, 0, buf);
}

/// Appends one chunk (at most [`CHUNK_BYTES`]) of an encoded recording of `total` bytes
/// that starts `offset` bytes into it.
pub fn encode_recording_chunk(id: u64, total: u64, offset: u64, data: &[u8], buf: &mut BytesMut) {
    put_header(T_CHUNK, id, CHUNK_HEADER + data.len(), buf);
    buf.put_u64(total);
    buf.put_u64(offset);
    buf.put_slice(data);
}

/// Appends a refusal of a clock, arm or take request, with the reason as text.
pub fn encode_error(id: u64, why: &str, buf: &mut BytesMut) {
    let why = &why.as_bytes()[..why.len().min(4096)];
    put_header(T_ERROR, id, why.len(), buf);
    buf.put_slice(why);
}

/// Appends a reply frame without a trace.
pub fn encode_reply(id: u64, reply: &Reply, buf: &mut BytesMut) {
    encode_answer(id, reply, None, buf)
}

/// Bytes of a reply's trace on the wire (flag byte excluded).
const TRACE_LEN: usize = 5 * 8;

/// Appends a reply frame, with the leader's trace when there is one.
pub fn encode_answer(id: u64, reply: &Reply, trace: Option<&Trace>, buf: &mut BytesMut) {
    let len_at = buf.len();
    buf.put_u32(0);
    buf.put_u8(VERSION);
    buf.put_u8(T_REPLY);
    buf.put_u64(id);
    match trace {
        Some(t) => {
            buf.put_u8(1);
            buf.put_u64(t.index);
            for at in [t.accepted, t.sent, t.committed, t.applied] {
                buf.put_u64(at.as_nanos());
            }
        }
        None => buf.put_u8(0),
    }
    let body = buf;
    match reply {
        Ok(Output::Done) => body.put_u8(S_DONE),
        Ok(Output::Value(None)) => body.put_u8(S_NONE),
        Ok(Output::Value(Some(v))) => {
            body.put_u8(S_VALUE);
            body.put_slice(v);
        }
        Err(ClientError::NotLeader { leader }) => {
            body.put_u8(S_NOT_LEADER);
            body.put_u64(leader.unwrap_or(0));
        }
        Err(ClientError::LeadershipLost) => body.put_u8(S_LOST),
        Err(ClientError::ShuttingDown) => body.put_u8(S_SHUTTING_DOWN),
        Err(ClientError::Overloaded) => body.put_u8(S_OVERLOADED),
        Err(ClientError::BadCommand(e)) => {
            body.put_u8(S_BAD_COMMAND);
            body.put_slice(e.to_string().as_bytes());
        }
    }
    let len = (body.len() - len_at - 4) as u32;
    body[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// One decoded frame.
#[derive(Debug, PartialEq)]
pub enum ClientFrame {
    /// A request: id and encoded command.
    Request(u64, Bytes),
    /// A reply: id, outcome (a bad command's reason as text), the leader's trace if any.
    Reply(u64, Result<Output, RemoteReplyError>, Option<Trace>),
    /// A request for the node's status.
    StatusRequest(u64),
    /// The node's status.
    Status(u64, NodeStatus),
    /// A clock exchange's request: id, the client's send time `t1`.
    ClockRequest(u64, u64),
    /// A clock exchange's answer: id, `t1` echoed, the node's receive and send times.
    Clock(u64, u64, u64, u64),
    /// A request to arm a recording.
    Arm(u64, ArmSpec),
    /// The recording is armed.
    Armed(u64),
    /// A request to take the armed recording.
    Take(u64),
    /// One chunk of an encoded recording: id, total length, offset, bytes.
    RecordingChunk(u64, u64, u64, Bytes),
    /// The node refused a clock, arm or take request: id, why.
    Error(u64, String),
}

/// A failure as it arrives over the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteReplyError {
    /// The node does not lead; it names the leader it knows (None: none).
    NotLeader(Option<NodeId>),
    /// Leadership was lost with the request in flight.
    LeadershipLost,
    /// The node is shutting down.
    ShuttingDown,
    /// The command was malformed.
    BadCommand(String),
    /// The leader refused the request: it holds as many uncommitted proposals as it may.
    Overloaded,
    /// Client side only, never sent by a node: no node could be reached (or none led)
    /// before the request's deadline; the last failure is attached.
    Unreachable(String),
}

impl std::fmt::Display for RemoteReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteReplyError::NotLeader(l) => write!(f, "not the leader; try {l:?}"),
            RemoteReplyError::LeadershipLost => {
                write!(f, "leadership lost while the request was in flight")
            }
            RemoteReplyError::ShuttingDown => write!(f, "the node is shutting down"),
            RemoteReplyError::Overloaded => {
                write!(
                    f,
                    "overloaded: the leader refused the request (retry later)"
                )
            }
            RemoteReplyError::BadCommand(why) => write!(f, "bad command: {why}"),
            RemoteReplyError::Unreachable(why) => write!(f, "unreachable: {why}"),
        }
    }
}

/// The frame length the 4-byte prefix at the front of `buf` announces, once it is there.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    Ok(Some(len))
}

/// Takes one complete frame off the front of `buf`, if there is one.
pub fn try_decode(buf: &mut BytesMut) -> Result<Option<ClientFrame>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    let mut f = buf.split_to(len).freeze();
    if f.remaining() < 10 {
        return Err(WireError::Truncated);
    }
    let version = f.get_u8();
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let ty = f.get_u8();
    let id = f.get_u64();
    match ty {
        T_REQUEST => Ok(Some(ClientFrame::Request(id, f))),
        T_REPLY => {
            if !f.has_remaining() {
                return Err(WireError::Truncated);
            }
            let trace = match f.get_u8() {
                0 => None,
                1 => {
                    if f.remaining() < TRACE_LEN {
                        return Err(WireError::Truncated);
                    }
                    Some(Trace {
                        index: f.get_u64(),
                        accepted: Time::from_nanos(f.get_u64()),
                        sent: Time::from_nanos(f.get_u64()),
                        committed: Time::from_nanos(f.get_u64()),
                        applied: Time::from_nanos(f.get_u64()),
                    })
                }
                b => return Err(WireError::Unknown(b)),
            };
            if !f.has_remaining() {
                return Err(WireError::Truncated);
            }
            let status = f.get_u8();
            let r = match status {
                S_DONE => Ok(Output::Done),
                S_NONE => Ok(Output::Value(None)),
                S_VALUE => Ok(Output::Value(Some(f))),
                S_NOT_LEADER => {
                    if f.remaining() < 8 {
                        return Err(WireError::Truncated);
                    }
                    let l = f.get_u64();
                    Err(RemoteReplyError::NotLeader((l != 0).then_some(l)))
                }
                S_LOST => Err(RemoteReplyError::LeadershipLost),
                S_SHUTTING_DOWN => Err(RemoteReplyError::ShuttingDown),
                S_OVERLOADED => Err(RemoteReplyError::Overloaded),
                S_BAD_COMMAND => Err(RemoteReplyError::BadCommand(
                    String::from_utf8_lossy(&f).into_owned(),
                )),
                s => return Err(WireError::Unknown(s)),
            };
            Ok(Some(ClientFrame::Reply(id, r, trace)))
        }
        T_STATUS_REQUEST => Ok(Some(ClientFrame::StatusRequest(id))),
        T_STATUS => {
            if f.remaining() < STATUS_LEN {
                return Err(WireError::Truncated);
            }
            let role = match f.get_u8() {
                0 => Role::Follower,
                1 => Role::Candidate,
                2 => Role::Leader,
                r => return Err(WireError::Unknown(r)),
            };
            let node = f.get_u64();
            let term = f.get_u64();
            let leader = f.get_u64();
            let commit_index = f.get_u64();
            let applied_index = f.get_u64();
            let last_index = f.get_u64();
            let stats = Stats {
                appends: f.get_u64(),
                heartbeats: f.get_u64(),
                commit_notices: f.get_u64(),
                entries_sent: f.get_u64(),
                entry_bytes_sent: f.get_u64(),
                append_responses: f.get_u64(),
                vote_requests: f.get_u64(),
                vote_responses: f.get_u64(),
                elections: f.get_u64(),
                snapshot_chunks: f.get_u64(),
                snapshot_bytes_sent: f.get_u64(),
                snapshots_installed: f.get_u64(),
            };
            let st = NodeStatus {
                id: node,
                role,
                term,
                leader: (leader != 0).then_some(leader),
                commit_index,
                applied_index,
                last_index,
                stats,
                clock_origin_ns: f.get_u64(),
                cpu_ns: f.get_u64(),
                rss_bytes: f.get_u64(),
                transport_bytes_sent: f.get_u64(),
            };
            Ok(Some(ClientFrame::Status(id, st)))
        }
        T_CLOCK_REQUEST => {
            if f.remaining() < 8 {
                return Err(WireError::Truncated);
            }
            Ok(Some(ClientFrame::ClockRequest(id, f.get_u64())))
        }
        T_CLOCK => {
            if f.remaining() < 24 {
                return Err(WireError::Truncated);
            }
            let (t1, t2, t3) = (f.get_u64(), f.get_u64(), f.get_u64());
            Ok(Some(ClientFrame::Clock(id, t1, t2, t3)))
        }
        T_ARM => {
            if f.remaining() < 32 {
                return Err(WireError::Truncated);
            }
            let spec = ArmSpec {
                start: Time::from_nanos(f.get_u64()),
                end: Time::from_nanos(f.get_u64()),
                interval: std::time::Duration::from_nanos(f.get_u64()),
                max_records: f.get_u64(),
            };
            Ok(Some(ClientFrame::Arm(id, spec)))
        }
        T_ARMED => Ok(Some(ClientFrame::Armed(id))),
        T_TAKE => Ok(Some(ClientFrame::Take(id))),
        T_CHUNK => {
            if f.remaining() < CHUNK_HEADER {
                return Err(WireError::Truncated);
            }
            let total = f.get_u64();
            let offset = f.get_u64();
            Ok(Some(ClientFrame::RecordingChunk(id, total, offset, f)))
        }
        T_ERROR => Ok(Some(ClientFrame::Error(
            id,
            String::from_utf8_lossy(&f).into_owned(),
        ))),
        t => Err(WireError::Unknown(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::CommandError;

    #[test]
    fn frames_round_trip() {
        let mut buf = BytesMut::new();
        encode_request(7, b"cmd", &mut buf);
        let replies: Vec<Reply> = vec![
            Ok(Output::Done),
            Ok(Output::Value(None)),
            Ok(Output::Value(Some(Bytes::from_static(b"v")))),
            Err(ClientError::NotLeader { leader: Some(3) }),
            Err(ClientError::NotLeader { leader: None }),
            Err(ClientError::LeadershipLost),
            Err(ClientError::ShuttingDown),
            Err(ClientError::Overloaded),
            Err(ClientError::BadCommand(CommandError::Truncated)),
        ];
        for (i, r) in replies.iter().enumerate() {
            encode_reply(i as u64, r, &mut buf);
        }
        assert_eq!(
            try_decode(&mut buf).unwrap(),
            Some(ClientFrame::Request(7, Bytes::from_static(b"cmd")))
        );
        let want = [
            Ok(Output::Done),
            Ok(Output::Value(None)),
            Ok(Output::Value(Some(Bytes::from_static(b"v")))),
            Err(RemoteReplyError::NotLeader(Some(3))),
            Err(RemoteReplyError::NotLeader(None)),
            Err(RemoteReplyError::LeadershipLost),
            Err(RemoteReplyError::ShuttingDown),
            Err(RemoteReplyError::Overloaded),
            Err(RemoteReplyError::BadCommand("command truncated".into())),
        ];
        for (i, w) in want.into_iter().enumerate() {
            assert_eq!(
                try_decode(&mut buf).unwrap(),
                Some(ClientFrame::Reply(i as u64, w, None))
            );
        }
        let t = Trace {
            index: 9,
            accepted: Time::from_nanos(1),
            sent: Time::from_nanos(2),
            committed: Time::from_nanos(3),
            applied: Time::from_nanos(u64::MAX),
        };
        encode_answer(77, &Ok(Output::Done), Some(&t), &mut buf);
        assert_eq!(
            try_decode(&mut buf).unwrap(),
            Some(ClientFrame::Reply(77, Ok(Output::Done), Some(t)))
        );
        assert_eq!(try_decode(&mut buf).unwrap(), None);
        let st = NodeStatus {
            id: 2,
            role: Role::Leader,
            term: 5,
            leader: Some(2),
            commit_index: 10,
            applied_index: 9,
            last_index: 11,
            stats: Stats {
                appends: 1,
                heartbeats: 2,
                commit_notices: 3,
                entries_sent: 4,
                entry_bytes_sent: 5,
                append_responses: 6,
                vote_requests: 7,
                vote_responses: 8,
                elections: 9,
                snapshot_chunks: 10,
                snapshot_bytes_sent: 11,
                snapshots_installed: u64::MAX,
            },
            clock_origin_ns: 123_456_789,
            cpu_ns: 42,
            rss_bytes: 7 << 20,
            transport_bytes_sent: 99,
        };
        encode_status_request(41, &mut buf);
        encode_status(42, &st, &mut buf);
        assert_eq!(
            try_decode(&mut buf).unwrap(),
            Some(ClientFrame::StatusRequest(41))
        );
        assert_eq!(
            try_decode(&mut buf).unwrap(),
            Some(ClientFrame::Status(42, st))
        );
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut b = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(try_decode(&mut b), Err(WireError::TooLarge(_))));
        let mut b = BytesMut::from(&[0, 0, 0, 2, 1, 1][..]);
        assert_eq!(try_decode(&mut b), Err(WireError::Truncated));
        let mut b = BytesMut::from(&[0, 0, 0, 10, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(try_decode(&mut b), Err(WireError::Version(9)));
        let mut b = BytesMut::from(&[0, 0, 0, 10, VERSION, 99, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(try_decode(&mut b), Err(WireError::Unknown(99)));
        let mut b = BytesMut::from(&[0, 0, 0][..]);
        assert_eq!(
            try_decode(&mut b),
            Ok(None),
            "a partial prefix waits for more"
        );
    }

    /// The frames of protocol version 3 come back as they went, each on its own.
    #[test]
    fn v3_frames_round_trip() {
        use std::time::Duration;
        let spec = ArmSpec {
            start: Time::from_nanos(5),
            end: Time::from_nanos(u64::MAX - 1),
            interval: Duration::from_millis(250),
            max_records: 10,
        };
        let data = Bytes::from(vec![7u8; CHUNK_BYTES]);
        let mut buf = BytesMut::new();
        encode_clock_request(1, 11, &mut buf);
        encode_clock(2, 11, 22, 33, &mut buf);
        encode_arm(3, &spec, &mut buf);
        encode_armed(4, &mut buf);
        encode_take(5, &mut buf);
        encode_recording_chunk(
            6,
            3 * CHUNK_BYTES as u64,
            CHUNK_BYTES as u64,
            &data,
            &mut buf,
        );
        encode_error(7, "not armed", &mut buf);
        let want = [
            ClientFrame::ClockRequest(1, 11),
            ClientFrame::Clock(2, 11, 22, 33),
            ClientFrame::Arm(3, spec),
            ClientFrame::Armed(4),
            ClientFrame::Take(5),
            ClientFrame::RecordingChunk(6, 3 * CHUNK_BYTES as u64, CHUNK_BYTES as u64, data),
            ClientFrame::Error(7, "not armed".into()),
        ];
        for w in want {
            assert_eq!(try_decode(&mut buf).unwrap(), Some(w));
        }
        assert!(buf.is_empty());
    }

    /// A frame whose length prefix stops short of its fixed fields is refused, never read
    /// past its end.
    #[test]
    fn truncated_v3_frames_are_errors() {
        type Encoder = Box<dyn Fn(&mut BytesMut)>;
        let encoders: Vec<Encoder> = vec![
            Box::new(|b| encode_status(1, &NodeStatus::default(), b)),
            Box::new(|b| encode_clock_request(1, 2, b)),
            Box::new(|b| encode_clock(1, 2, 3, 4, b)),
            Box::new(|b| {
                encode_arm(
                    1,
                    &ArmSpec {
                        start: Time::ZERO,
                        end: Time::from_nanos(1),
                        interval: std::time::Duration::from_secs(1),
                        max_records: 0,
                    },
                    b,
                )
            }),
            Box::new(|b| encode_recording_chunk(1, 0, 0, &[], b)),
        ];
        for (i, enc) in encoders.iter().enumerate() {
            let mut full = BytesMut::new();
            enc(&mut full);
            let body = full.len() - 4;
            for cut in 10..body {
                let mut b = BytesMut::new();
                b.put_u32(cut as u32);
                b.put_slice(&full[4..4 + cut]);
                assert_eq!(
                    try_decode(&mut b),
                    Err(WireError::Truncated),
                    "encoder {i} cut to {cut} of {body} bytes"
                );
            }
        }
    }
}
