//! JSON and MessagePack encodings of the frames, picked by subprotocol.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::frames::{ClientFrame, ErrorCode, Rid, ServerFrame};
use crate::message::Message;
use crate::{SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK};

/// The encoding of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// JSON in WebSocket text frames.
    Json,
    /// MessagePack (named fields) in WebSocket binary frames.
    MsgPack,
}

/// The WebSocket frame type a codec travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Text,
    Binary,
}

/// Why a client frame was refused, with the request id when it could be read,
/// so the error reply can still be matched to its request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub rid: Option<Rid>,
    pub code: ErrorCode,
    pub message: String,
}

/// What can be read from a frame that did not decode: its `rid` and `type`,
/// when present and well-formed.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    rid: Option<Rid>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Every `type` of [`ClientFrame`] (a unit test checks each variant's).
const KNOWN_CLIENT_TYPES: [&str; 17] = [
    "sync",
    "ack",
    "send",
    "ping",
    "mark",
    "subscribe",
    "unsubscribe",
    "topics",
    "block",
    "unblock",
    "conversations",
    "conversation",
    "history",
    "preferences",
    "set_preferences",
    "act",
    "counts",
];

impl Codec {
    /// All codecs in the order the server prefers them.
    pub const ALL: [Codec; 2] = [Codec::Json, Codec::MsgPack];

    pub fn subprotocol(self) -> &'static str {
        match self {
            Codec::Json => SUBPROTOCOL_JSON,
            Codec::MsgPack => SUBPROTOCOL_MSGPACK,
        }
    }

    pub fn from_subprotocol(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.subprotocol() == name)
    }

    pub fn frame_kind(self) -> FrameKind {
        match self {
            Codec::Json => FrameKind::Text,
            Codec::MsgPack => FrameKind::Binary,
        }
    }

    /// Encodes a server frame. For [`Codec::Json`] the bytes are valid UTF-8.
    pub fn encode_server(self, frame: &ServerFrame) -> Bytes {
        self.encode(frame)
    }

    /// The `message` frame of `message`, the same bytes as
    /// `encode_server(&ServerFrame::Message(message.clone()))` without the
    /// clone (a gateway encodes every delivered message).
    pub fn encode_message(self, message: &Message) -> Bytes {
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum MessageFrame<'a> {
            Message(&'a Message),
        }
        self.encode(&MessageFrame::Message(message))
    }

    /// A `counts` frame from any value that serializes as the fields of
    /// [`crate::Counts`], so a gateway can encode its compact per-connection
    /// counts without building the map first.
    pub fn encode_counts<C: Serialize>(self, counts: &C) -> Bytes {
        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum CountsFrame<'a, C: Serialize> {
            Counts(&'a C),
        }
        // Sized for the six categories' frame (~190 bytes in JSON), so the
        // buffer is not grown while writing: one is made per delivery.
        let mut buf = Vec::with_capacity(256);
        let frame = CountsFrame::Counts(counts);
        match self {
            Codec::Json => {
                serde_json::to_writer(&mut buf, &frame).expect("counts serialize to JSON")
            }
            Codec::MsgPack => rmp_serde::encode::write_named(&mut buf, &frame)
                .expect("counts serialize to msgpack"),
        }
        buf.into()
    }

    pub fn encode_client(self, frame: &ClientFrame) -> Bytes {
        self.encode(frame)
    }

    pub fn decode_server(self, bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
        self.decode::<ServerFrame>(bytes)
            .map_err(|message| DecodeError {
                rid: None,
                code: ErrorCode::BadRequest,
                message,
            })
    }

    /// Decodes a client frame. On failure the error names the problem and
    /// carries the frame's `rid` when one could be read.
    pub fn decode_client(self, bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
        self.decode::<ClientFrame>(bytes).map_err(|message| {
            let probe = self.decode::<Probe>(bytes).ok();
            let (rid, kind) = probe.map(|p| (p.rid, p.kind)).unwrap_or((None, None));
            match kind {
                None => DecodeError {
                    rid,
                    code: ErrorCode::BadRequest,
                    message: "a frame must be an object with a string field `type`".into(),
                },
                Some(kind) if !KNOWN_CLIENT_TYPES.contains(&kind.as_str()) => DecodeError {
                    rid,
                    code: ErrorCode::UnknownType,
                    message: format!(
                        "unknown frame type {kind:?}; expected one of {}",
                        KNOWN_CLIENT_TYPES.join(", ")
                    ),
                },
                Some(_) => DecodeError {
                    rid,
                    code: ErrorCode::BadRequest,
                    message,
                },
            }
        })
    }

    fn encode<T: Serialize>(self, value: &T) -> Bytes {
        // Serialising our own frame types cannot fail: every map key is a
        // string and no field holds a type serde rejects.
        match self {
            Codec::Json => serde_json::to_vec(value).expect("frames serialize to JSON"),
            Codec::MsgPack => rmp_serde::to_vec_named(value).expect("frames serialize to msgpack"),
        }
        .into()
    }

    fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, Changed, ChangedState, Message, Reply, Stream, Welcome};

    /// A frame of a known type with a bad field is `bad_request`, never
    /// `unknown_type`: the list of known types covers every variant.
    #[test]
    fn every_client_frame_type_is_known() {
        use crate::{MarkSelector, MarkState};
        let rid = || crate::Rid::Int(1);
        let frames = [
            ClientFrame::Sync {
                rid: rid(),
                since: 0,
                since_all: None,
                since_id: None,
                since_all_id: None,
            },
            ClientFrame::Ack {
                seq: 1,
                stream: Stream::Inbox,
            },
            ClientFrame::Send {
                rid: rid(),
                to: "b".into(),
                body: "x".into(),
                title: None,
                data: None,
                key: None,
                expires_at: None,
                group_key: None,
                tags: None,
                severity: None,
            },
            ClientFrame::Ping { rid: rid() },
            ClientFrame::Mark {
                rid: rid(),
                state: MarkState::Read,
                selector: MarkSelector::default(),
                until: None,
                tags: None,
                severity: None,
            },
            ClientFrame::Subscribe {
                rid: rid(),
                topic: "t".into(),
            },
            ClientFrame::Unsubscribe {
                rid: rid(),
                topic: "t".into(),
            },
            ClientFrame::Topics { rid: rid() },
            ClientFrame::Block {
                rid: rid(),
                user: "u".into(),
            },
            ClientFrame::Unblock {
                rid: rid(),
                user: "u".into(),
            },
            ClientFrame::Conversations {
                rid: rid(),
                before: None,
                limit: None,
            },
            ClientFrame::Conversation {
                rid: rid(),
                peer: "p".into(),
                before: None,
                limit: None,
            },
            ClientFrame::History {
                rid: rid(),
                category: None,
                state: None,
                before: None,
                limit: None,
                snoozed: None,
                tags: None,
                severity: None,
            },
            ClientFrame::Preferences { rid: rid() },
            ClientFrame::SetPreferences {
                rid: rid(),
                preferences: Default::default(),
            },
            ClientFrame::Act {
                rid: rid(),
                message: uuid::Uuid::nil(),
                action: "accept".into(),
            },
            ClientFrame::Counts {
                rid: rid(),
                tags: None,
                severity: None,
            },
        ];
        assert_eq!(frames.len(), KNOWN_CLIENT_TYPES.len());
        for frame in frames {
            let json = serde_json::to_value(&frame).unwrap();
            let kind = json["type"].as_str().unwrap();
            assert!(KNOWN_CLIENT_TYPES.contains(&kind), "{kind}");
            let bad = format!(r#"{{"type":"{kind}","rid":9,"since":"x","seq":"x","ids":"x"}}"#);
            if let Err(err) = Codec::Json.decode_client(bad.as_bytes()) {
                assert_ne!(err.code, ErrorCode::UnknownType, "{kind}");
            }
        }
    }
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn sample_message() -> Message {
        Message {
            seq: 7,
            stream: Stream::Inbox,
            id: Uuid::new_v4(),
            category: Category::MAILBOX,
            severity: crate::Severity::High,
            tags: vec!["billing".into(), "team:42".into()],
            from: Some("bob".into()),
            title: None,
            body: "hi".into(),
            data: serde_json::json!({"k": [1, 2]}),
            ts: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            expires_at: Some(OffsetDateTime::from_unix_timestamp(1_700_086_400).unwrap()),
            group_key: Some("likes:post-1".into()),
            collapsed: Some(3),
            replaces: Some(Uuid::new_v4()),
            critical: true,
            silent: false,
            actions: vec![crate::Action {
                id: "accept".into(),
                label: "Accept".into(),
                url: Some("https://example.com/a".into()),
            }],
            acted: Some("accept".into()),
        }
    }

    #[test]
    fn server_frames_round_trip_in_both_codecs() {
        let frames = [
            ServerFrame::Message(sample_message()),
            ServerFrame::Reset {
                stream: Stream::Inbox,
                seq: 41,
            },
            ServerFrame::Changed(Changed {
                ids: vec![Uuid::new_v4()],
                state: ChangedState::Replaced,
                by: Some(Uuid::new_v4()),
                action: None,
            }),
            ServerFrame::Changed(Changed {
                ids: vec![Uuid::now_v7(), Uuid::now_v7()],
                state: ChangedState::Unsnoozed,
                by: None,
                action: None,
            }),
            ServerFrame::Changed(Changed {
                ids: vec![Uuid::now_v7()],
                state: ChangedState::Acted,
                by: None,
                action: Some("accept".into()),
            }),
            ServerFrame::Reply(Reply::error(None, ErrorCode::BadRequest, "x")),
            ServerFrame::Reply(Reply {
                seq: Some(3),
                ..Reply::ok(Rid::from("a"))
            }),
            ServerFrame::Welcome(Welcome {
                conn_id: Uuid::new_v4(),
                user_id: "alice".into(),
                node_id: "n1".into(),
                heartbeat_ms: 25_000,
                last_seq: 4,
                last_all_seq: 0,
            }),
        ];
        for codec in Codec::ALL {
            for frame in &frames {
                let bytes = codec.encode_server(frame);
                assert_eq!(&codec.decode_server(&bytes).unwrap(), frame, "{codec:?}");
            }
        }
    }

    #[test]
    fn message_frames_encode_without_a_clone_to_the_same_bytes() {
        let m = sample_message();
        for codec in Codec::ALL {
            assert_eq!(
                codec.encode_message(&m),
                codec.encode_server(&ServerFrame::Message(m.clone())),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn message_json_has_the_documented_shape() {
        let bytes = Codec::Json.encode_server(&ServerFrame::Message(sample_message()));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["category"], "mailbox");
        assert_eq!(v["ts"], "2023-11-14T22:13:20Z");
        assert!(v.get("title").is_none());
    }

    #[test]
    fn client_frames_round_trip_in_both_codecs() {
        let frames = [
            ClientFrame::Sync {
                rid: 1.into(),
                since: 5,
                since_all: None,
                since_id: Some(Uuid::from_u128(7)),
                since_all_id: None,
            },
            ClientFrame::Ack {
                seq: 9,
                stream: Stream::All,
            },
            ClientFrame::Send {
                rid: "r".into(),
                to: "bob".into(),
                body: "hey".into(),
                title: None,
                data: Some(serde_json::json!({"a": 1})),
                key: Some("k1".into()),
                expires_at: None,
                group_key: None,
                tags: Some(vec!["billing".into()]),
                severity: Some("high".into()),
            },
            ClientFrame::Ping { rid: 2.into() },
            ClientFrame::Mark {
                rid: 3.into(),
                state: crate::MarkState::Read,
                selector: crate::MarkSelector {
                    up_to: Some(crate::UpTo {
                        stream: Stream::All,
                        seq: 4,
                    }),
                    ..Default::default()
                },
                until: None,
                tags: None,
                severity: None,
            },
            ClientFrame::Mark {
                rid: 4.into(),
                state: crate::MarkState::Snoozed,
                selector: crate::MarkSelector {
                    ids: Some(vec![uuid::Uuid::now_v7()]),
                    ..Default::default()
                },
                until: Some(1_767_254_400_000),
                tags: None,
                severity: None,
            },
            ClientFrame::History {
                rid: 5.into(),
                category: Some("remind".into()),
                state: Some(crate::StateFilter::Unread),
                before: Some("3.-".into()),
                limit: Some(10),
                snoozed: Some(true),
                tags: Some(vec!["billing".into(), "team:42".into()]),
                severity: Some("critical".into()),
            },
            ClientFrame::Counts {
                rid: 6.into(),
                tags: Some(vec!["billing".into()]),
                severity: None,
            },
        ];
        for codec in Codec::ALL {
            for frame in &frames {
                let bytes = codec.encode_client(frame);
                assert_eq!(&codec.decode_client(&bytes).unwrap(), frame, "{codec:?}");
            }
        }
    }

    #[test]
    fn malformed_frames_keep_their_rid() {
        let err = Codec::Json
            .decode_client(br#"{"type":"sync","rid":"q1"}"#)
            .unwrap_err();
        assert_eq!(err.rid, Some(Rid::from("q1")));
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(err.message.contains("since"), "{}", err.message);

        let err = Codec::Json
            .decode_client(br#"{"type":"fly","rid":4}"#)
            .unwrap_err();
        assert_eq!(err.rid, Some(Rid::Int(4)));
        assert_eq!(err.code, ErrorCode::UnknownType);

        let err = Codec::Json.decode_client(b"not json").unwrap_err();
        assert_eq!(err.rid, None);
        assert_eq!(err.code, ErrorCode::BadRequest);

        let bytes =
            rmp_serde::to_vec_named(&serde_json::json!({"type": "send", "rid": 8})).unwrap();
        let err = Codec::MsgPack.decode_client(&bytes).unwrap_err();
        assert_eq!(err.rid, Some(Rid::Int(8)));
    }

    #[test]
    fn subprotocols_map_to_codecs() {
        assert_eq!(
            Codec::from_subprotocol("herald.v1.msgpack"),
            Some(Codec::MsgPack)
        );
        assert_eq!(Codec::from_subprotocol("herald.v1.json"), Some(Codec::Json));
        assert_eq!(Codec::from_subprotocol("v2"), None);
    }

    /// A field a frame does not know is refused, naming the field: a client
    /// written for a newer contract must not take a dropped field for
    /// success.
    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        for (raw, field) in [
            (
                r#"{"type":"send","rid":1,"to":"b","body":"x","groupkey":"g"}"#,
                "groupkey",
            ),
            (
                r#"{"type":"mark","rid":2,"state":"read","all":true,"remind_at":1}"#,
                "remind_at",
            ),
            (r#"{"type":"ping","rid":3,"extra":1}"#, "extra"),
        ] {
            let err = Codec::Json.decode_client(raw.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{raw}");
            assert!(err.message.contains(field), "{raw}: {}", err.message);
            assert!(err.rid.is_some(), "{raw}");
            let value: serde_json::Value = serde_json::from_str(raw).unwrap();
            let packed = rmp_serde::to_vec_named(&value).unwrap();
            let err = Codec::MsgPack.decode_client(&packed).unwrap_err();
            assert!(err.message.contains(field), "{raw}: {}", err.message);
        }
        let mark = r#"{"type":"mark","rid":2,"state":"read","category":"system"}"#;
        assert!(Codec::Json.decode_client(mark.as_bytes()).is_ok());
    }
}
