//! A user's preferences: which categories and topics reach them in the app
//! (and by the fallback of part 4, webhooks), and their quiet hours.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Whether messages of one category or topic reach the user in the app
/// (`in_app: false`: not stored for them at all) and by the fallback.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Channels {
    pub in_app: bool,
    pub fallback: bool,
}

impl Default for Channels {
    /// Both on: what a topic is until the user sets it, and a category
    /// until the operator or the user does.
    fn default() -> Self {
        Channels {
            in_app: true,
            fallback: true,
        }
    }
}

/// A daily window, in the user's zone, in which live messages carry
/// `"silent": true`. `start` and `end` are `HH:MM`; the window may cross
/// midnight (`22:00`–`07:00`); `start == end` is an empty window.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// An IANA zone, e.g. `Europe/Paris`.
    pub tz: String,
    pub start: String,
    pub end: String,
}

/// A user's preferences as the server shows them: every configured
/// category (the operator's defaults where the user set nothing), the
/// topics the user set, the quiet hours.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Preferences {
    pub categories: BTreeMap<String, Channels>,
    pub topics: BTreeMap<String, Channels>,
    pub quiet_hours: Option<QuietHours>,
}

/// One category's or topic's change: only the flags given change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Read as an object only (`Deserialize` below): serde's derive would also
// take a two-element array (`[true, null]`) for it. `deny_unknown_fields`
// stays for the schema (`additionalProperties: false`); the impl refuses
// unknown fields itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(deny_unknown_fields)]
pub struct ChannelsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<bool>,
}

impl<'de> Deserialize<'de> for ChannelsPatch {
    /// The flags given, each at most once; any other field is refused, as
    /// is anything but an object (schemathesis sent `[null, null]` as a
    /// topic's patch, and the derive took it).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const FIELDS: &[&str] = &["in_app", "fallback"];
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ChannelsPatch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object with `in_app` and/or `fallback`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ChannelsPatch, A::Error> {
                use serde::de::Error;
                let mut patch = ChannelsPatch::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "in_app" => &mut patch.in_app,
                        "fallback" => &mut patch.fallback,
                        other => return Err(A::Error::unknown_field(other, FIELDS)),
                    };
                    if slot.is_some() {
                        return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    *slot = map.next_value::<Option<bool>>()?;
                }
                Ok(patch)
            }
        }
        d.deserialize_struct("ChannelsPatch", FIELDS, Fields)
    }
}

/// What a `PATCH` or `set_preferences` carries: only what changes. A topic
/// set to `null` is forgotten (back to the defaults); `quiet_hours: null`
/// removes the quiet hours, and its absence leaves them as they are.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(deny_unknown_fields)]
pub struct PreferencesPatch {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub categories: BTreeMap<String, ChannelsPatch>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::topic_patches))]
    pub topics: BTreeMap<String, Option<ChannelsPatch>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[cfg_attr(feature = "ts", ts(as = "Option<QuietHours>", optional = nullable))]
    pub quiet_hours: Option<Option<QuietHours>>,
}

/// The schema of [`PreferencesPatch::topics`]: utoipa has none for a map
/// of `Option`s (a topic's change, or `null` to forget it).
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::openapi::{Ref, RefOr};

    pub fn topic_patches() -> RefOr<Schema> {
        let value = OneOfBuilder::new()
            .item(Ref::from_schema_name("ChannelsPatch"))
            .item(ObjectBuilder::new().schema_type(Type::Null));
        ObjectBuilder::new()
            .additional_properties(Some(Schema::OneOf(value.build())))
            .description(Some(
                "By topic: the flags that change, or `null` to forget the topic (back to the defaults).",
            ))
            .into()
    }
}

/// A field that is present, `null` included, is `Some` (absent: `None`
/// through `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<QuietHours>>, D::Error> {
    Option::<QuietHours>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_tells_null_quiet_hours_from_absent_ones() {
        let absent: PreferencesPatch = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.quiet_hours, None);
        let null: PreferencesPatch = serde_json::from_str(r#"{"quiet_hours":null}"#).unwrap();
        assert_eq!(null.quiet_hours, Some(None));
        let set: PreferencesPatch = serde_json::from_str(
            r#"{"quiet_hours":{"tz":"Europe/Paris","start":"22:00","end":"07:00"},"topics":{"a":null,"b":{"in_app":false}}}"#,
        )
        .unwrap();
        assert!(matches!(set.quiet_hours, Some(Some(_))));
        assert_eq!(set.topics["a"], None);
        assert_eq!(set.topics["b"].unwrap().in_app, Some(false));
        for bad in [
            r#"{"topics":{"a":[null,null]}}"#,
            r#"{"categories":{"remind":[true,false]}}"#,
            r#"{"categories":{"remind":{"in_app":true,"in_app":false}}}"#,
        ] {
            assert!(
                serde_json::from_str::<PreferencesPatch>(bad).is_err(),
                "{bad}"
            );
        }
        for bad in [
            r#"{"nope":1}"#,
            r#"{"categories":{"remind":{"in_app":false,"sms":true}}}"#,
            r#"{"quiet_hours":{"tz":"UTC","start":"22:00","end":"07:00","x":1}}"#,
        ] {
            let err = serde_json::from_str::<PreferencesPatch>(bad).unwrap_err();
            assert!(err.to_string().contains("unknown field"), "{bad}: {err}");
        }
    }
}
