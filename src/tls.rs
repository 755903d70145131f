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
//!
//! The same CA signs client certificates ([`issue_client`], `client.pem` of
//! [`write_cluster`]): they name `client.raftbench` or `client-{name}.raftbench` and are
//! valid for client authentication only. A certificate's role is in its name
//! ([`cert_role`]), and each endpoint checks it during the handshake: a node's peer port
//! accepts only node certificates, its client port only client certificates, so that a
//! client certificate never acts as a node and a node's never as a client.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
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
/// ALPN protocol id of the client protocol (a node's client port), distinct from the peers'.
pub const CLIENT_ALPN: &[u8] = b"raftbench-client/1";

/// DNS suffix of node names in certificates.
const NAME_SUFFIX: &str = ".raftbench";
const NAME_PREFIX: &str = "node-";
/// The DNS name of the default client certificate.
const CLIENT_NAME: &str = "client";
/// Longest client name in `client-{name}.raftbench`.
const MAX_CLIENT_NAME: usize = 40;

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
    /// The certificate names neither exactly one node nor exactly one client.
    #[error(
        "certificate names {nodes} nodes and {clients} clients, expected exactly one of either"
    )]
    Role {
        /// Node names found.
        nodes: usize,
        /// Client names found.
        clients: usize,
    },
    /// A client name is not 1 to 40 characters of `a-z`, `0-9` and `-`.
    #[error("client name {0:?} must be 1 to 40 characters of a-z, 0-9 and -")]
    ClientName(String),
    /// A certificate directory holds no CA key to sign a new certificate with.
    #[error(
        "{path} is missing: a new client certificate is signed by the CA (ca.pem and ca.key) \
         that `raftbench certs --nodes N` wrote into this directory"
    )]
    NoCaKey {
        /// The missing key file.
        path: PathBuf,
    },
}

/// What a cluster certificate is for, as its DNS subject alternative name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertRole {
    /// A node: `node-{id}.raftbench`.
    Node(NodeId),
    /// A client: `client.raftbench` (name `""`) or `client-{name}.raftbench`.
    Client(String),
}

/// A client's credentials: its certificate chain and key, and the cluster CA it trusts.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The client's name (empty for the default `client.raftbench`).
    pub name: String,
    /// The client's certificate first, then any intermediates.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    pub key: PrivateKeyDer<'static>,
    /// The cluster CA: the only trust anchor for nodes.
    pub ca_cert: CertificateDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            name: self.name.clone(),
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            ca_cert: self.ca_cert.clone(),
        }
    }
}

/// The DNS name a client certificate carries: `client.raftbench`, or
/// `client-{name}.raftbench` for a named one.
pub fn client_cert_name(name: &str) -> String {
    if name.is_empty() {
        format!("{CLIENT_NAME}{NAME_SUFFIX}")
    } else {
        format!("{CLIENT_NAME}-{name}{NAME_SUFFIX}")
    }
}

fn check_client_name(name: &str) -> Result<(), TlsError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CLIENT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(TlsError::ClientName(name.to_owned()))
    }
}

fn parse_client_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(NAME_SUFFIX)?;
    if stem == CLIENT_NAME {
        return Some(String::new());
    }
    let n = stem.strip_prefix(CLIENT_NAME)?.strip_prefix('-')?;
    check_client_name(n).ok().map(|_| n.to_owned())
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

/// The cluster CA with its key, so that it can sign node and client certificates.
struct ClusterCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
}

impl ClusterCa {
    /// The CA's parameters: the same for a new CA and for one read back with its key, so
    /// that what it signs names the same issuer and key identifier.
    fn params() -> Result<CertificateParams, TlsError> {
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
        Ok(params)
    }

    fn generate() -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let cert = Self::params()?.self_signed(&key)?;
        Ok(ClusterCa {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(Self::params()?, key),
        })
    }

    /// The CA of a directory written by [`write_cluster`], read back with its key.
    fn load(dir: &Path) -> Result<Self, TlsError> {
        let read = |path: PathBuf| {
            fs::read_to_string(&path).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    TlsError::NoCaKey { path }
                } else {
                    TlsError::Io { path, source }
                }
            })
        };
        let cert = read(ca_cert_path(dir))?;
        let key = KeyPair::from_pem(&read(ca_key_path(dir))?)?;
        let der =
            CertificateDer::from_pem_slice(cert.as_bytes()).map_err(|source| TlsError::Pem {
                path: ca_cert_path(dir),
                source,
            })?;
        Ok(ClusterCa {
            issuer: Issuer::new(Self::params()?, key),
            der,
            pem: cert,
        })
    }

    /// Signs a client certificate named `name` (see [`client_cert_name`]).
    fn issue_client(&self, name: &str) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
        let key = KeyPair::generate()?;
        let dns = client_cert_name(name);
        let mut params = CertificateParams::new(vec![dns.clone()])?;
        params.distinguished_name.push(DnType::CommonName, dns);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Client authentication only: the certificate cannot serve a node's port.
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert, key))
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
    let ca_der = ca.der.clone();
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

/// Like [`generate_cluster`], with a client certificate from the same CA (name `client`).
pub fn generate_cluster_with_client(
    ids: &[NodeId],
) -> Result<(Vec<NodeIdentity>, ClientIdentity), TlsError> {
    let ca = ClusterCa::generate()?;
    let nodes = ids
        .iter()
        .map(|&id| {
            let (cert, key) = ca.issue(id)?;
            Ok(NodeIdentity {
                id,
                cert_chain: vec![cert.der().clone()],
                key: pkcs8(&key),
                ca_cert: ca.der.clone(),
            })
        })
        .collect::<Result<Vec<_>, TlsError>>()?;
    let (cert, key) = ca.issue_client("")?;
    let client = ClientIdentity {
        name: String::new(),
        cert_chain: vec![cert.der().clone()],
        key: pkcs8(&key),
        ca_cert: ca.der.clone(),
    };
    Ok((nodes, client))
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
    let mut files = vec![
        ca_cert_path(dir),
        ca_key_path(dir),
        client_cert_path(dir, ""),
        client_key_path(dir, ""),
    ];
    for id in 1..=n as NodeId {
        files.push(node_cert_path(dir, id));
        files.push(node_key_path(dir, id));
    }
    files.retain(|f| f.exists());
    files
}

/// Path of a client certificate inside a cluster directory: `client.pem` for the default
/// (empty) name, `client-{name}.pem` otherwise.
pub fn client_cert_path(dir: &Path, name: &str) -> PathBuf {
    if name.is_empty() {
        dir.join("client.pem")
    } else {
        dir.join(format!("client-{name}.pem"))
    }
}

/// Path of a client certificate's private key inside a cluster directory.
pub fn client_key_path(dir: &Path, name: &str) -> PathBuf {
    if name.is_empty() {
        dir.join("client.key")
    } else {
        dir.join(format!("client-{name}.key"))
    }
}

/// Path of the CA's private key inside a cluster directory.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("ca.key")
}

/// Creates `dir` and writes a new cluster of nodes 1..=n into it as PEM files.
///
/// Files: `ca.pem`, `ca.key` (kept to sign more client certificates later, see
/// [`issue_client`]), `node-{id}.pem` and `node-{id}.key`, and the default client
/// certificate `client.pem` and `client.key`. Key files are created with mode 0600 on Unix.
pub fn write_cluster(dir: &Path, n: usize) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let ca = ClusterCa::generate()?;
    write_file(&ca_cert_path(dir), &ca.pem, false)?;
    write_file(&ca_key_path(dir), &ca.issuer.key().serialize_pem(), true)?;
    for id in 1..=n as NodeId {
        let (cert, key) = ca.issue(id)?;
        write_file(&node_cert_path(dir, id), &cert.pem(), false)?;
        write_file(&node_key_path(dir, id), &key.serialize_pem(), true)?;
    }
    let (cert, key) = ca.issue_client("")?;
    write_file(&client_cert_path(dir, ""), &cert.pem(), false)?;
    write_file(&client_key_path(dir, ""), &key.serialize_pem(), true)?;
    Ok(())
}

/// Signs a client certificate named `name` with the CA of `dir` (written by
/// [`write_cluster`], `ca.key` included) and writes `client-{name}.pem` and `.key` there;
/// returns the certificate's path. For a load generator on another host: copy `ca.pem`
/// and the two new files to it.
pub fn issue_client(dir: &Path, name: &str) -> Result<PathBuf, TlsError> {
    check_client_name(name)?;
    let ca = ClusterCa::load(dir)?;
    let (cert, key) = ca.issue_client(name)?;
    let path = client_cert_path(dir, name);
    write_file(&path, &cert.pem(), false)?;
    write_file(&client_key_path(dir, name), &key.serialize_pem(), true)?;
    Ok(path)
}

/// Reads a certificate chain and its key, and the CA, from PEM files.
#[allow(clippy::type_complexity)]
fn load_pem(
    ca_path: &Path,
    cert_path: &Path,
    key_path: &Path,
) -> Result<
    (
        CertificateDer<'static>,
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    ),
    TlsError,
> {
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
    let ca_cert = CertificateDer::from_pem_file(ca_path).map_err(pem_err(ca_path))?;
    let cert_chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(pem_err(cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(cert_path))?;
    if cert_chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path.to_owned(),
            source: rustls::pki_types::pem::Error::NoItemsFound,
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(pem_err(key_path))?;
    Ok((ca_cert, cert_chain, key))
}

/// Reads node `id`'s identity from a directory written by [`write_cluster`].
pub fn load_identity(dir: &Path, id: NodeId) -> Result<NodeIdentity, TlsError> {
    let (ca_cert, cert_chain, key) = load_pem(
        &ca_cert_path(dir),
        &node_cert_path(dir, id),
        &node_key_path(dir, id),
    )?;
    Ok(NodeIdentity {
        id,
        cert_chain,
        key,
        ca_cert,
    })
}

/// Reads client certificate `name` (empty: `client.pem`) from a directory written by
/// [`write_cluster`] or [`issue_client`].
pub fn load_client_identity(dir: &Path, name: &str) -> Result<ClientIdentity, TlsError> {
    let (ca_cert, cert_chain, key) = load_pem(
        &ca_cert_path(dir),
        &client_cert_path(dir, name),
        &client_key_path(dir, name),
    )?;
    Ok(ClientIdentity {
        name: name.to_owned(),
        cert_chain,
        key,
        ca_cert,
    })
}

fn roots(id: &NodeIdentity) -> Result<Arc<RootCertStore>, TlsError> {
    roots_of(&id.ca_cert)
}

fn roots_of(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    Ok(Arc::new(roots))
}

/// Which certificates an endpoint accepts from the other side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Node,
    Client,
}

/// The cluster CA's verifier, plus a check of the certificate's role during the handshake.
#[derive(Debug)]
struct RoleVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    want: Want,
}

impl rustls::server::danger::ClientCertVerifier for RoleVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let role = cert_role(std::slice::from_ref(end_entity));
        match (self.want, role) {
            (Want::Node, Ok(CertRole::Node(_))) | (Want::Client, Ok(CertRole::Client(_))) => Ok(ok),
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn role_verifier(
    ca: &CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
    want: Want,
) -> Result<Arc<RoleVerifier>, TlsError> {
    let inner = WebPkiClientVerifier::builder_with_provider(roots_of(ca)?, provider).build()?;
    Ok(Arc::new(RoleVerifier { inner, want }))
}

/// A TLS 1.3 server config for a node's client port: it presents `id`'s certificate and
/// requires a client certificate (not a node's) signed by the cluster CA; ALPN
/// [`CLIENT_ALPN`].
pub fn client_port_config(id: &NodeIdentity) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let verifier = role_verifier(&id.ca_cert, provider.clone(), Want::Client)?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.cert_chain.clone(), id.key.clone_key())?;
    cfg.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
    Ok(cfg)
}

/// A TLS 1.3 client config for a cluster's clients: trusts only the cluster CA, presents
/// the client certificate; ALPN [`CLIENT_ALPN`]. Dial node `n` as [`server_name`]`(n)`.
pub fn client_identity_config(id: &ClientIdentity) -> Result<ClientConfig, TlsError> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots_of(&id.ca_cert)?)
        .with_client_auth_cert(id.cert_chain.clone(), id.key.clone_key())?;
    cfg.alpn_protocols = vec![CLIENT_ALPN.to_vec()];
    Ok(cfg)
}

/// A TLS 1.3 server config that presents `id`'s certificate and requires a peer
/// certificate signed by the cluster CA that names a node (a client's is refused during
/// the handshake); ALPN [`ALPN`].
pub fn server_config(id: &NodeIdentity) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let verifier = role_verifier(&id.ca_cert, provider.clone(), Want::Node)?;
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

/// The role a (verified) certificate chain's leaf names in its DNS SANs: exactly one
/// node name or exactly one client name, nothing else.
///
/// This does not verify the chain: call it on what the TLS handshake accepted.
pub fn cert_role(certs: &[CertificateDer<'_>]) -> Result<CertRole, TlsError> {
    use x509_parser::extensions::GeneralName;

    let leaf = certs.first().ok_or(TlsError::NoCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let names: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some(*name),
            _ => None,
        })
        .collect();
    let nodes: Vec<NodeId> = names.iter().filter_map(|n| parse_server_name(n)).collect();
    let clients: Vec<String> = names.iter().filter_map(|n| parse_client_name(n)).collect();
    match (nodes.as_slice(), clients.as_slice()) {
        ([id], []) => Ok(CertRole::Node(*id)),
        ([], [c]) => Ok(CertRole::Client(c.clone())),
        (n, c) => Err(TlsError::Role {
            nodes: n.len(),
            clients: c.len(),
        }),
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
        assert_eq!(existing_cluster_files(&path, 3).len(), 10);
        let client = load_client_identity(&path, "").unwrap();
        assert_eq!(
            cert_role(&client.cert_chain).unwrap(),
            CertRole::Client("".into())
        );
        client_identity_config(&client).unwrap();
        fs::remove_file(node_key_path(&path, 2)).unwrap();
        fs::write(node_cert_path(&path, 1), "not PEM").unwrap();
        assert!(matches!(load_identity(&path, 1), Err(TlsError::Pem { .. })));
        assert!(matches!(
            load_identity(&path, 2),
            Err(TlsError::Missing { .. })
        ));
        let left = existing_cluster_files(&path, 3);
        assert_eq!(left.len(), 9);
        assert!(!left.contains(&node_key_path(&path, 2)));
        assert!(existing_cluster_files(&dir.path().join("none"), 3).is_empty());
    }

    #[test]
    fn client_certificates_have_their_own_role() {
        let (nodes, client) = generate_cluster_with_client(&[1, 2]).unwrap();
        assert_eq!(
            cert_role(&client.cert_chain).unwrap(),
            CertRole::Client("".into())
        );
        assert!(matches!(
            peer_id(&client.cert_chain),
            Err(TlsError::NodeName(0))
        ));
        assert_eq!(cert_role(&nodes[1].cert_chain).unwrap(), CertRole::Node(2));
        for (name, want) in [
            ("client.raftbench", Some("")),
            ("client-load-1.raftbench", Some("load-1")),
            ("client-.raftbench", None),
            ("client-Upper.raftbench", None),
            ("clientx.raftbench", None),
            ("node-1.raftbench", None),
        ] {
            assert_eq!(parse_client_name(name).as_deref(), want, "{name}");
        }
        client_port_config(&nodes[0]).unwrap();
        client_identity_config(&client).unwrap();
    }

    #[test]
    fn issue_client_signs_with_the_directory_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certs");
        assert!(matches!(
            issue_client(&path, "load-2"),
            Err(TlsError::NoCaKey { .. })
        ));
        write_cluster(&path, 1).unwrap();
        assert!(matches!(
            issue_client(&path, "Bad Name"),
            Err(TlsError::ClientName(_))
        ));
        let p = issue_client(&path, "load-2").unwrap();
        assert_eq!(p, client_cert_path(&path, "load-2"));
        let c = load_client_identity(&path, "load-2").unwrap();
        assert_eq!(
            cert_role(&c.cert_chain).unwrap(),
            CertRole::Client("load-2".into())
        );
        // The new certificate chains to the directory's CA (verified as a node would).
        let node = load_identity(&path, 1).unwrap();
        let v = role_verifier(&node.ca_cert, provider(), Want::Client).unwrap();
        use rustls::server::danger::ClientCertVerifier;
        v.verify_client_cert(&c.cert_chain[0], &[], rustls::pki_types::UnixTime::now())
            .unwrap();
        // A node certificate is refused at the client port, a client's at the peer port.
        assert!(v
            .verify_client_cert(&node.cert_chain[0], &[], rustls::pki_types::UnixTime::now())
            .is_err());
        let peers = role_verifier(&node.ca_cert, provider(), Want::Node).unwrap();
        assert!(peers
            .verify_client_cert(&c.cert_chain[0], &[], rustls::pki_types::UnixTime::now())
            .is_err());
        peers
            .verify_client_cert(&node.cert_chain[0], &[], rustls::pki_types::UnixTime::now())
            .unwrap();
        // Another cluster's client is refused.
        let (_, foreign) = generate_cluster_with_client(&[1]).unwrap();
        assert!(v
            .verify_client_cert(
                &foreign.cert_chain[0],
                &[],
                rustls::pki_types::UnixTime::now()
            )
            .is_err());
    }
}
