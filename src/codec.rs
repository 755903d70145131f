//! The binary wire format of Raft messages.
//!
//! # Frames
//!
//! Every frame is a `u32` big-endian length prefix followed by that many body bytes.
//! The body starts with a version byte ([`VERSION`]) and a type byte; the fields follow
//! as fixed-width big-endian integers. Optional values carry a one-byte tag (0 absent,
//! 1 present) and booleans are one byte (0 or 1); any other tag value is
//! [`CodecError::Invalid`].
//!
//! | type | frame                   | fields after the type byte                              |
//! |------|-------------------------|---------------------------------------------------------|
//! | 0x01 | [`Frame::Hello`]        | node id `u64`                                           |
//! | 0x10 | AppendEntries           | header, prev index, prev term, commit, compact floor `u64`, kind `u8`, count `u32`, entries |
//! | 0x11 | AppendEntriesResponse   | header, prev index, match index `u64`, reject tag, [conflict term tag (+`u64`), conflict index, last index `u64`] |
//! | 0x12 | RequestVote             | header, last log index, last log term `u64`, pre-vote `u8` |
//! | 0x13 | RequestVoteResponse     | header, granted `u8`, pre-vote `u8`                     |
//! | 0x14 | InstallSnapshot         | header, snapshot index, snapshot term `u64`, voter count `u32`, voters `u64` each, offset `u64`, done `u8`, data length `u32`, data |
//! | 0x15 | InstallSnapshotResponse | header, snapshot index, snapshot term, next offset `u64`, match tag (+ match index `u64`) |
//!
//! The header of a Raft message is `from`, `to`, `term` (`u64` each). An entry is
//! term `u64`, index `u64`, kind `u8`, data length `u32`, then the data bytes.
//! A snapshot chunk's data is bounded by the sender's `snapshot_chunk_bytes` (at most
//! 8 MiB) and, like every frame, by the receiver's maximum frame size.
//!
//! # Handshake
//!
//! A connection (or, on QUIC, the first stream in each direction) starts with a
//! [`Frame::Hello`] naming the sender, so that the receiver knows which peer's
//! messages it carries before any Raft message arrives. It is a separate frame type
//! rather than a Raft message because it carries no term and is not for the core.
//!
//! # Copies
//!
//! Decoding from a [`Bytes`] frame never copies payloads: each entry's `data` is a
//! slice of the frame, so the entry keeps the receive buffer alive until it is
//! dropped. Encoding copies payloads once, into the caller's reusable [`BytesMut`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::raft::message::{
    AppendEntries, AppendEntriesResponse, AppendKind, InstallSnapshot, InstallSnapshotResponse,
    Message, MessageBody, RejectHint, RequestVote, RequestVoteResponse,
};
use crate::raft::types::{Entry, EntryKind, NodeId, SnapshotMeta};

/// The wire format version this code writes and accepts.
pub const VERSION: u8 = 1;

/// Default largest frame body accepted: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix in front of every frame body.
pub const LEN_PREFIX: usize = 4;

const T_HELLO: u8 = 0x01;
const T_APPEND: u8 = 0x10;
const T_APPEND_RESP: u8 = 0x11;
const T_VOTE: u8 = 0x12;
const T_VOTE_RESP: u8 = 0x13;
const T_SNAPSHOT: u8 = 0x14;
const T_SNAPSHOT_RESP: u8 = 0x15;

/// Version, type, from, to, term.
const MSG_HEADER: usize = 2 + 3 * 8;
/// Term, index, kind, data length.
const ENTRY_HEADER: usize = 8 + 8 + 1 + 4;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The version byte is not [`VERSION`]; the peer speaks another wire format.
    #[error("unsupported wire format version {0} (expected {VERSION})")]
    BadVersion(u8),
    /// The type byte names no known frame type.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// The frame ended before a field that it must contain.
    #[error("frame truncated: {field} needs {needed} more bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes that field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The length prefix announces a body larger than the configured maximum; rejected
    /// before anything is allocated for it.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// Announced body length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Bytes were left after the last field of the frame.
    #[error("{0} trailing bytes after the frame's last field")]
    TrailingBytes(usize),
    /// A tag, boolean or enum byte holds a value outside its range.
    #[error("invalid value {value} for {field}")]
    Invalid {
        /// The field holding the value.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A Hello frame arrived where a Raft message was expected.
    #[error("unexpected Hello frame")]
    UnexpectedHello,
}

/// Anything that travels on a connection: the handshake or a Raft message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// First frame on a connection: who is speaking.
    Hello(NodeId),
    /// A Raft message.
    Raft(Message),
}

/// Exact size in bytes of `msg`'s frame, length prefix included.
pub fn encoded_len(msg: &Message) -> usize {
    LEN_PREFIX + body_len(msg)
}

fn body_len(msg: &Message) -> usize {
    MSG_HEADER
        + match &msg.body {
            MessageBody::AppendEntries(ae) => {
                4 * 8
                    + 1
                    + 4
                    + ae.entries
                        .iter()
                        .map(|e| ENTRY_HEADER + e.data.len())
                        .sum::<usize>()
            }
            MessageBody::AppendEntriesResponse(r) => {
                2 * 8
                    + 1
                    + match &r.reject {
                        None => 0,
                        Some(h) => 1 + h.conflict_term.map_or(0, |_| 8) + 2 * 8,
                    }
            }
            MessageBody::RequestVote(_) => 2 * 8 + 1,
            MessageBody::RequestVoteResponse(_) => 2,
            MessageBody::InstallSnapshot(is) => {
                2 * 8 + 4 + 8 * is.meta.voters.len() + 8 + 1 + 4 + is.data.len()
            }
            MessageBody::InstallSnapshotResponse(r) => 3 * 8 + 1 + r.match_index.map_or(0, |_| 8),
        }
}

/// Appends `msg` as one frame to `buf`; `buf` can be reused across calls to batch frames.
///
/// # Panics
///
/// If the body exceeds `u32::MAX` bytes, which the core's batch byte limits rule out.
pub fn encode(msg: &Message, buf: &mut BytesMut) {
    let body = body_len(msg);
    let len = u32::try_from(body).expect("frame body exceeds u32::MAX bytes");
    buf.reserve(LEN_PREFIX + body);
    buf.put_u32(len);
    buf.put_u8(VERSION);
    let ty = match &msg.body {
        MessageBody::AppendEntries(_) => T_APPEND,
        MessageBody::AppendEntriesResponse(_) => T_APPEND_RESP,
        MessageBody::RequestVote(_) => T_VOTE,
        MessageBody::RequestVoteResponse(_) => T_VOTE_RESP,
        MessageBody::InstallSnapshot(_) => T_SNAPSHOT,
        MessageBody::InstallSnapshotResponse(_) => T_SNAPSHOT_RESP,
    };
    buf.put_u8(ty);
    buf.put_u64(msg.from);
    buf.put_u64(msg.to);
    buf.put_u64(msg.term);
    match &msg.body {
        MessageBody::AppendEntries(ae) => {
            buf.put_u64(ae.prev_log_index);
            buf.put_u64(ae.prev_log_term);
            buf.put_u64(ae.leader_commit);
            buf.put_u64(ae.compact_floor);
            buf.put_u8(match ae.kind {
                AppendKind::Entries => 0,
                AppendKind::Heartbeat => 1,
                AppendKind::CommitNotice => 2,
            });
            // Cannot overflow: each entry adds at least ENTRY_HEADER bytes to a body
            // already checked to fit in u32.
            buf.put_u32(ae.entries.len() as u32);
            for e in &ae.entries {
                buf.put_u64(e.term);
                buf.put_u64(e.index);
                buf.put_u8(match e.kind {
                    EntryKind::Normal => 0,
                    EntryKind::Noop => 1,
                });
                buf.put_u32(e.data.len() as u32);
                buf.put_slice(&e.data);
            }
        }
        MessageBody::AppendEntriesResponse(r) => {
            buf.put_u64(r.prev_log_index);
            buf.put_u64(r.match_index);
            match &r.reject {
                None => buf.put_u8(0),
                Some(h) => {
                    buf.put_u8(1);
                    match h.conflict_term {
                        None => buf.put_u8(0),
                        Some(t) => {
                            buf.put_u8(1);
                            buf.put_u64(t);
                        }
                    }
                    buf.put_u64(h.conflict_index);
                    buf.put_u64(h.last_index);
                }
            }
        }
        MessageBody::RequestVote(v) => {
            buf.put_u64(v.last_log_index);
            buf.put_u64(v.last_log_term);
            buf.put_u8(v.pre_vote as u8);
        }
        MessageBody::RequestVoteResponse(v) => {
            buf.put_u8(v.granted as u8);
            buf.put_u8(v.pre_vote as u8);
        }
        MessageBody::InstallSnapshot(is) => {
            buf.put_u64(is.meta.index);
            buf.put_u64(is.meta.term);
            // Both fit: the whole body was checked to fit in u32 above.
            buf.put_u32(is.meta.voters.len() as u32);
            for &v in &is.meta.voters {
                buf.put_u64(v);
            }
            buf.put_u64(is.offset);
            buf.put_u8(is.done as u8);
            buf.put_u32(is.data.len() as u32);
            buf.put_slice(&is.data);
        }
        MessageBody::InstallSnapshotResponse(r) => {
            buf.put_u64(r.snapshot_index);
            buf.put_u64(r.snapshot_term);
            buf.put_u64(r.next_offset);
            match r.match_index {
                None => buf.put_u8(0),
                Some(m) => {
                    buf.put_u8(1);
                    buf.put_u64(m);
                }
            }
        }
    }
}

/// Appends a Hello frame announcing `id` to `buf`.
pub fn encode_hello(id: NodeId, buf: &mut BytesMut) {
    buf.reserve(LEN_PREFIX + 2 + 8);
    buf.put_u32(2 + 8);
    buf.put_u8(VERSION);
    buf.put_u8(T_HELLO);
    buf.put_u64(id);
}

/// Appends any [`Frame`] to `buf`.
pub fn encode_frame(frame: &Frame, buf: &mut BytesMut) {
    match frame {
        Frame::Hello(id) => encode_hello(*id, buf),
        Frame::Raft(m) => encode(m, buf),
    }
}

/// Decodes one complete frame (length prefix included) holding a Raft message.
pub fn decode(frame: Bytes) -> Result<Message, CodecError> {
    match decode_frame(frame)? {
        Frame::Raft(m) => Ok(m),
        Frame::Hello(_) => Err(CodecError::UnexpectedHello),
    }
}

/// Decodes one complete frame (length prefix included) of any type.
pub fn decode_frame(mut frame: Bytes) -> Result<Frame, CodecError> {
    let len = Reader(&mut frame).u32("length prefix")? as usize;
    if len < frame.len() {
        return Err(CodecError::TrailingBytes(frame.len() - len));
    }
    if len > frame.len() {
        return Err(CodecError::Truncated {
            field: "frame body",
            needed: len,
            available: frame.len(),
        });
    }
    decode_body(frame)
}

/// Decodes a frame body (the bytes after the length prefix); all of it must be used.
pub fn decode_body(mut body: Bytes) -> Result<Frame, CodecError> {
    let mut r = Reader(&mut body);
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(CodecError::BadVersion(version));
    }
    let ty = r.u8("type")?;
    let frame = match ty {
        T_HELLO => Frame::Hello(r.u64("hello node id")?),
        T_APPEND | T_APPEND_RESP | T_VOTE | T_VOTE_RESP | T_SNAPSHOT | T_SNAPSHOT_RESP => {
            let from = r.u64("from")?;
            let to = r.u64("to")?;
            let term = r.u64("term")?;
            let body = match ty {
                T_APPEND => MessageBody::AppendEntries(r.append_entries()?),
                T_APPEND_RESP => MessageBody::AppendEntriesResponse(r.append_response()?),
                T_SNAPSHOT => MessageBody::InstallSnapshot(r.install_snapshot()?),
                T_SNAPSHOT_RESP => MessageBody::InstallSnapshotResponse(InstallSnapshotResponse {
                    snapshot_index: r.u64("snapshot_index")?,
                    snapshot_term: r.u64("snapshot_term")?,
                    next_offset: r.u64("next_offset")?,
                    match_index: if r.flag("match tag")? {
                        Some(r.u64("match_index")?)
                    } else {
                        None
                    },
                }),
                T_VOTE => MessageBody::RequestVote(RequestVote {
                    last_log_index: r.u64("last_log_index")?,
                    last_log_term: r.u64("last_log_term")?,
                    pre_vote: r.flag("pre_vote")?,
                }),
                _ => MessageBody::RequestVoteResponse(RequestVoteResponse {
                    granted: r.flag("granted")?,
                    pre_vote: r.flag("pre_vote")?,
                }),
            };
            Frame::Raft(Message {
                from,
                to,
                term,
                body,
            })
        }
        other => return Err(CodecError::UnknownType(other)),
    };
    if !body.is_empty() {
        return Err(CodecError::TrailingBytes(body.len()));
    }
    Ok(frame)
}

/// Splits the next complete frame off the front of `buf` and decodes it; `Ok(None)`
/// if `buf` does not yet hold a whole frame.
///
/// Reject a hostile length prefix before buffering: a prefix above `max_frame` is
/// [`CodecError::FrameTooLarge`] as soon as its four bytes are in. On error the
/// stream is out of sync and the connection should be closed.
pub fn try_decode_any(buf: &mut BytesMut, max_frame: usize) -> Result<Option<Frame>, CodecError> {
    if buf.len() < LEN_PREFIX {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max_frame {
        return Err(CodecError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    if buf.len() < LEN_PREFIX + len {
        // Reserve now so that the next read can complete the frame without regrowing
        // repeatedly; safe because `len` is bounded by `max_frame`.
        buf.reserve(LEN_PREFIX + len - buf.len());
        return Ok(None);
    }
    buf.advance(LEN_PREFIX);
    let body = buf.split_to(len).freeze();
    decode_body(body).map(Some)
}

/// Like [`try_decode_any`], for streams past their handshake: a Hello is an error.
pub fn try_decode_frame(
    buf: &mut BytesMut,
    max_frame: usize,
) -> Result<Option<Message>, CodecError> {
    match try_decode_any(buf, max_frame)? {
        None => Ok(None),
        Some(Frame::Raft(m)) => Ok(Some(m)),
        Some(Frame::Hello(_)) => Err(CodecError::UnexpectedHello),
    }
}

/// Bounds-checked big-endian reads from the front of a `Bytes`.
struct Reader<'a>(&'a mut Bytes);

impl Reader<'_> {
    fn need(&self, field: &'static str, n: usize) -> Result<(), CodecError> {
        if self.0.len() < n {
            Err(CodecError::Truncated {
                field,
                needed: n,
                available: self.0.len(),
            })
        } else {
            Ok(())
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, CodecError> {
        self.need(field, 1)?;
        Ok(self.0.get_u8())
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        self.need(field, 4)?;
        Ok(self.0.get_u32())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        self.need(field, 8)?;
        Ok(self.0.get_u64())
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, CodecError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(CodecError::Invalid {
                field,
                value: v.into(),
            }),
        }
    }

    fn append_entries(&mut self) -> Result<AppendEntries, CodecError> {
        let prev_log_index = self.u64("prev_log_index")?;
        let prev_log_term = self.u64("prev_log_term")?;
        let leader_commit = self.u64("leader_commit")?;
        let compact_floor = self.u64("compact_floor")?;
        let kind = match self.u8("append kind")? {
            0 => AppendKind::Entries,
            1 => AppendKind::Heartbeat,
            2 => AppendKind::CommitNotice,
            v => {
                return Err(CodecError::Invalid {
                    field: "append kind",
                    value: v.into(),
                })
            }
        };
        let count = self.u32("entry count")? as usize;
        // A hostile count must not size an allocation: every entry takes at least
        // ENTRY_HEADER bytes, so the remaining bytes bound how many can follow.
        if count > self.0.len() / ENTRY_HEADER {
            return Err(CodecError::Truncated {
                field: "entries",
                needed: count.saturating_mul(ENTRY_HEADER),
                available: self.0.len(),
            });
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let term = self.u64("entry term")?;
            let index = self.u64("entry index")?;
            let kind = match self.u8("entry kind")? {
                0 => EntryKind::Normal,
                1 => EntryKind::Noop,
                v => {
                    return Err(CodecError::Invalid {
                        field: "entry kind",
                        value: v.into(),
                    })
                }
            };
            let len = self.u32("entry data length")? as usize;
            self.need("entry data", len)?;
            let data = self.0.split_to(len);
            entries.push(Entry {
                term,
                index,
                kind,
                data,
            });
        }
        Ok(AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            compact_floor,
            kind,
        })
    }

    fn install_snapshot(&mut self) -> Result<InstallSnapshot, CodecError> {
        let index = self.u64("snapshot_index")?;
        let term = self.u64("snapshot_term")?;
        let count = self.u32("voter count")? as usize;
        // A hostile count must not size an allocation: each voter takes 8 bytes.
        if count > self.0.len() / 8 {
            return Err(CodecError::Truncated {
                field: "voters",
                needed: count.saturating_mul(8),
                available: self.0.len(),
            });
        }
        let voters = (0..count)
            .map(|_| self.u64("voter"))
            .collect::<Result<Vec<_>, _>>()?;
        let offset = self.u64("snapshot offset")?;
        let done = self.flag("snapshot done")?;
        let len = self.u32("snapshot data length")? as usize;
        self.need("snapshot data", len)?;
        let data = self.0.split_to(len);
        Ok(InstallSnapshot {
            meta: SnapshotMeta {
                index,
                term,
                voters,
            },
            offset,
            data,
            done,
        })
    }

    fn append_response(&mut self) -> Result<AppendEntriesResponse, CodecError> {
        let prev_log_index = self.u64("prev_log_index")?;
        let match_index = self.u64("match_index")?;
        let reject = if self.flag("reject tag")? {
            let conflict_term = if self.flag("conflict_term tag")? {
                Some(self.u64("conflict_term")?)
            } else {
                None
            };
            Some(RejectHint {
                conflict_term,
                conflict_index: self.u64("conflict_index")?,
                last_index: self.u64("last_index")?,
            })
        } else {
            None
        };
        Ok(AppendEntriesResponse {
            prev_log_index,
            match_index,
            reject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ae(n: usize) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 7,
            body: MessageBody::AppendEntries(AppendEntries {
                prev_log_index: 10,
                prev_log_term: 6,
                entries: (0..n)
                    .map(|i| Entry {
                        term: 7,
                        index: 11 + i as u64,
                        kind: EntryKind::Normal,
                        data: Bytes::from(vec![i as u8; 64]),
                    })
                    .collect(),
                leader_commit: 9,
                compact_floor: 3,
                kind: AppendKind::Entries,
            }),
        }
    }

    fn frame_of(m: &Message) -> Bytes {
        let mut b = BytesMut::new();
        encode(m, &mut b);
        b.freeze()
    }

    #[test]
    fn snapshot_messages_round_trip() {
        let chunk = Message {
            from: 1,
            to: 3,
            term: 9,
            body: MessageBody::InstallSnapshot(InstallSnapshot {
                meta: SnapshotMeta {
                    index: 100,
                    term: 8,
                    voters: vec![1, 2, 3],
                },
                offset: 4096,
                data: Bytes::from(vec![7u8; 300]),
                done: true,
            }),
        };
        for r in [None, Some(100)] {
            let resp = Message {
                from: 3,
                to: 1,
                term: 9,
                body: MessageBody::InstallSnapshotResponse(InstallSnapshotResponse {
                    snapshot_index: 100,
                    snapshot_term: 8,
                    next_offset: 4396,
                    match_index: r,
                }),
            };
            let f = frame_of(&resp);
            assert_eq!(f.len(), encoded_len(&resp));
            assert_eq!(decode(f).unwrap(), resp);
        }
        let f = frame_of(&chunk);
        assert_eq!(f.len(), encoded_len(&chunk));
        assert_eq!(decode(f.clone()).unwrap(), chunk);
        // Every truncation is an error, never a panic.
        for cut in 4..f.len() {
            let mut b = BytesMut::from(&f[..cut]);
            let len = (cut - LEN_PREFIX) as u32;
            b[0..4].copy_from_slice(&len.to_be_bytes());
            assert!(decode(b.freeze()).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn hostile_voter_count_is_refused_before_allocating() {
        let mut b = BytesMut::new();
        b.put_u32(0);
        b.put_u8(VERSION);
        b.put_u8(T_SNAPSHOT);
        for v in [1u64, 2, 3, 10, 2] {
            b.put_u64(v);
        }
        b.put_u32(u32::MAX);
        let len = (b.len() - LEN_PREFIX) as u32;
        b[0..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            decode(b.freeze()),
            Err(CodecError::Truncated {
                field: "voters",
                ..
            })
        ));
    }

    #[test]
    fn round_trip_and_len() {
        let m = ae(3);
        let f = frame_of(&m);
        assert_eq!(f.len(), encoded_len(&m));
        assert_eq!(decode(f).unwrap(), m);
    }

    #[test]
    fn entry_data_is_sliced_not_copied() {
        let f = frame_of(&ae(4));
        let range = f.as_ptr() as usize..f.as_ptr() as usize + f.len();
        let m = decode(f.clone()).unwrap();
        let MessageBody::AppendEntries(a) = m.body else {
            panic!("not an AppendEntries")
        };
        for e in &a.entries {
            assert!(range.contains(&(e.data.as_ptr() as usize)));
        }
    }

    #[test]
    fn streaming_slices_from_read_buffer() {
        let mut buf = BytesMut::new();
        encode(&ae(2), &mut buf);
        encode_hello(5, &mut buf);
        encode(&ae(0), &mut buf);
        // Feed byte by byte: only complete frames come out.
        let all = buf.split().freeze();
        let mut rd = BytesMut::new();
        let mut out = Vec::new();
        for b in all.iter() {
            rd.put_u8(*b);
            while let Some(f) = try_decode_any(&mut rd, DEFAULT_MAX_FRAME).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(
            out,
            vec![Frame::Raft(ae(2)), Frame::Hello(5), Frame::Raft(ae(0))]
        );
        assert!(rd.is_empty());

        let mut rd = BytesMut::from(&all[..]);
        let (base2, end2) = (rd.as_ptr() as usize, rd.as_ptr() as usize + rd.len());
        let Some(Message {
            body: MessageBody::AppendEntries(a),
            ..
        }) = try_decode_frame(&mut rd, DEFAULT_MAX_FRAME).unwrap()
        else {
            panic!("expected AppendEntries")
        };
        for e in &a.entries {
            assert!((base2..end2).contains(&(e.data.as_ptr() as usize)));
        }
        assert_eq!(
            try_decode_frame(&mut rd, DEFAULT_MAX_FRAME),
            Err(CodecError::UnexpectedHello)
        );
    }

    #[test]
    fn bad_version() {
        let mut b = BytesMut::from(&frame_of(&ae(0))[..]);
        b[4] = 2;
        assert_eq!(decode(b.freeze()), Err(CodecError::BadVersion(2)));
    }

    #[test]
    fn unknown_type() {
        let mut b = BytesMut::from(&frame_of(&ae(0))[..]);
        b[5] = 0x7f;
        assert_eq!(decode(b.freeze()), Err(CodecError::UnknownType(0x7f)));
    }

    #[test]
    fn truncated() {
        let f = frame_of(&ae(2));
        // Body shorter than the prefix announces.
        assert!(matches!(
            decode(f.slice(..f.len() - 1)),
            Err(CodecError::Truncated { .. })
        ));
        // Prefix consistent with the shorter body, but a field is cut off.
        let mut b = BytesMut::from(&f[..f.len() - 1]);
        let n = (b.len() - LEN_PREFIX) as u32;
        b[..4].copy_from_slice(&n.to_be_bytes());
        assert!(matches!(
            decode(b.freeze()),
            Err(CodecError::Truncated {
                field: "entry data",
                ..
            })
        ));
        // Not even a prefix.
        assert!(matches!(
            decode(Bytes::from_static(&[0, 0])),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn hostile_entry_count_is_truncated_not_allocated() {
        let mut b = BytesMut::from(&frame_of(&ae(0))[..]);
        let at = b.len() - 4;
        b[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(b.freeze()),
            Err(CodecError::Truncated {
                field: "entries",
                ..
            })
        ));
    }

    #[test]
    fn frame_too_large_before_buffering() {
        let mut rd = BytesMut::new();
        rd.put_u32(u32::MAX);
        assert_eq!(
            try_decode_frame(&mut rd, DEFAULT_MAX_FRAME),
            Err(CodecError::FrameTooLarge {
                len: u32::MAX as usize,
                max: DEFAULT_MAX_FRAME
            })
        );
        // Nothing was reserved for the hostile length.
        assert!(rd.capacity() < 1024);
        let mut rd = BytesMut::from(&frame_of(&ae(2))[..]);
        assert!(matches!(
            try_decode_frame(&mut rd, 16),
            Err(CodecError::FrameTooLarge { max: 16, .. })
        ));
    }

    #[test]
    fn trailing_bytes() {
        let mut b = BytesMut::from(&frame_of(&ae(0))[..]);
        b.put_u8(0);
        assert_eq!(
            decode(b.clone().freeze()),
            Err(CodecError::TrailingBytes(1))
        );
        // Prefix covering the extra byte: the body itself has a trailing byte.
        let n = (b.len() - LEN_PREFIX) as u32;
        b[..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(decode(b.freeze()), Err(CodecError::TrailingBytes(1)));
    }

    #[test]
    fn invalid_tags() {
        let vote = Message {
            from: 1,
            to: 2,
            term: 3,
            body: MessageBody::RequestVoteResponse(RequestVoteResponse {
                granted: true,
                pre_vote: false,
            }),
        };
        let mut b = BytesMut::from(&frame_of(&vote)[..]);
        let granted_at = b.len() - 2;
        b[granted_at] = 2;
        assert_eq!(
            decode(b.freeze()),
            Err(CodecError::Invalid {
                field: "granted",
                value: 2
            })
        );
        let mut b = BytesMut::from(&frame_of(&vote)[..]);
        let last = b.len() - 1;
        b[last] = 7;
        assert_eq!(
            decode(b.freeze()),
            Err(CodecError::Invalid {
                field: "pre_vote",
                value: 7
            })
        );
        let mut b = BytesMut::from(&frame_of(&ae(0))[..]);
        let kind_at = b.len() - 5;
        b[kind_at] = 9;
        assert_eq!(
            decode(b.freeze()),
            Err(CodecError::Invalid {
                field: "append kind",
                value: 9
            })
        );
    }

    #[test]
    fn hello() {
        let mut b = BytesMut::new();
        encode_frame(&Frame::Hello(42), &mut b);
        assert_eq!(decode_frame(b.clone().freeze()), Ok(Frame::Hello(42)));
        assert_eq!(decode(b.freeze()), Err(CodecError::UnexpectedHello));
    }
}
