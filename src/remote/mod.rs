//! How clients outside the process talk to a node: a small framed protocol over one
//! bidirectional QUIC stream with mutual TLS (or, labelled insecure, over plain TCP).
//!
//! Clients present a client certificate of the cluster CA (see [`crate::tls`]); a node
//! refuses any other during the handshake. Every frame is a u32 big-endian length, then a
//! version byte, a type byte, a u64 request id and the body. A client pipelines requests
//! on one connection; answers carry the id they answer, in whatever order they complete,
//! and a successful one carries the leader's [`Trace`]. A node bounds what each client can
//! make it hold ([`ClientLimits`]).

mod client;
mod connector;
mod listener;
mod pipeline;

pub use client::{RemoteClient, RemoteError};
pub use connector::{ClientTransport, ConnectError, Connector};
pub use listener::{ClientLimits, ClientListener, ListenerError, ListenerMonitor, ListenerStats};
pub use pipeline::{Answers, Pipeline, PipelineOptions, RemoteAnswer, SubmitError, Submitter};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::kv::Output;
use crate::raft::Time;
use crate::raft::{NodeId, Role};
use crate::server::{ClientError, NodeStatus, Reply, Trace};

/// Wire format version of the client protocol (2: replies may carry a [`Trace`]).
pub const VERSION: u8 = 2;
/// Largest frame either side accepts (a command or a value plus headers).
pub const MAX_FRAME: usize = 4 << 20;

const T_REQUEST: u8 = 1;
const T_REPLY: u8 = 2;
const T_STATUS_REQUEST: u8 = 3;
const T_STATUS: u8 = 4;

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

/// Appends a status frame.
pub fn encode_status(id: u64, st: &NodeStatus, buf: &mut BytesMut) {
    buf.put_u32(10 + 1 + 6 * 8);
    buf.put_u8(VERSION);
    buf.put_u8(T_STATUS);
    buf.put_u64(id);
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
            if f.remaining() < 1 + 6 * 8 {
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
            let st = NodeStatus {
                id: node,
                role,
                term,
                leader: (leader != 0).then_some(leader),
                commit_index: f.get_u64(),
                applied_index: f.get_u64(),
                last_index: f.get_u64(),
                stats: Default::default(),
            };
            Ok(Some(ClientFrame::Status(id, st)))
        }
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
            stats: Default::default(),
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
        let mut b = BytesMut::from(&[0, 0, 0, 10, VERSION, 9, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(try_decode(&mut b), Err(WireError::Unknown(9)));
        let mut b = BytesMut::from(&[0, 0, 0][..]);
        assert_eq!(
            try_decode(&mut b),
            Ok(None),
            "a partial prefix waits for more"
        );
    }
}
