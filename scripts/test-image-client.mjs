// The WebSocket client of scripts/test-image.sh (Node >= 20, run with
// --experimental-websocket): connects as the token's user, sends itself a
// message through the server API, prints `message <body>` when the frame
// arrives, then stays connected and prints `reconnect <after_ms>` when the
// draining node tells it to reconnect, and exits 0 once the node closes the
// socket. Anything else (a timeout, a close before the message) exits 1.
//
//   node --experimental-websocket scripts/test-image-client.mjs <base url> <token> <api key>

const [base, token, apiKey] = process.argv.slice(2);
const body = `image test ${Date.now()}`;
let gotMessage = false;
let toldToReconnect = false;

const giveUp = setTimeout(() => {
  console.log("timeout: no drain within 60 s");
  process.exit(1);
}, 60_000);

const ws = new WebSocket(`${base.replace(/^http/, "ws")}/ws?token=${encodeURIComponent(token)}`);
ws.onmessage = async (event) => {
  const frame = JSON.parse(event.data);
  if (frame.type === "welcome") {
    const res = await fetch(`${base}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ to: { users: [frame.user_id] }, category: "system", body }),
    });
    if (!res.ok) {
      console.log(`send: ${res.status} ${await res.text()}`);
      process.exit(1);
    }
  } else if (frame.type === "message" && frame.body === body) {
    gotMessage = true;
    console.log(`message ${frame.body}`);
  } else if (frame.type === "reconnect") {
    toldToReconnect = true;
    console.log(`reconnect ${frame.after_ms}`);
  }
};
ws.onerror = (event) => console.log(`error ${event.message ?? event.type}`);
ws.onclose = (event) => {
  clearTimeout(giveUp);
  console.log(`closed ${event.code}`);
  process.exit(gotMessage && toldToReconnect ? 0 : 1);
};
