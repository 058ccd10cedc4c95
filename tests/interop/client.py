"""An independent client (Python `websockets`) for wshub's interop test.

usage: client.py WS_BASE_URL USER PEER

A `wss://` base URL is verified against the CA file in $WSHUB_CA.

Connects as USER (offering permessage-deflate, as `websockets` does by
default, and checking the hub accepted it), waits for PEER's message (which
asks for an ACK), ACKs it, sends a message to PEER, checks that a JSON ping
gets a pong (and the ACK no error), sends itself a long message (compressed
both ways) and checks it comes back whole, and closes with 1000. Exits
non-zero, saying why, on any deviation.
"""

import json
import os
import socket
import ssl
import sys
import time

from websockets.sync.client import connect

TIMEOUT = 10


class TicketsFirst:
    """Wraps sockets like the SSLContext it holds, then reads the server's
    TLS 1.3 session tickets before handing the socket to `websockets`.

    Why: the sync client starts its reader thread before it writes the HTTP
    request, and Python's `ssl` does not serialize the two threads' use of
    one OpenSSL connection. When the tickets (sent by the server right after
    the handshake) were read at the moment the request was written, the
    request never reached the socket: the client waited for a response to
    a request it had not sent (`ss` showed only the handshake's bytes sent),
    about once in a few hundred runs on a loaded machine.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def wrap_socket(self, sock, server_hostname=None):
        tls = self.context.wrap_socket(sock, server_hostname=server_hostname)
        timeout = tls.gettimeout()
        deadline = time.monotonic() + TIMEOUT
        tls.settimeout(0.05)
        while not (tls.session and tls.session.has_ticket) and time.monotonic() < deadline:
            try:
                # Nothing but tickets comes before the request is sent.
                if not tls.recv(1):
                    break
            except (socket.timeout, ssl.SSLWantReadError):
                pass
        tls.settimeout(timeout)
        return tls


def main() -> int:
    base, user, peer = sys.argv[1:4]
    url = f"{base}/ws?user_id={user}&client_id={user}-dev"
    tls = None
    if base.startswith("wss://"):
        tls = TicketsFirst(ssl.create_default_context(cafile=os.environ["WSHUB_CA"]))
    with connect(url, ssl=tls, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert extensions.startswith("permessage-deflate"), f"not negotiated: {extensions!r}"
        print(f"connected with {extensions}", flush=True)
        while True:
            msg = json.loads(ws.recv(timeout=TIMEOUT))
            if msg.get("message_type") == "text":
                break
        assert msg.get("sender") == peer, f"sender should be {peer}: {msg}"
        assert msg.get("content") == f"hello {user}", f"unexpected content: {msg}"
        assert msg.get("require_ack") and msg.get("message_id"), f"no ACK asked: {msg}"
        ws.send(json.dumps({"message_type": "ack", "message_id": msg["message_id"]}))
        ws.send(
            json.dumps(
                {
                    "message_type": "text",
                    "message_id": f"{user}-1",
                    "receiver": peer,
                    "content": f"hello {peer} from {user}",
                }
            )
        )
        # The next thing the hub says must be the pong: an `error` here would
        # mean it refused the ACK or the message.
        ws.send(json.dumps({"message_type": "ping"}))
        reply = json.loads(ws.recv(timeout=TIMEOUT))
        assert reply.get("message_type") == "pong", f"expected pong, got {reply}"
        long = "all work and no play makes jack a dull boy. " * 100
        ws.send(json.dumps({"message_type": "text", "receiver": user, "content": long}))
        echo = json.loads(ws.recv(timeout=TIMEOUT))
        assert echo.get("content") == long, f"long message came back as {echo}"
        ws.close(code=1000, reason="done")
        assert ws.close_code == 1000, f"server closed with {ws.close_code}"
    print("closed 1000", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
