#!/usr/bin/env python3
"""A plain-TCP to TLS bridge, for test clients that cannot speak TLS.

Accepts plain TCP connections on LISTEN and relays each one, byte for byte,
over a TLS connection to CONNECT, trusting only the CA in --ca and checking
the server's name (--server-name). scripts/autobahn.sh uses it to run the
Autobahn cases (kosoku has no TLS client) against the echo example's
wss:// port. Python standard library only.

    scripts/tls_bridge.py --connect 127.0.0.1:9443 --ca ca.pem [--listen 127.0.0.1:0]

Prints "LISTEN <port>" once it accepts connections. One thread, one
selector: a TLS socket is never used from two threads at once. When either
side ends its connection, what the other side still has to receive is
delivered, then both are closed (the Autobahn client waits for the server
to close first, and a close by the client ends the case anyway).
"""

import argparse
import selectors
import socket
import ssl
import sys

CHUNK = 256 * 1024
# Stop reading a side while this much waits for the other (back-pressure).
HIGH_WATER = 4 * 1024 * 1024


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


class Pair:
    """One client connection and its TLS connection to the server."""

    def __init__(self, bridge, plain, tls):
        self.bridge = bridge
        self.plain = plain
        self.tls = tls
        # Bytes waiting to be written to each socket.
        self.out = {plain: bytearray(), tls: bytearray()}
        self.other = {plain: tls, tls: plain}
        self.eof = False
        self.closed = False
        # Sockets taken out of the selector while they wait for nothing.
        self.parked = set()
        for s in (plain, tls):
            s.setblocking(False)
            bridge.sel.register(s, selectors.EVENT_READ, self)

    def interest(self, s):
        events = 0
        if not self.eof and len(self.out[self.other[s]]) < HIGH_WATER:
            events |= selectors.EVENT_READ
        if self.out[s]:
            events |= selectors.EVENT_WRITE
        if events and s in self.parked:
            self.parked.discard(s)
            self.bridge.sel.register(s, events, self)
        elif events:
            self.bridge.sel.modify(s, events, self)
        elif s not in self.parked:
            # A selector refuses an empty interest set: park it.
            self.parked.add(s)
            self.bridge.sel.unregister(s)

    def read(self, s):
        """Reads what `s` has (for TLS, also what OpenSSL holds decrypted)."""
        data = bytearray()
        while True:
            try:
                chunk = s.recv(CHUNK)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except (ConnectionError, ssl.SSLError, OSError) as e:
                print(f"tls_bridge: read: {e}", file=sys.stderr)
                chunk = b""
            if not chunk:
                self.eof = True
                break
            data += chunk
            if not (isinstance(s, ssl.SSLSocket) and s.pending()):
                break
        return data

    def write(self, s):
        buf = self.out[s]
        while buf:
            try:
                n = s.send(buf)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return
            except (ConnectionError, ssl.SSLError, OSError):
                buf.clear()
                self.eof = True
                return
            del buf[:n]

    def ready(self, s, events):
        if self.closed:
            # Both sockets were ready in the same turn; the first ended it.
            return
        if events & selectors.EVENT_READ and not self.eof:
            data = self.read(s)
            if data:
                self.out[self.other[s]] += data
                self.write(self.other[s])
        if events & selectors.EVENT_WRITE:
            self.write(s)
        if self.eof:
            self.close()
            return
        for x in (self.plain, self.tls):
            self.interest(x)

    def close(self):
        """Delivers what is pending (at most a few seconds), then closes both."""
        self.closed = True
        for s in (self.plain, self.tls):
            if s not in self.parked:
                try:
                    self.bridge.sel.unregister(s)
                except (KeyError, ValueError):
                    pass
        for s in (self.plain, self.tls):
            if self.out[s]:
                try:
                    s.settimeout(5)
                    s.sendall(self.out[s])
                except (OSError, ssl.SSLError):
                    pass
            try:
                s.close()
            except OSError:
                pass


class Bridge:
    def __init__(self, listen, connect, context, server_name):
        self.sel = selectors.DefaultSelector()
        self.connect = connect
        self.context = context
        self.server_name = server_name
        self.listener = socket.create_server(listen, backlog=128)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, None)

    def accept(self):
        try:
            plain, _ = self.listener.accept()
        except BlockingIOError:
            return
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            raw = socket.create_connection(self.connect, timeout=10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # The TLS handshake blocks (loopback: milliseconds).
            tls = self.context.wrap_socket(raw, server_hostname=self.server_name)
        except (OSError, ssl.SSLError) as e:
            print(f"tls_bridge: cannot reach {self.connect}: {e}", file=sys.stderr)
            plain.close()
            return
        Pair(self, plain, tls)

    def run(self):
        while True:
            for key, events in self.sel.select():
                if key.data is None:
                    self.accept()
                else:
                    try:
                        key.data.ready(key.fileobj, events)
                    except Exception as e:  # one pair's trouble must not end the bridge
                        print(f"tls_bridge: {e!r}", file=sys.stderr)
                        if not key.data.closed:
                            key.data.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="plain TCP address to accept on")
    ap.add_argument("--connect", required=True, help="the TLS server, HOST:PORT")
    ap.add_argument("--ca", required=True, help="PEM file of the CA to trust")
    ap.add_argument("--server-name", default="localhost", help="name the certificate must carry")
    args = ap.parse_args()
    context = ssl.create_default_context(cafile=args.ca)
    context.set_alpn_protocols(["http/1.1"])
    bridge = Bridge(address(args.listen), address(args.connect), context, args.server_name)
    print(f"LISTEN {bridge.listener.getsockname()[1]}", flush=True)
    bridge.run()


if __name__ == "__main__":
    main()
