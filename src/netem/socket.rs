//! The UDP socket below quinn, with every outbound datagram sent through the emulator.
//!
//! quinn hands a [`Transmit`] to [`AsyncUdpSocket::try_send`]; with segmentation offload
//! (GSO) one transmit carries several datagrams of `segment_size` bytes. Each datagram is
//! decided on its own (so one of a GSO batch can be lost), and sent on the real socket
//! alone, either at once (due now) or by the delivery thread (later). The receive side is
//! the real socket's: the emulation of a → b happens in a's socket.
//!
//! A failed hand-over (socket buffer full) drops the datagram, as a real link would, and
//! is counted ([`super::EmulatorStats::send_failed`]); `try_send` itself never reports
//! `WouldBlock` for an emulated destination, since the shaper has already decided.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Endpoint, LinkEmulator, Traffic};

/// A quinn socket whose outbound datagrams cross the emulated links.
pub struct EmulatedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    emulator: LinkEmulator,
    local: Endpoint,
    /// Peer addresses and who is there; datagrams to other addresses pass unemulated.
    peers: RwLock<HashMap<SocketAddr, Endpoint>>,
}

impl fmt::Debug for EmulatedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatedSocket")
            .field("inner", &self.inner)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// IPv4-mapped IPv6 addresses as plain IPv4, so that both spellings find the peer.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

impl EmulatedSocket {
    /// Wraps `inner` (from `Runtime::wrap_udp_socket`) as the socket of `local`.
    pub fn new(
        inner: Arc<dyn AsyncUdpSocket>,
        emulator: LinkEmulator,
        local: Endpoint,
    ) -> EmulatedSocket {
        EmulatedSocket {
            inner,
            emulator,
            local,
            peers: RwLock::default(),
        }
    }

    /// Tells the socket which endpoint listens at which address (adds to what it knew).
    pub fn set_peers(&self, peers: impl IntoIterator<Item = (SocketAddr, Endpoint)>) {
        let mut map = self.peers.write().unwrap_or_else(|e| e.into_inner());
        for (addr, end) in peers {
            map.insert(canonical(addr), end);
        }
    }

    fn peer(&self, addr: SocketAddr) -> Option<Endpoint> {
        self.peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&canonical(addr))
            .copied()
    }
}

/// One datagram to hand to the real socket later.
#[derive(Clone)]
struct Datagram {
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    contents: Vec<u8>,
}

fn send_one(
    sock: &dyn AsyncUdpSocket,
    failed: &AtomicU64,
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    contents: &[u8],
) {
    let t = Transmit {
        destination,
        ecn,
        contents,
        segment_size: None,
        src_ip,
    };
    if sock.try_send(&t).is_err() {
        failed.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncUdpSocket for EmulatedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let Some(to) = self.peer(transmit.destination) else {
            return self.inner.try_send(transmit);
        };
        let seg = transmit
            .segment_size
            .unwrap_or(transmit.contents.len())
            .max(1);
        for contents in transmit.contents.chunks(seg) {
            let d = self
                .emulator
                .decide(self.local, to, contents.len(), Traffic::Datagram);
            for a in d.arrivals() {
                if a.immediate {
                    self.emulator.count_immediate();
                    send_one(
                        self.inner.as_ref(),
                        self.emulator.send_failed(),
                        transmit.destination,
                        transmit.ecn,
                        transmit.src_ip,
                        contents,
                    );
                } else {
                    let dg = Datagram {
                        destination: transmit.destination,
                        ecn: transmit.ecn,
                        src_ip: transmit.src_ip,
                        contents: contents.to_vec(),
                    };
                    let sock = self.inner.clone();
                    // Not the emulator itself: a pending job must not keep it alive.
                    let failed = self.emulator.send_failed_counter();
                    self.emulator.schedule(
                        a.due,
                        Box::new(move || {
                            send_one(
                                sock.as_ref(),
                                &failed,
                                dg.destination,
                                dg.ecn,
                                dg.src_ip,
                                &dg.contents,
                            )
                        }),
                    );
                }
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netem::{LinkSettings, NetworkConfig};
    use std::sync::Mutex;

    /// A socket that records what it is asked to send.
    #[derive(Debug, Default)]
    struct Recorder {
        sent: Mutex<Vec<(SocketAddr, usize, Option<usize>)>>,
    }

    impl AsyncUdpSocket for Recorder {
        fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
            unreachable!("the tests never wait for writability")
        }
        fn try_send(&self, t: &Transmit) -> io::Result<()> {
            self.sent
                .lock()
                .unwrap()
                .push((t.destination, t.contents.len(), t.segment_size));
            Ok(())
        }
        fn poll_recv(
            &self,
            _: &mut Context,
            _: &mut [IoSliceMut<'_>],
            _: &mut [RecvMeta],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok("127.0.0.1:1".parse().unwrap())
        }
    }

    fn socket(net: LinkSettings) -> (Arc<Recorder>, EmulatedSocket, LinkEmulator) {
        let rec = Arc::new(Recorder::default());
        let emu = LinkEmulator::new(NetworkConfig::uniform(net), 3).unwrap();
        let s = EmulatedSocket::new(rec.clone(), emu.clone(), Endpoint::Node(1));
        s.set_peers([("127.0.0.1:2".parse().unwrap(), Endpoint::Node(2))]);
        (rec, s, emu)
    }

    fn transmit<'a>(to: &str, contents: &'a [u8], segment_size: Option<usize>) -> Transmit<'a> {
        Transmit {
            destination: to.parse().unwrap(),
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        }
    }

    #[test]
    fn gso_batches_are_split_into_single_datagrams() {
        let (rec, s, emu) = socket(LinkSettings::default());
        let data = [7u8; 250];
        s.try_send(&transmit("127.0.0.1:2", &data, Some(100)))
            .unwrap();
        let peer: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_eq!(
            *rec.sent.lock().unwrap(),
            vec![(peer, 100, None), (peer, 100, None), (peer, 50, None)]
        );
        assert_eq!(emu.stats().immediate, 3);
        // A mapped IPv6 spelling of the peer is the same peer.
        s.try_send(&transmit("[::ffff:127.0.0.1]:2", &data[..10], None))
            .unwrap();
        assert_eq!(emu.stats().shaper.offered, 4);
    }

    #[test]
    fn unknown_destinations_pass_untouched() {
        let (rec, s, emu) = socket(LinkSettings {
            loss: 1.0,
            ..LinkSettings::default()
        });
        let data = [1u8; 300];
        s.try_send(&transmit("127.0.0.1:9", &data, Some(100)))
            .unwrap();
        assert_eq!(
            rec.sent.lock().unwrap().len(),
            1,
            "one GSO transmit, as given"
        );
        assert_eq!(rec.sent.lock().unwrap()[0].2, Some(100));
        // The emulated peer loses everything.
        s.try_send(&transmit("127.0.0.1:2", &data, Some(100)))
            .unwrap();
        assert_eq!(rec.sent.lock().unwrap().len(), 1);
        assert_eq!(emu.stats().shaper.dropped_loss, 3);
    }

    #[test]
    fn delayed_datagrams_arrive_later_from_the_delivery_thread() {
        let (rec, s, emu) = socket(LinkSettings {
            delay_ms: 1.0,
            ..LinkSettings::default()
        });
        s.try_send(&transmit("127.0.0.1:2", &[0u8; 64], None))
            .unwrap();
        assert!(rec.sent.lock().unwrap().is_empty(), "held back");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while rec.sent.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(rec.sent.lock().unwrap().len(), 1);
        assert_eq!(emu.take_delivery_error().len(), 1);
    }
}
