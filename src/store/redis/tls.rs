//! [`TlsCerts`]: certificates for `rediss://` beyond the system's roots
//! (feature `tls`).

use std::fmt;

/// A root certificate to trust instead of the system's, and a client
/// certificate to present, both PEM. `Debug` shows only which are set.
///
/// ```
/// use heat_observer::TlsCerts;
///
/// let certs = TlsCerts::new().root_cert_pem(b"-----BEGIN CERTIFICATE-----...".to_vec());
/// assert_eq!(format!("{certs:?}"), "TlsCerts { root_cert: true, client_cert: false }");
/// ```
#[derive(Clone, Default)]
pub struct TlsCerts {
    root_cert: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsCerts {
    /// No extra certificates: the system's roots, no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust this root certificate (PEM) instead of the system's.
    pub fn root_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_cert = Some(pem.into());
        self
    }

    /// Present this client certificate and key (PEM), for servers that
    /// verify clients (`tls-auth-clients yes`).
    pub fn client_cert_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.client = Some((cert.into(), key.into()));
        self
    }

    pub(crate) fn into_redis(self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
            root_cert: self.root_cert,
        }
    }
}

impl fmt::Debug for TlsCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCerts")
            .field("root_cert", &self.root_cert.is_some())
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}
