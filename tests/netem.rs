//! Link emulation in real clusters: a large delay shows in commit latency, loss and
//! partitions are survived, and the delivery thread reports its own error.

use std::time::{Duration, Instant};

use raftbench::cluster::{ClusterSpec, LocalCluster};
use raftbench::netem::{Endpoint, LinkOverride, LinkSettings, NetworkConfig};
use raftbench::transport::TransportKind;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `delay_ms` one way on every link between nodes; the client's links to the nodes stay
/// undelayed, so a commit costs the leader's round trip to its fastest follower.
fn delayed_nodes(nodes: u64, delay_ms: f64) -> NetworkConfig {
    let mut net = NetworkConfig::uniform(LinkSettings {
        delay_ms,
        ..LinkSettings::default()
    });
    for n in 1..=nodes {
        for (from, to) in [
            (Endpoint::Client, Endpoint::Node(n)),
            (Endpoint::Node(n), Endpoint::Client),
        ] {
            let mut o = LinkOverride::new(from, to);
            o.delay_ms = Some(0.0);
            net.links.push(o);
        }
    }
    net
}

fn spec(transport: TransportKind, network: NetworkConfig) -> ClusterSpec {
    let mut spec = ClusterSpec::new(3, transport);
    spec.raft.election_timeout = Duration::from_millis(600);
    spec.raft.heartbeat_interval = Duration::from_millis(50);
    spec.network = Some(network);
    spec
}

/// Puts `n` keys one after another; returns each put's latency.
fn sequential_puts(cluster: &LocalCluster, n: usize) -> Vec<Duration> {
    runtime().block_on(async {
        let mut client = cluster.client();
        // The first put waits for an election; it is not measured.
        client.put("warm-up", "x").await.expect("warm-up put");
        let mut lat = Vec::new();
        for i in 0..n {
            let t = Instant::now();
            client
                .put(format!("k{i}"), "v")
                .await
                .unwrap_or_else(|e| panic!("put {i}: {e}"));
            lat.push(t.elapsed());
        }
        lat
    })
}

#[test]
fn quic_with_50ms_links_commits_in_one_round_trip() {
    let cluster = LocalCluster::start(spec(TransportKind::Quic, delayed_nodes(3, 50.0)))
        .expect("cluster starts");
    let mut lat = sequential_puts(&cluster, 7);
    lat.sort();
    eprintln!("commit latencies at 50 ms one way: {lat:?}");
    // The leader needs one follower's acknowledgement: 50 ms there and 50 ms back.
    assert!(
        lat[0] >= Duration::from_millis(100),
        "fastest commit {:?}",
        lat[0]
    );
    // A second round trip would make it 200 ms.
    assert!(
        lat[3] < Duration::from_millis(200),
        "median commit {:?}",
        lat[3]
    );
    let emu = cluster.emulator().expect("the cluster has an emulator");
    let errors = emu.take_delivery_error();
    assert!(!errors.is_empty(), "the delivery thread recorded its error");
    assert!(emu.stats().scheduled >= errors.len());
    // Taking resets.
    assert!(emu.take_delivery_error().len() < errors.len());
    cluster.shutdown();
}

#[test]
fn tcp_messages_are_delayed_and_cluster_commits() {
    let cluster = LocalCluster::start(spec(TransportKind::Tcp, delayed_nodes(3, 10.0)))
        .expect("cluster starts");
    let lat = sequential_puts(&cluster, 5);
    let fastest = *lat.iter().min().unwrap();
    assert!(
        fastest >= Duration::from_millis(20),
        "fastest commit {fastest:?}"
    );
    let emu = cluster.emulator().unwrap();
    assert!(!emu.take_delivery_error().is_empty());
    assert_eq!(emu.stats().shaper.dropped_loss, 0, "TCP is never lossy");
    cluster.shutdown();
}

#[test]
fn memory_cluster_survives_loss_and_a_partition() {
    let net = NetworkConfig::uniform(LinkSettings {
        delay_ms: 0.2,
        loss: 0.1,
        ..LinkSettings::default()
    });
    let mut spec = spec(TransportKind::Mem, net);
    spec.raft.election_timeout = Duration::from_millis(150);
    spec.raft.heartbeat_interval = Duration::from_millis(15);
    let cluster = LocalCluster::start(spec).expect("cluster starts");
    let emu = cluster.emulator().unwrap().clone();
    let lat = sequential_puts(&cluster, 50);
    assert_eq!(lat.len(), 50);
    let stats = emu.stats();
    assert!(stats.shaper.dropped_loss > 0, "{stats:?}");
    // Cut one node off: two of three still commit; then heal.
    let leader = runtime().block_on(async {
        let mut c = cluster.client();
        c.put("before", "x").await.unwrap();
        c.leader_guess()
    });
    let other = (1..=3).find(|&n| n != leader).unwrap();
    emu.partition(&[Endpoint::Node(other)]);
    runtime().block_on(async {
        let mut c = cluster.client();
        for i in 0..10 {
            c.put(format!("p{i}"), "y").await.unwrap();
        }
    });
    assert!(emu.stats().shaper.dropped_partition > 0);
    emu.heal();
    let stores = cluster.shutdown();
    let leader_store = &stores[leader as usize - 1];
    assert!(leader_store.get(b"p9").is_some());
}

#[test]
fn no_network_config_means_no_emulator() {
    let mut spec = ClusterSpec::new(3, TransportKind::Mem);
    spec.raft.election_timeout = Duration::from_millis(150);
    spec.raft.heartbeat_interval = Duration::from_millis(15);
    let cluster = LocalCluster::start(spec).expect("cluster starts");
    assert!(cluster.emulator().is_none());
    cluster.shutdown();
}

#[test]
fn invalid_network_config_fails_the_start_naming_the_key() {
    let mut net = NetworkConfig::default();
    let mut o = LinkOverride::new(Endpoint::Node(1), Endpoint::Node(7));
    o.delay_ms = Some(1.0);
    net.links.push(o);
    let err = LocalCluster::start(spec(TransportKind::Mem, net))
        .err()
        .expect("node 7 does not exist");
    assert!(
        err.to_string().contains("links[0].to names node 7"),
        "{err}"
    );
}
