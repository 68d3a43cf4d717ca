//! A message on its way to local connections, encoded at most once per codec.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use herald_protocol::{Codec, Message};

use crate::model::StreamKey;

/// A message shared by every local connection that receives it. A broadcast
/// to 100k connections encodes the frame once per codec, not 100k times.
#[derive(Debug)]
pub struct Delivery {
    /// The stream the message was appended to (names the receiving user).
    pub key: StreamKey,
    pub message: Message,
    json: OnceLock<Bytes>,
    msgpack: OnceLock<Bytes>,
    /// The same frame with `"silent": true`, for connections of a user in
    /// their quiet hours (at most one user's: an inbox message).
    silent: [OnceLock<Bytes>; 2],
}

impl Delivery {
    pub fn new(key: StreamKey, message: Message) -> Arc<Self> {
        Arc::new(Delivery {
            key,
            message,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
            silent: Default::default(),
        })
    }

    /// The `message` frame in `codec`, encoded on first use.
    pub fn frame(&self, codec: Codec) -> Bytes {
        let cell = match codec {
            Codec::Json => &self.json,
            Codec::MsgPack => &self.msgpack,
        };
        cell.get_or_init(|| codec.encode_message(&self.message))
            .clone()
    }

    /// The `message` frame in `codec` with `"silent": true`, encoded on
    /// first use.
    pub fn silent_frame(&self, codec: Codec) -> Bytes {
        let cell = &self.silent[matches!(codec, Codec::MsgPack) as usize];
        cell.get_or_init(|| {
            let silent = herald_protocol::Message {
                silent: true,
                ..self.message.clone()
            };
            codec.encode_message(&silent)
        })
        .clone()
    }
}
