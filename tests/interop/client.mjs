// An independent client (Node `ws`) for wshub's interop test.
//
// usage: node client.mjs WS_BASE_URL USER PEER
//
// A `wss://` base URL is verified against the CA file in $WSHUB_CA.
//
// Connects as USER with permessage-deflate (every message compressed, and
// the hub must accept the offer), waits for PEER's message (which asks for an
// ACK), ACKs it, sends a message to PEER, checks that a JSON ping gets a pong
// (and the ACK no error), sends itself a long message and checks it comes
// back whole, and closes with 1000. Exits non-zero, saying why, on any
// deviation.
import { readFileSync } from "node:fs";
import WebSocket from "ws";

const [base, user, peer] = process.argv.slice(2);
const fail = (why) => {
  console.error(`client.mjs: ${why}`);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 10_000).unref();

const options = base.startsWith("wss://") ? { ca: readFileSync(process.env.WSHUB_CA) } : {};
const ws = new WebSocket(`${base}/ws?user_id=${user}&client_id=${user}-dev`, {
  ...options,
  perMessageDeflate: { threshold: 0 },
});
const long = "all work and no play makes jack a dull boy. ".repeat(100);
let state = "wait-text";
ws.on("open", () => {
  if (!ws.extensions.startsWith("permessage-deflate")) {
    fail(`permessage-deflate not negotiated: ${JSON.stringify(ws.extensions)}`);
  }
  console.log(`connected with ${ws.extensions}`);
});
ws.on("error", (e) => fail(`socket error: ${e.message}`));
ws.on("message", (data, isBinary) => {
  if (isBinary) fail("unexpected binary message");
  const msg = JSON.parse(data.toString());
  if (state === "wait-text") {
    if (msg.message_type !== "text") return;
    if (msg.sender !== peer) fail(`sender should be ${peer}: ${data}`);
    if (msg.content !== `hello ${user}`) fail(`unexpected content: ${data}`);
    if (!msg.require_ack || !msg.message_id) fail(`no ACK asked: ${data}`);
    ws.send(JSON.stringify({ message_type: "ack", message_id: msg.message_id }));
    ws.send(
      JSON.stringify({
        message_type: "text",
        message_id: `${user}-1`,
        receiver: peer,
        content: `hello ${peer} from ${user}`,
      }),
    );
    // The next thing the hub says must be the pong: an `error` here would
    // mean it refused the ACK or the message.
    ws.send(JSON.stringify({ message_type: "ping" }));
    state = "wait-pong";
  } else if (state === "wait-pong") {
    if (msg.message_type !== "pong") fail(`expected pong, got ${data}`);
    state = "wait-long";
    ws.send(JSON.stringify({ message_type: "text", receiver: user, content: long }));
  } else if (state === "wait-long") {
    if (msg.content !== long) fail(`long message came back as ${data}`);
    state = "closing";
    ws.close(1000, "done");
  } else {
    fail(`unexpected message while closing: ${data}`);
  }
});
ws.on("close", (code) => {
  if (state !== "closing") fail(`closed early (${code}) in state ${state}`);
  if (code !== 1000) fail(`server closed with ${code}`);
  console.log("closed 1000");
  process.exit(0);
});
