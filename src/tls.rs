//! Cluster certificates and mutual TLS.
//!
//! One self-made certificate authority signs one certificate per node. A node's
//! certificate names it by the DNS subject alternative name [`server_name`]`(id)`
//! (`node-{id}.raftbench`) and is valid for both server and client authentication,
//! because over QUIC every node both dials and accepts. Servers require a client
//! certificate signed by the cluster CA, clients trust only the cluster CA: only
//! cluster members connect, and each side learns the other's node id from the
//! verified certificate ([`peer_id`]).
//!
//! Every config is built on the `ring` provider explicitly and allows TLS 1.3 only,
//! since QUIC requires it; no process-wide default provider is installed or needed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;

use crate::raft::types::NodeId;

/// ALPN protocol id both sides require, so that nothing else speaks to a raftbench port.
pub const ALPN: &[u8] = b"raftbench/1";

/// DNS suffix of node names in certificates.
const NAME_SUFFIX: &str = ".raftbench";
const NAME_PREFIX: &str = "node-";

/// Why a certificate or a TLS config could not be made, read or checked.
#[derive(Debug, Error)]
pub enum TlsError {
    /// rcgen failed to generate a key or a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected a certificate, a key or a config.
    #[error("TLS config error: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (e.g. no usable CA).
    #[error("client verifier error: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A certificate or key file does not exist (the certificates were never written here).
    #[error("{path} is missing")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file could not be parsed or held no object of the expected kind.
    #[error("{path}: bad PEM: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: rustls::pki_types::pem::Error,
    },
    /// The peer presented no certificate.
    #[error("peer presented no certificate")]
    NoCertificate,
    /// The peer certificate is not parseable X.509.
    #[error("unparseable certificate: {0}")]
    BadCertificate(String),
    /// The certificate names no node (`node-{id}.raftbench`), or more than one.
    #[error("certificate names {0} nodes, expected exactly one")]
    NodeName(usize),
}

/// A node's credentials: its certificate chain and key, and the cluster CA it trusts.
#[derive(Debug)]
pub struct NodeIdentity {
    /// The node these credentials belong to.
    pub id: NodeId,
    /// The node's certificate first, then any intermediates.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The node certificate's private key.
    pub key: PrivateKeyDer<'static>,
    /// The cluster CA: the only trust anchor for peers.
    pub ca_cert: CertificateDer<'static>,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        NodeIdentity {
            id: self.id,
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            ca_cert: self.ca_cert.clone(),
        }
    }
}

/// The DNS name that a node's certificate carries and that peers dial it by.
pub fn server_name(id: NodeId) -> String {
    format!("{NAME_PREFIX}{id}{NAME_SUFFIX}")
}

fn parse_server_name(name: &str) -> Option<NodeId> {
    let digits = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    // Reject "+5", "05" and the like so that one id has exactly one name.
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A freshly generated cluster CA, kept with its key so that it can sign node certificates.
struct ClusterCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl ClusterCa {
    fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "raftbench cluster CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ok(ClusterCa {
            issuer: CertifiedIssuer::self_signed(params, key)?,
        })
    }

    /// Signs a certificate for node `id`; returns it with its key pair.
    fn issue(&self, id: NodeId) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![server_name(id)])?;
        params
            .distinguished_name
            .push(DnType::CommonName, server_name(id));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert, key))
    }
}

fn pkcs8(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// Generates a new cluster CA and one identity per id; returns the CA certificate too.
pub fn generate_cluster(
    ids: &[NodeId],
) -> Result<(CertificateDer<'static>, Vec<NodeIdentity>), TlsError> {
    let ca = ClusterCa::generate()?;
    let ca_der = ca.issuer.der().clone();
    let nodes = ids
        .iter()
        .map(|&id| {
            let (cert, key) = ca.issue(id)?;
            Ok(NodeIdentity {
                id,
                cert_chain: vec![cert.der().clone()],
                key: pkcs8(&key),
                ca_cert: ca_der.clone(),
            })
        })
        .collect::<Result<Vec<_>, TlsError>>()?;
    Ok((ca_der, nodes))
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(io)?;
    // `mode` only applies when the file is created; an existing key file keeps its
    // permissions otherwise, so tighten them explicitly.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    f.write_all(contents.as_bytes()).map_err(io)
}

/// Path of the CA certificate inside a cluster directory.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// Path of node `id`'s certificate inside a cluster directory.
pub fn node_cert_path(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{id}.pem"))
}

/// Path of node `id`'s private key inside a cluster directory.
pub fn node_key_path(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{id}.key"))
}

/// The files of [`write_cluster`]`(dir, n)` that already exist, which it would overwrite.
///
/// Any of them existing means a cluster was issued here: a new CA would make every
/// running node's certificate, and every copy handed to other hosts, untrusted.
pub fn existing_cluster_files(dir: &Path, n: usize) -> Vec<PathBuf> {
    let mut files = vec![ca_cert_path(dir), ca_key_path(dir)];
    for id in 1..=n as NodeId {
        files.push(node_cert_path(dir, id));
        files.push(node_key_path(dir, id));
    }
    files.retain(|f| f.exists());
    files
}

/// Path of the CA's private key inside a cluster directory.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("ca.key")
}

/// Creates `dir` and writes a new cluster of nodes 1..=n into it as PEM files.
///
/// Files: `ca.pem`, `ca.key` (kept only to add nodes later), `node-{id}.pem` and
/// `node-{id}.key`. Key files are created with mode 0600 on Unix.
pub fn write_cluster(dir: &Path, n: usize) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let ca = ClusterCa::generate()?;
    write_file(&ca_cert_path(dir), &ca.issuer.pem(), false)?;
    write_file(&ca_key_path(dir), &ca.issuer.key().serialize_pem(), true)?;
    for id in 1..=n as NodeId {
        let (cert, key) = ca.issue(id)?;
        write_file(&node_cert_path(dir, id), &cert.pem(), false)?;
        write_file(&node_key_path(dir, id), &key.serialize_pem(), true)?;
    }
    Ok(())
}

/// Reads node `id`'s identity from a directory written by [`write_cluster`].
pub fn load_identity(dir: &Path, id: NodeId) -> Result<NodeIdentity, TlsError> {
    let pem_err = |path: &Path| {
        let path = path.to_owned();
        move |source| match source {
            rustls::pki_types::pem::Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
                TlsError::Missing { path }
            }
            rustls::pki_types::pem::Error::Io(source) => TlsError::Io { path, source },
            source => TlsError::Pem { path, source },
        }
    };
    let ca_path = ca_cert_path(dir);
    let ca_cert = CertificateDer::from_pem_file(&ca_path).map_err(pem_err(&ca_path))?;
    let cert_path = node_cert_path(dir, id);
    let cert_chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(pem_err(&cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(&cert_path))?;
    if cert_chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path,
            source: rustls::pki_types::pem::Error::NoItemsFound,
        });
    }
    let key_path = node_key_path(dir, id);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(pem_err(&key_path))?;
    Ok(NodeIdentity {
        id,
        cert_chain,
        key,
        ca_cert,
    })
}

fn roots(id: &NodeIdentity) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(id.ca_cert.clone())?;
    Ok(Arc::new(roots))
}

/// A TLS 1.3 server config that presents `id`'s certificate and requires a client
/// certificate signed by the cluster CA; ALPN [`ALPN`].
pub fn server_config(id: &NodeIdentity) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(id)?, provider.clone()).build()?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.cert_chain.clone(), id.key.clone_key())?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// A TLS 1.3 client config that trusts only the cluster CA and presents `id`'s
/// certificate; ALPN [`ALPN`]. Dial peer `p` with server name [`server_name`]`(p)`.
pub fn client_config(id: &NodeIdentity) -> Result<ClientConfig, TlsError> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(id)?)
        .with_client_auth_cert(id.cert_chain.clone(), id.key.clone_key())?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// The node id that a (verified) peer certificate chain names in its leaf's DNS SAN.
///
/// This does not verify the chain: call it on what the TLS handshake accepted.
pub fn peer_id(certs: &[CertificateDer<'_>]) -> Result<NodeId, TlsError> {
    use x509_parser::extensions::GeneralName;

    let leaf = certs.first().ok_or(TlsError::NoCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let ids: Vec<NodeId> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => parse_server_name(name),
            _ => None,
        })
        .collect();
    match ids.as_slice() {
        [id] => Ok(*id),
        other => Err(TlsError::NodeName(other.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(parse_server_name(&server_name(id)), Some(id));
        }
        for bad in [
            "node-.raftbench",
            "node-01.raftbench",
            "node-+1.raftbench",
            "node-1.example",
            "x-1.raftbench",
        ] {
            assert_eq!(parse_server_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn generated_certs_name_their_node_and_build_configs() {
        let (ca, nodes) = generate_cluster(&[1, 2, 7]).unwrap();
        for n in &nodes {
            assert_eq!(n.ca_cert, ca);
            assert_eq!(peer_id(&n.cert_chain).unwrap(), n.id);
            server_config(n).unwrap();
            client_config(n).unwrap();
        }
        // The CA certificate names no node.
        assert!(matches!(peer_id(&[ca]), Err(TlsError::NodeName(0))));
        assert!(matches!(peer_id(&[]), Err(TlsError::NoCertificate)));
        assert!(matches!(
            peer_id(&[CertificateDer::from(vec![1, 2, 3])]),
            Err(TlsError::BadCertificate(_))
        ));
    }

    #[test]
    fn write_cluster_and_load_identity_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certs");
        write_cluster(&path, 3).unwrap();
        let nodes: Vec<NodeIdentity> = (1..=3)
            .map(|id| load_identity(&path, id).unwrap())
            .collect();
        for (i, n) in nodes.iter().enumerate() {
            assert_eq!(n.id, i as NodeId + 1);
            assert_eq!(peer_id(&n.cert_chain).unwrap(), n.id);
            assert_eq!(n.ca_cert, nodes[0].ca_cert);
            server_config(n).unwrap();
            client_config(n).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["ca.key", "node-1.key", "node-3.key"] {
                let mode = fs::metadata(path.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        match load_identity(&path, 4) {
            Err(TlsError::Missing { path: p }) => assert_eq!(p, node_cert_path(&path, 4)),
            other => panic!("expected the missing node-4.pem, got {other:?}"),
        }
        assert_eq!(existing_cluster_files(&path, 3).len(), 8);
        fs::remove_file(node_key_path(&path, 2)).unwrap();
        fs::write(node_cert_path(&path, 1), "not PEM").unwrap();
        assert!(matches!(load_identity(&path, 1), Err(TlsError::Pem { .. })));
        assert!(matches!(
            load_identity(&path, 2),
            Err(TlsError::Missing { .. })
        ));
        let left = existing_cluster_files(&path, 3);
        assert_eq!(left.len(), 7);
        assert!(!left.contains(&node_key_path(&path, 2)));
        assert!(existing_cluster_files(&dir.path().join("none"), 3).is_empty());
    }
}
