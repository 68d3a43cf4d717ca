//! TLS to Redis (`rediss://`, `rediss-sentinel://`, `rediss-cluster://`):
//! which certificates Herald trusts and which one it presents.
//!
//! Managed Redis services (ElastiCache, Memorystore, Azure Cache, Aiven,
//! Upstash, …) require TLS, often with a private CA, and some require a
//! client certificate. fred turns TLS on from the URL's scheme and, left
//! alone, trusts the system's roots; this file replaces its connector when
//! a CA file or a client certificate is configured. rustls on ring, like
//! the webhook client (aws-lc-rs is a long C build).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fred::types::config::TlsConnector;
use herald_core::CoreError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Certificates for TLS to Redis. All empty: the system's root
/// certificates and no client certificate (fred's default for `rediss://`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM file of the CA certificates to trust instead of the system's
    /// (a managed service's private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate chain, for a server that
    /// verifies clients (`tls-auth-clients yes`); needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key_file: Option<PathBuf>,
}

impl RedisTls {
    /// True when nothing is configured (fred's default connector is used).
    pub fn is_default(&self) -> bool {
        self == &RedisTls::default()
    }

    /// The connector for these settings, or None to keep fred's default.
    /// Errors name the setting and the file, so a bad path or an empty PEM
    /// fails the start instead of every connection attempt.
    pub(crate) fn connector(&self) -> herald_core::Result<Option<TlsConnector>> {
        if self.is_default() {
            return Ok(None);
        }
        let invalid = |msg: String| CoreError::Invalid(msg);
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let certs = read_certs("redis.tls.ca_file", path)?;
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        invalid(format!("redis.tls.ca_file {}: {e}", path.display()))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(invalid(
                        "redis: no system root certificates found (install ca-certificates \
                         or set redis.tls.ca_file)"
                            .into(),
                    ));
                }
            }
        }
        // Deprecated only for lacking post-quantum key exchange, which
        // aws-lc-rs has; the webhook client makes the same choice.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("redis tls: {e}")))?
            .with_root_certificates(roots);
        let config = match (&self.cert_file, &self.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs("redis.tls.cert_file", cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| invalid(format!("redis.tls.key_file {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid(format!("redis.tls.cert_file/key_file: {e}")))?
            }
            (Some(_), None) => {
                return Err(invalid(
                    "redis.tls.cert_file is set without redis.tls.key_file".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "redis.tls.key_file is set without redis.tls.cert_file".into(),
                ))
            }
        };
        Ok(Some(config.into()))
    }
}

/// Every certificate in the PEM file at `path`; at least one.
fn read_certs(setting: &str, path: &Path) -> herald_core::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CoreError::Invalid(format!("{setting} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(CoreError::Invalid(format!(
            "{setting} {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}
