//! How the load generator's WebSocket clients connect: the codec, how a
//! worker holds its connections, the handshake's limits.

use clap::{Args, ValueEnum};

/// The WebSocket encoding the clients ask for.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CodecArg {
    Json,
    Msgpack,
}

impl CodecArg {
    pub fn codec(self) -> herald_protocol::Codec {
        match self {
            CodecArg::Json => herald_protocol::Codec::Json,
            CodecArg::Msgpack => herald_protocol::Codec::MsgPack,
        }
    }
}

/// How the `conn` and `fanout` workers hold their connections.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ClientMode {
    /// `lean` with the JSON codec, `tungstenite` with MessagePack.
    Auto,
    /// One mio reactor per thread reading every socket into one scratch
    /// buffer: no task and no read buffer per idle connection (JSON only).
    Lean,
    /// A tokio task and a tokio-tungstenite stream per connection.
    Tungstenite,
}

impl ClientMode {
    /// The mode `Auto` stands for with `codec`; lean with MessagePack is
    /// refused.
    pub fn resolve(self, codec: CodecArg) -> anyhow::Result<ClientMode> {
        Ok(match (self, codec) {
            (ClientMode::Auto, CodecArg::Json) => ClientMode::Lean,
            (ClientMode::Auto, CodecArg::Msgpack) => ClientMode::Tungstenite,
            (ClientMode::Lean, CodecArg::Msgpack) => anyhow::bail!(
                "--client-mode lean reads JSON frames only: use --codec json or --client-mode tungstenite"
            ),
            (mode, _) => mode,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientMode::Auto => "auto",
            ClientMode::Lean => "lean",
            ClientMode::Tungstenite => "tungstenite",
        }
    }
}

/// Settings every WebSocket client of the load generator shares.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// HS256 secret the gateway verifies tokens with.
    #[arg(long, env = "HERALD__AUTH__JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Subprotocol (encoding) to ask for.
    #[arg(long, value_enum, default_value = "json")]
    pub codec: CodecArg,
    /// Client-side WebSocket read buffer. Small, so the load generator itself
    /// stays lean (tungstenite's default is 128 KiB per connection).
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// Seconds one connect attempt (TCP + handshake + welcome) may take.
    #[arg(long, default_value_t = 15)]
    pub connect_timeout: u64,
    /// Extra attempts per connection after a failed one.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Connect attempts in flight at once, per process.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// How `conn` and `fanout` workers hold connections (lean needs JSON;
    /// `--read-buffer` is the tungstenite mode's).
    #[arg(long, value_enum, default_value = "auto")]
    pub client_mode: ClientMode,
}
