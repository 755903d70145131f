//! The emulator's configuration: a `network` table for every link and a `links` list of
//! directed-link overrides, with the names scenario and cluster files use.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::raft::types::NodeId;

/// One end of an emulated link: a node, or the client (the harness's path to a node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// The harness's client (`"client"` in files).
    Client,
    /// A node, by id.
    Node(NodeId),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Client => f.write_str("client"),
            Endpoint::Node(id) => write!(f, "{id}"),
        }
    }
}

impl From<NodeId> for Endpoint {
    fn from(id: NodeId) -> Self {
        Endpoint::Node(id)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Endpoint::Client => s.serialize_str("client"),
            Endpoint::Node(id) => s.serialize_u64(*id),
        }
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Endpoint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a node id or \"client\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Endpoint, E> {
                Ok(Endpoint::Node(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Endpoint, E> {
                u64::try_from(v)
                    .map(Endpoint::Node)
                    .map_err(|_| E::custom(format!("node id {v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Endpoint, E> {
                match v {
                    "client" => Ok(Endpoint::Client),
                    _ => Err(E::custom(format!(
                        "`{v}` is neither a node id nor \"client\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The distribution of the jitter added to a link's delay (netem's `distribution`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterDistribution {
    /// Uniform in [-jitter, +jitter] (netem's default).
    #[default]
    Uniform,
    /// Normal with standard deviation `jitter`, cut at ±4 `jitter` like netem's table.
    Normal,
    /// 3/4 normal plus 1/4 standardized Pareto (shape 3), in units of `jitter`, cut at ±4.
    ParetoNormal,
}

/// Gilbert-Elliott bursty loss (netem's `loss gemodel p r 1-h 1-k`); off by default.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GilbertElliott {
    /// Probability per datagram of moving from the good to the bad state (default 0: off).
    pub p: f64,
    /// Probability per datagram of moving from the bad to the good state (default 1).
    pub r: f64,
    /// Loss probability in the good state (default 0).
    pub loss_good: f64,
    /// Loss probability in the bad state (default 1).
    pub loss_bad: f64,
}

impl Default for GilbertElliott {
    fn default() -> Self {
        GilbertElliott::OFF
    }
}

impl GilbertElliott {
    /// No bursty loss: the chain never leaves the good state, which loses nothing.
    pub const OFF: GilbertElliott = GilbertElliott {
        p: 0.0,
        r: 1.0,
        loss_good: 0.0,
        loss_bad: 1.0,
    };

    /// Whether the model can lose anything.
    pub fn is_on(&self) -> bool {
        self.loss_good > 0.0 || (self.p > 0.0 && self.loss_bad > 0.0)
    }

    /// The long-run loss rate: time in the bad state weighted by its loss, plus the good.
    pub fn mean_loss(&self) -> f64 {
        if self.p + self.r == 0.0 {
            return self.loss_good;
        }
        let bad = self.p / (self.p + self.r);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// Defines [`LinkSettings`] and [`LinkOverride`] from one list of knobs, so that the two
/// cannot drift apart (serde's `flatten` cannot be combined with `deny_unknown_fields`).
macro_rules! knobs {
    ($( $(#[doc = $doc:expr])* $name:ident : $ty:ty = $default:expr ;)*) => {
        /// How one directed link behaves; the `network` table and every `links` entry use
        /// these names. Missing keys take their defaults (no emulation).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct LinkSettings {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for LinkSettings {
            fn default() -> Self {
                LinkSettings { $( $name: $default, )* }
            }
        }

        /// One directed link (`from` → `to`) whose named knobs override `network`.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LinkOverride {
            /// The sending end: a node id or `"client"`.
            pub from: Endpoint,
            /// The receiving end: a node id or `"client"`.
            pub to: Endpoint,
            $(
                $(#[doc = $doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        impl LinkOverride {
            /// An override of the link `from` → `to` that changes nothing yet.
            pub fn new(from: Endpoint, to: Endpoint) -> LinkOverride {
                LinkOverride { from, to, $( $name: None, )* }
            }

            /// An override of `from` → `to` that sets every knob to `s`'s value.
            pub fn full(from: Endpoint, to: Endpoint, s: &LinkSettings) -> LinkOverride {
                LinkOverride { from, to, $( $name: Some(s.$name.clone()), )* }
            }

            /// Writes the knobs this override names over `s`.
            pub fn apply(&self, s: &mut LinkSettings) {
                $( if let Some(v) = &self.$name { s.$name = v.clone(); } )*
            }

            /// The knobs this override names, as settings over the defaults.
            pub fn settings(&self) -> LinkSettings {
                let mut s = LinkSettings::default();
                self.apply(&mut s);
                s
            }
        }
    };
}

knobs! {
    /// One-way delay in ms (default 0).
    delay_ms: f64 = 0.0;
    /// Jitter in ms added to the delay, drawn from `jitter_distribution` (default 0).
    jitter_ms: f64 = 0.0;
    /// `uniform` (default), `normal` or `pareto_normal`.
    jitter_distribution: JitterDistribution = JitterDistribution::Uniform;
    /// Independent loss probability per datagram, in [0,1] (default 0).
    loss: f64 = 0.0;
    /// Bursty Gilbert-Elliott loss, applied before `loss` (default off).
    gilbert_elliott: GilbertElliott = GilbertElliott::OFF;
    /// Probability that a datagram is delivered twice, in [0,1] (default 0).
    duplicate: f64 = 0.0;
    /// Keep datagrams in order even when jitter would reorder them (default false, as netem).
    keep_order: bool = false;
    /// Bandwidth in Mbit/s; datagrams are serialized one after another (0: unlimited, default).
    rate_mbit: f64 = 0.0;
    /// Datagrams the bandwidth queue holds before it drops new ones (default 1,000, netem's
    /// `limit`; 0: unbounded). Only with `rate_mbit`.
    queue_packets: u64 = 1_000;
    /// Bytes the bandwidth queue holds before it drops new ones (0: no byte limit, default).
    queue_bytes: u64 = 0;
}

/// Why a network configuration was refused; the message names the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetemError {
    /// A value is out of range or contradicts another.
    #[error("{key} {reason}")]
    Invalid {
        /// The key at fault, e.g. `links[1].loss`.
        key: String,
        /// Why it cannot work, e.g. `must be in [0,1]`.
        reason: String,
    },
}

fn invalid(key: String, reason: impl Into<String>) -> NetemError {
    NetemError::Invalid {
        key,
        reason: reason.into(),
    }
}

fn check_ms(key: String, v: f64) -> Result<(), NetemError> {
    // An hour is far beyond any link and keeps nanosecond arithmetic in range.
    if !(v.is_finite() && (0.0..=3_600_000.0).contains(&v)) {
        return Err(invalid(key, "must be a number of ms in [0, 3600000]"));
    }
    Ok(())
}

fn check_prob(key: String, v: f64) -> Result<(), NetemError> {
    if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
        return Err(invalid(key, "must be in [0,1]"));
    }
    Ok(())
}

/// Checks one set of knobs; `prefix` is how the file names their table (`network`, `links[1]`).
macro_rules! check_knobs {
    ($prefix:expr, $delay:expr, $jitter:expr, $loss:expr, $ge:expr, $dup:expr, $rate:expr) => {{
        let k = |name: &str| format!("{}.{name}", $prefix);
        if let Some(v) = $delay {
            check_ms(k("delay_ms"), v)?;
        }
        if let Some(v) = $jitter {
            check_ms(k("jitter_ms"), v)?;
        }
        if let Some(v) = $loss {
            check_prob(k("loss"), v)?;
        }
        if let Some(ge) = $ge {
            check_prob(k("gilbert_elliott.p"), ge.p)?;
            check_prob(k("gilbert_elliott.r"), ge.r)?;
            check_prob(k("gilbert_elliott.loss_good"), ge.loss_good)?;
            check_prob(k("gilbert_elliott.loss_bad"), ge.loss_bad)?;
        }
        if let Some(v) = $dup {
            check_prob(k("duplicate"), v)?;
        }
        if let Some(v) = $rate {
            let v: f64 = v;
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(k("rate_mbit"), "must be a finite number >= 0"));
            }
        }
    }};
}

impl LinkSettings {
    /// Whether these settings change anything about a link (ordering and queue limits alone
    /// do not: without delay, jitter or a rate, nothing waits).
    pub fn is_active(&self) -> bool {
        self.delay_ms > 0.0
            || self.jitter_ms > 0.0
            || self.loss > 0.0
            || self.gilbert_elliott.is_on()
            || self.duplicate > 0.0
            || self.rate_mbit > 0.0
    }

    /// Checks ranges; `prefix` names the table in errors (e.g. `network`).
    pub fn validate(&self, prefix: &str) -> Result<(), NetemError> {
        check_knobs!(
            prefix,
            Some(self.delay_ms),
            Some(self.jitter_ms),
            Some(self.loss),
            Some(&self.gilbert_elliott),
            Some(self.duplicate),
            Some(self.rate_mbit)
        );
        Ok(())
    }

    /// The one-way delay.
    pub fn delay(&self) -> Duration {
        ms_to_duration(self.delay_ms)
    }
}

/// Milliseconds as a Duration, rounded to the nanosecond (so 5.0 is exactly 5 ms).
pub(crate) fn ms_to_duration(ms: f64) -> Duration {
    Duration::from_nanos((ms * 1e6).round().max(0.0) as u64)
}

/// Every link's emulation: `network` for all links, `links` overriding single directed links.
///
/// The default emulates nothing ([`NetworkConfig::is_active`] is false).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Settings of every link not overridden.
    pub network: LinkSettings,
    /// Per directed link overrides; when several name the same link, later ones win.
    pub links: Vec<LinkOverride>,
}

impl NetworkConfig {
    /// The same settings on every link.
    pub fn uniform(network: LinkSettings) -> NetworkConfig {
        NetworkConfig {
            network,
            links: Vec::new(),
        }
    }

    /// The settings of the directed link `from` → `to`: `network`, then each matching
    /// override in order.
    pub fn settings_for(&self, from: Endpoint, to: Endpoint) -> LinkSettings {
        let mut s = self.network.clone();
        for o in self.links.iter().filter(|o| o.from == from && o.to == to) {
            o.apply(&mut s);
        }
        s
    }

    /// Whether any link is emulated at all.
    pub fn is_active(&self) -> bool {
        self.network.is_active()
            || self
                .links
                .iter()
                .any(|o| self.settings_for(o.from, o.to).is_active())
    }

    /// Checks every value; errors name the key (`network.loss`, `links[1].loss`).
    pub fn validate(&self) -> Result<(), NetemError> {
        self.network.validate("network")?;
        for (i, o) in self.links.iter().enumerate() {
            let prefix = format!("links[{i}]");
            check_knobs!(
                prefix,
                o.delay_ms,
                o.jitter_ms,
                o.loss,
                o.gilbert_elliott.as_ref(),
                o.duplicate,
                o.rate_mbit
            );
            if o.from == o.to {
                return Err(invalid(
                    format!("{prefix}.to"),
                    format!("is the same endpoint as from ({})", o.from),
                ));
            }
        }
        Ok(())
    }

    /// Checks that every link names node ids in `1..=nodes` (or the client).
    pub fn check_nodes(&self, nodes: usize) -> Result<(), NetemError> {
        for (i, o) in self.links.iter().enumerate() {
            for (end, which) in [(o.from, "from"), (o.to, "to")] {
                if let Endpoint::Node(id) = end {
                    if id == 0 || id > nodes as NodeId {
                        return Err(invalid(
                            format!("links[{i}].{which}"),
                            format!("names node {id}, but the cluster has nodes 1..={nodes}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NetworkConfig, String> {
        toml::from_str::<NetworkConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_network_and_links_with_client() {
        let c = parse(
            r#"
            [network]
            delay_ms = 0.1
            jitter_ms = 0.02
            jitter_distribution = "pareto_normal"
            gilbert_elliott = { p = 0.01, r = 0.3 }
            [[links]]
            from = 1
            to = 3
            delay_ms = 20.0
            [[links]]
            from = "client"
            to = 1
            loss = 0.5
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert!(c.is_active());
        let s = c.settings_for(Endpoint::Node(1), Endpoint::Node(3));
        assert_eq!(s.delay_ms, 20.0);
        assert_eq!(s.jitter_ms, 0.02);
        assert_eq!(s.jitter_distribution, JitterDistribution::ParetoNormal);
        assert_eq!(s.gilbert_elliott.loss_bad, 1.0);
        assert_eq!(s.gilbert_elliott.r, 0.3);
        // The reverse direction is not overridden.
        assert_eq!(c.settings_for(3.into(), 1.into()).delay_ms, 0.1);
        assert_eq!(c.settings_for(Endpoint::Client, 1.into()).loss, 0.5);
        assert_eq!(c.settings_for(Endpoint::Client, 1.into()).delay_ms, 0.1);
    }

    #[test]
    fn later_overrides_win() {
        let mut c = NetworkConfig::default();
        let mut a = LinkOverride::new(1.into(), 2.into());
        a.delay_ms = Some(1.0);
        a.loss = Some(0.1);
        let mut b = LinkOverride::new(1.into(), 2.into());
        b.delay_ms = Some(2.0);
        c.links = vec![a, b];
        let s = c.settings_for(1.into(), 2.into());
        assert_eq!((s.delay_ms, s.loss), (2.0, 0.1));
    }

    #[test]
    fn default_is_inactive_and_ordering_alone_is_inactive() {
        assert!(!NetworkConfig::default().is_active());
        let c = parse("[network]\nkeep_order = true\nqueue_packets = 5").unwrap();
        assert!(!c.is_active());
        let c = parse("[[links]]\nfrom = 2\nto = 1\ndelay_ms = 0.5").unwrap();
        assert!(c.is_active());
    }

    #[test]
    fn unknown_keys_and_bad_endpoints_are_refused() {
        let e = parse("[network]\ndelay = 5").unwrap_err();
        assert!(e.contains("delay"), "{e}");
        let e = parse("[[links]]\nfrom = 1\nto = 2\nlos = 0.1").unwrap_err();
        assert!(e.contains("los"), "{e}");
        let e = parse("[[links]]\nfrom = \"server\"\nto = 2").unwrap_err();
        assert!(e.contains("neither a node id"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let c = parse("[[links]]\nfrom = 1\nto = 2\n[[links]]\nfrom = 2\nto = 1\nloss = 1.5\n")
            .unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "links[1].loss must be in [0,1]"
        );
        let c = parse("[network]\njitter_ms = -1.0").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("network.jitter_ms "));
        let c = parse("[network]\ngilbert_elliott = { p = 2.0, r = 0.1 }").unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "network.gilbert_elliott.p must be in [0,1]"
        );
        let c = parse("[[links]]\nfrom = 1\nto = 1").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("links[0].to "));
        let c = parse("[[links]]\nfrom = 1\nto = 4").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.check_nodes(3).unwrap_err().to_string(),
            "links[0].to names node 4, but the cluster has nodes 1..=3"
        );
    }

    #[test]
    fn override_round_trips_and_full_covers_every_knob() {
        let s = LinkSettings {
            delay_ms: 3.0,
            keep_order: true,
            rate_mbit: 10.0,
            ..LinkSettings::default()
        };
        let o = LinkOverride::full(Endpoint::Client, 2.into(), &s);
        assert_eq!(o.settings(), s);
        let text = toml::to_string(&NetworkConfig {
            network: LinkSettings::default(),
            links: vec![o.clone()],
        })
        .unwrap();
        let back: NetworkConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.links, vec![o]);
        assert_eq!(ms_to_duration(5.0), Duration::from_millis(5));
        assert_eq!(ms_to_duration(0.1), Duration::from_micros(100));
    }
}
