//! The TLS certificate authority and server certificate osmd generates on first start.
//!
//! Clients trust `<data-dir>/tls/ca.pem` (e.g. `REQUESTS_CA_BUNDLE`); the server certificate
//! carries SANs for `localhost`, `127.0.0.1`, `::1`, the OCI-style names an unmodified SDK
//! builds for a local realm, and the host osmd listens on. Files are reused on later starts,
//! and the server certificate is re-issued (by the same CA) when the listen host is new.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::fsutil::write_private;

pub struct TlsPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TlsPaths {
    pub fn new(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        TlsPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
        }
    }
}

/// Names the server certificate must cover for `listen_host`.
pub fn server_names(listen_host: &str) -> Vec<String> {
    let mut names: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "osms.local-1.oci.localhost",
        "identity.local-1.oci.localhost",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let host = listen_host.trim_start_matches('[').trim_end_matches(']');
    if !host.is_empty() && host != "0.0.0.0" && host != "::" && !names.iter().any(|n| n == host) {
        names.push(host.to_string());
    }
    names
}

/// Loads the CA and server certificate from the data directory, creating what is missing.
pub fn ensure(data_dir: &Path, listen_host: &str) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let paths = TlsPaths::new(data_dir);
    std::fs::create_dir_all(paths.ca_cert.parent().unwrap())?;
    if !paths.ca_cert.exists() || !paths.ca_key.exists() {
        let (cert, key) = new_ca()?;
        write_private(&paths.ca_key, key.as_bytes())?;
        crate::fsutil::write_atomic(&paths.ca_cert, cert.as_bytes(), 0o644)?;
        // A new CA invalidates any older server certificate.
        let _ = std::fs::remove_file(&paths.server_cert);
    }
    let names = server_names(listen_host);
    let marker = paths.server_cert.with_extension("names");
    let current = std::fs::read_to_string(&marker).unwrap_or_default();
    if !paths.server_cert.exists() || !paths.server_key.exists() || current != names.join("\n") {
        let ca_pem = std::fs::read_to_string(&paths.ca_cert)?;
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&paths.ca_key)?)
            .context("reading tls/ca-key.pem")?;
        let (cert, key) = new_server_cert(&ca_pem, &ca_key, &names)?;
        write_private(&paths.server_key, key.as_bytes())?;
        crate::fsutil::write_atomic(&paths.server_cert, cert.as_bytes(), 0o644)?;
        crate::fsutil::write_atomic(&marker, names.join("\n").as_bytes(), 0o644)?;
    }
    server_config(&paths)
}

fn new_ca() -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "osm local certificate authority");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "osm");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn new_server_cert(
    ca_pem: &str,
    ca_key: &KeyPair,
    names: &[String],
) -> anyhow::Result<(String, String)> {
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).context("reading tls/ca.pem")?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, "osmd");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn server_config(paths: &TlsPaths) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.server_cert)
        .context("reading tls/server.pem")?
        .collect::<Result<_, _>>()?;
    let key =
        PrivateKeyDer::from_pem_file(&paths.server_key).context("reading tls/server-key.pem")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
