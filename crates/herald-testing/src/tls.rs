//! What a managed Redis looks like to a client: TLS with a private CA, a
//! client certificate, and an ACL user instead of the `default` one.
//!
//! [`TestCerts`] is a throwaway CA with a server certificate for
//! 127.0.0.1/localhost and a client certificate, made with the `openssl`
//! command (in every Debian image, and this crate stays std-only).
//! [`Secure`] is what a [`crate::RedisServer`] or [`crate::RedisSentinel`]
//! is started with to require them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::process::TempDir;

/// A CA, a server certificate (SAN `IP:127.0.0.1`, `DNS:localhost`) and a
/// client certificate signed by it, as PEM files in a temporary directory
/// (removed on drop). EC P-256 keys: fast to make, and both rustls and
/// Redis's OpenSSL take them.
pub struct TestCerts {
    dir: TempDir,
}

impl TestCerts {
    /// Makes the CA and both certificates (valid for two days); panics
    /// with openssl's output if it fails or is missing.
    pub fn generate() -> TestCerts {
        let certs = TestCerts {
            dir: TempDir::new("certs"),
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        certs.openssl(
            &[
                &["req", "-x509", "-nodes", "-days", "2"],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.crt"],
                &["-subj", "/CN=herald-test-ca"],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        std::fs::write(
            certs.path("leaf.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("write leaf.ext");
        for (name, serial) in [("server", "2"), ("client", "3")] {
            let (key, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            let subject = format!("/CN=herald-test-{name}");
            certs.openssl(
                &[
                    &["req", "-nodes"],
                    &ec[..],
                    &["-keyout", &key, "-out", &csr, "-subj", &subject],
                ]
                .concat(),
            );
            certs.openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
                "-out",
                &crt,
            ]);
        }
        certs
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (the TLS tests make their certificates with it)");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The CA certificate (what a client trusts).
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.crt")
    }

    pub fn server_cert_file(&self) -> PathBuf {
        self.path("server.crt")
    }

    pub fn server_key_file(&self) -> PathBuf {
        self.path("server.key")
    }

    /// The client certificate (what a client presents).
    pub fn client_cert_file(&self) -> PathBuf {
        self.path("client.crt")
    }

    pub fn client_key_file(&self) -> PathBuf {
        self.path("client.key")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// How a server is secured like a managed Redis: a TLS port next to the
/// plain one (which only the harness uses, to check readiness), clients
/// must present a certificate of the CA, and the `default` user is off, so
/// only `user`/`password` can log in.
#[derive(Clone)]
pub struct Secure {
    pub certs: Arc<TestCerts>,
    pub user: String,
    pub password: String,
}

impl Secure {
    /// New certificates and the ACL user `herald` with a fixed password.
    pub fn generate() -> Secure {
        Secure {
            certs: Arc::new(TestCerts::generate()),
            user: "herald".into(),
            password: "herald-test-password".into(),
        }
    }

    /// The TLS arguments shared by a server and a Sentinel, with
    /// `tls-replication` so that a Sentinel (or a replica) reaches the
    /// primary over TLS too.
    pub(crate) fn tls_args(&self, tls_port: u16) -> Vec<String> {
        let c = &self.certs;
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path(c.server_cert_file()),
            "--tls-key-file".into(),
            path(c.server_key_file()),
            "--tls-ca-cert-file".into(),
            path(c.ca_file()),
            "--tls-auth-clients".into(),
            "yes".into(),
            "--tls-replication".into(),
            "yes".into(),
        ]
    }

    /// The ACL arguments of a data node: `default` off, `user` allowed
    /// everything with `password`.
    pub(crate) fn acl_args(&self) -> Vec<String> {
        vec![
            "--user".into(),
            "default".into(),
            "off".into(),
            "--user".into(),
            self.user.clone(),
            "on".into(),
            format!(">{}", self.password),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
        ]
    }
}
