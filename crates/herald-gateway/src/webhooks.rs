//! The HTTP side of the unread fallback webhooks: core's
//! [`WebhookPoster`] over hyper-util's client with rustls (ring, the
//! system's root certificates). Each try has the configured timeout
//! (connect to the last byte read), follows no redirect (a 3xx is a failed
//! try: hyper never follows one), reads at most [`MAX_RESPONSE_READ`] of
//! the response body, so a receiver answering gigabytes costs nothing, and
//! buffers at most [`MAX_RESPONSE_BUFFER`] of what a connection receives,
//! so neither does one whose answer's head never ends.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use herald_core::{PostOutcome, WebhookPoster, WebhookRequest};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Most bytes of a response body read (then the connection is dropped).
pub const MAX_RESPONSE_READ: usize = 4 * 1024;

/// The most a connection's read buffer grows to (hyper's default is about
/// 400 KiB). A response head that does not fit fails the try (`message
/// head is too large`): a receiver writing one header forever made each
/// try in flight cost the node about 0.8 MiB with the default (25–26 MiB
/// for 32 at once, `tests/webhooks_hostile.rs`). A receiver's real answer
/// head is a few hundred bytes.
pub const MAX_RESPONSE_BUFFER: usize = 16 * 1024;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// POSTs webhook tries.
pub struct HttpPoster {
    client: Client<Https, Full<Bytes>>,
    timeout: Duration,
}

impl HttpPoster {
    /// A client for `url` with this timeout per try. The system's root
    /// certificates are read once here; an `https://` URL without any is
    /// an error at start (install `ca-certificates`).
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<HttpPoster> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let builder = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(ring())
        {
            Ok(builder) => builder,
            Err(e) if url.starts_with("https://") => {
                anyhow::bail!("webhooks.url is https, but no root certificates were found: {e}")
            }
            // Plain HTTP needs none.
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(ring().into())
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .http1_max_buf_size(MAX_RESPONSE_BUFFER)
            .build(https);
        Ok(HttpPoster { client, timeout })
    }

    async fn try_once(&self, request: &WebhookRequest) -> PostOutcome {
        let built = hyper::Request::post(&request.url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("herald-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", &request.id)
            .header("webhook-timestamp", request.timestamp.to_string())
            .header("webhook-signature", &request.signature)
            .body(Full::new(Bytes::from(request.body.clone())));
        let built = match built {
            Ok(built) => built,
            Err(e) => return PostOutcome::Failed(format!("request not built: {e}")),
        };
        let response = match self.client.request(built).await {
            Ok(response) => response,
            Err(e) => return PostOutcome::Failed(describe(&e)),
        };
        let status = response.status().as_u16();
        drain_some(response.into_body()).await;
        PostOutcome::Status(status)
    }
}

/// ring's provider. It lacks post-quantum key exchange (hence the
/// deprecation); a webhook to the application's backend does not need it,
/// and aws-lc-rs, the other provider, is a long C build.
fn ring() -> rustls::crypto::CryptoProvider {
    #[allow(deprecated)]
    rustls::crypto::ring::default_provider()
}

/// Reads up to [`MAX_RESPONSE_READ`] of a body (a small answer leaves
/// the connection reusable), never more.
async fn drain_some(mut body: Incoming) {
    let mut read = 0;
    while read < MAX_RESPONSE_READ {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

#[async_trait]
impl WebhookPoster for HttpPoster {
    async fn post(&self, request: &WebhookRequest) -> PostOutcome {
        tokio::time::timeout(self.timeout, self.try_once(request))
            .await
            .unwrap_or(PostOutcome::Timeout)
    }
}

/// The error and its causes.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
