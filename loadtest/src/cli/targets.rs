//! The forms a gateway's address takes: the base URL the server API is
//! under, and the WebSocket URL.

/// A target given as `http://host:port`, `ws://host:port` or
/// `ws://host:port/ws` → its base URL `http://host:port`.
pub fn base_url(target: &str) -> String {
    let t = target.trim_end_matches('/');
    let t = t.strip_suffix("/ws").unwrap_or(t);
    if let Some(rest) = t.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = t.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        t.to_owned()
    }
}

/// `http://host:port` → `ws://host:port/ws`.
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{rest}/ws")
}
