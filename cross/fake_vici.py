#!/usr/bin/env python3
"""A scripted fake charon VICI peer on a Unix socket (python3 stdlib only).

Speaks the VICI wire format (see /work/shared/design/STRONGSWAN.md): every segment is a u32
big-endian length + payload; payload byte 0 is the packet type, types 0/3/4/7 carry a u8-length
name. Answers are, wherever possible, the real segments captured from charon in
tests/data/vici/*.bin; hand-built frames stand in for any that are missing.

    fake_vici.py --socket /tmp/x/charon.vici [--data tests/data/vici] [--script MODE]
                 [--sas FILE ...] [--push FILE ...] [--log requests.jsonl] [--max-conns N]

Behaviour in the default `normal` script:
  * CMD_REQUEST `version`, `stats`, `list-sas`, `list-conns`, `initiate`, `terminate`: the
    captured CMD_RESPONSE. `list-sas` / `list-conns` first stream every `list-sa` / `list-conn`
    EVENT (from --sas / --conns, default the captured ones) if the connection registered that
    event, like charon. Unknown commands get CMD_UNKNOWN.
  * EVENT_REGISTER / EVENT_UNREGISTER of a known event: EVENT_CONFIRM; unknown: EVENT_UNKNOWN.
    After a register, every --push segment whose event name matches is sent on that connection
    (e.g. --push tests/data/vici/ike-updown-down-dpd.bin to script a DPD failure).
Other --script modes, for robustness tests of the client:
  garbage    answer the first request with non-VICI bytes, then close
  stall      read requests, never answer (the client's deadline must fire)
  oversized  answer with a segment header claiming 16 MiB (> the 512 KiB VICI maximum)
  truncated  answer with half of a real segment, then close
  close      close every connection right after accept
  unknown    answer every command with CMD_UNKNOWN and every register with EVENT_UNKNOWN

Prints `ready <socket>` on stdout once listening. Every segment received is logged (one JSON
object per line) to --log if given. Stops on SIGTERM/SIGINT, or after --max-conns connections
have been served.
"""

import argparse
import fnmatch
import glob
import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading

CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT = 3, 4, 5, 6, 7
NAMED = {CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT}
TYPE_NAMES = {0: "CMD_REQUEST", 1: "CMD_RESPONSE", 2: "CMD_UNKNOWN", 3: "EVENT_REGISTER",
              4: "EVENT_UNREGISTER", 5: "EVENT_CONFIRM", 6: "EVENT_UNKNOWN", 7: "EVENT"}
MAX_SEGMENT = 512 * 1024

# Events charon knows (vici README); registering anything else gets EVENT_UNKNOWN.
KNOWN_EVENTS = {"list-sa", "list-pol", "list-conn", "list-cert", "list-authority", "control-log",
                "log", "ike-updown", "ike-rekey", "ike-update", "child-updown", "child-rekey",
                "alert"}

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "tests", "data", "vici")


# --- encoding -----------------------------------------------------------------------------------

def _name(n):
    b = n.encode() if isinstance(n, str) else n
    if len(b) > 255:
        raise ValueError("name too long")
    return bytes([len(b)]) + b


def _value(v):
    b = v.encode() if isinstance(v, str) else bytes(v)
    return struct.pack(">H", len(b)) + b


def encode_message(items):
    """Encode a dict (or list of pairs): str/bytes values are key-values, dicts are sections,
    lists are lists of strings."""
    pairs = items.items() if isinstance(items, dict) else items
    out = b""
    for k, v in pairs:
        if isinstance(v, (dict, tuple)) or (isinstance(v, list) and v and isinstance(v[0], tuple)):
            out += b"\x01" + _name(k) + encode_message(v) + b"\x02"
        elif isinstance(v, list):
            out += b"\x04" + _name(k) + b"".join(b"\x05" + _value(i) for i in v) + b"\x06"
        else:
            out += b"\x03" + _name(k) + _value(v)
    return out


def segment(ptype, name=None, message=b""):
    payload = bytes([ptype]) + (_name(name) if ptype in NAMED else b"") + message
    return struct.pack(">I", len(payload)) + payload


def segment_name(seg):
    """The name of a named segment (EVENT etc.), or None."""
    if len(seg) > 5 and seg[4] in NAMED:
        n = seg[5]
        return seg[6:6 + n].decode(errors="replace")
    return None


# --- hand-built stand-ins for captures that are missing -------------------------------------------

def _fallback_sa(name, uid, children):
    kids = {}
    for i, (child, if_id) in enumerate(children):
        c = {"name": child, "uniqueid": str(uid * 10 + i), "reqid": str(i + 1), "state": "INSTALLED",
             "mode": "TUNNEL", "protocol": "ESP", "encap": "yes", "bytes-in": "0", "packets-in": "0",
             "bytes-out": "0", "packets-out": "0", "install-time": "5", "local-ts": ["198.51.100.0/26"],
             "remote-ts": ["203.0.113.0/26"]}
        if if_id:
            c["if-id-in"] = if_id
            c["if-id-out"] = if_id
        kids[f"{child}-{uid * 10 + i}"] = c
    ike = {"uniqueid": str(uid), "version": "2", "state": "ESTABLISHED", "local-host": "192.0.2.1",
           "local-port": "4500", "remote-host": "192.0.2.2", "remote-port": "4500",
           "initiator": "yes", "established": "5", "tasks-active": [], "tasks-passive": [],
           "child-sas": kids}
    return segment(EVENT, "list-sa", encode_message({name: ike}))


FALLBACK = {
    "version-response.bin": segment(CMD_RESPONSE, message=encode_message(
        {"daemon": "charon", "version": "5.9.8", "sysname": "Linux", "release": "fake",
         "machine": "fake"})),
    "stats-response.bin": segment(CMD_RESPONSE, message=encode_message(
        {"uptime": {"running": "1 second", "since": "now"},
         "workers": {"total": "16", "idle": "7", "active": {"critical": "4", "high": "0",
                                                            "medium": "1", "low": "0"}},
         "queues": {"critical": "0", "high": "0", "medium": "0", "low": "0"},
         "scheduled": "0", "ikesas": {"total": "2", "half-open": "0"}})),
    "list-sas-response.bin": segment(CMD_RESPONSE),
    "list-conns-response.bin": segment(CMD_RESPONSE),
    "initiate-response-success.bin": segment(CMD_RESPONSE, message=encode_message({"success": "yes"})),
    "terminate-child-response.bin": segment(CMD_RESPONSE, message=encode_message(
        {"success": "yes", "matches": "1", "terminated": "1"})),
    "list-sa-con1.bin": _fallback_sa("con1", 1, [("con1", None)]),
    "list-sa-con2.bin": _fallback_sa("con2", 2, [("con2_1", "0000002a"), ("con2_2", "0000002b")]),
}


class Peer:
    def __init__(self, args):
        self.args = args
        self.data = args.data
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.sas = [self.load_path(p) for p in (args.sas if args.sas is not None
                                                else self.default_glob("list-sa-*.bin"))]
        self.conns = [self.load_path(p) for p in (args.conns if args.conns is not None
                                                  else self.default_glob("list-conn-*.bin"))]
        self.push = [self.load_path(p) for p in (args.push or [])]
        self.used_fallback = set()

    def default_glob(self, pattern):
        found = sorted(glob.glob(os.path.join(self.data, pattern)))
        if found:
            return found
        return sorted(k for k in FALLBACK if fnmatch.fnmatch(k, pattern))

    def load_path(self, path):
        if os.sep in path and os.path.exists(path):
            with open(path, "rb") as f:
                return f.read()
        return self.load(os.path.basename(path))

    def load(self, name):
        path = os.path.join(self.data, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                return f.read()
        if name in FALLBACK:
            self.used_fallback.add(name)
            return FALLBACK[name]
        raise FileNotFoundError(path)

    def record(self, **kw):
        if self.log:
            with self.log_lock:
                self.log.write(json.dumps(kw) + "\n")

    def response_for(self, command):
        name = {"version": "version-response.bin", "stats": "stats-response.bin",
                "list-sas": "list-sas-response.bin", "list-conns": "list-conns-response.bin",
                "initiate": "initiate-response-success.bin",
                "terminate": "terminate-child-response.bin"}.get(command)
        return self.load(name) if name else None


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        peer = self.server.peer
        script = peer.args.script
        sock = self.request
        registered = set()
        if script == "close":
            return
        while True:
            head = recv_exact(sock, 4)
            if head is None:
                return
            (length,) = struct.unpack(">I", head)
            if length == 0 or length > MAX_SEGMENT:
                peer.record(error="bad length from client", length=length)
                return
            payload = recv_exact(sock, length)
            if payload is None:
                return
            ptype = payload[0]
            name = None
            if ptype in NAMED and len(payload) > 1:
                name = payload[2:2 + payload[1]].decode(errors="replace")
            peer.record(type=TYPE_NAMES.get(ptype, ptype), name=name, length=length)

            if script == "stall":
                continue
            if script == "garbage":
                sock.sendall(b"\xde\xad\xbe\xefHTTP/1.0 400 nonsense\r\n\r\n" + bytes(range(256)))
                return
            if script == "oversized":
                sock.sendall(struct.pack(">I", 16 * 1024 * 1024) + b"\x01" + b"\x00" * 64)
                return
            if script == "truncated":
                whole = peer.load("version-response.bin")
                sock.sendall(whole[: len(whole) // 2])
                return

            if ptype == CMD_REQUEST:
                reply = None if script == "unknown" else peer.response_for(name)
                if reply is None:
                    sock.sendall(segment(CMD_UNKNOWN))
                    continue
                if name == "list-sas" and "list-sa" in registered:
                    for seg in peer.sas:
                        sock.sendall(seg)
                if name == "list-conns" and "list-conn" in registered:
                    for seg in peer.conns:
                        sock.sendall(seg)
                sock.sendall(reply)
            elif ptype == EVENT_REGISTER:
                if script == "unknown" or name not in KNOWN_EVENTS:
                    sock.sendall(segment(EVENT_UNKNOWN))
                    continue
                registered.add(name)
                sock.sendall(segment(EVENT_CONFIRM))
                for seg in peer.push:
                    if segment_name(seg) == name:
                        sock.sendall(seg)
            elif ptype == EVENT_UNREGISTER:
                registered.discard(name)
                sock.sendall(segment(EVENT_CONFIRM if name in KNOWN_EVENTS else EVENT_UNKNOWN))
            else:
                # charon drops a connection that sends a type it does not accept.
                peer.record(error="unexpected packet type from client", type=ptype)
                return


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on")
    ap.add_argument("--data", default=os.path.normpath(DEFAULT_DATA),
                    help="directory of captured segments (default tests/data/vici)")
    ap.add_argument("--script", default="normal",
                    choices=["normal", "garbage", "stall", "oversized", "truncated", "close",
                             "unknown"])
    ap.add_argument("--sas", nargs="*", help="list-sa EVENT segment files to stream for list-sas "
                    "(default: list-sa-*.bin in --data; give none for an empty list)")
    ap.add_argument("--conns", nargs="*", help="list-conn EVENT segment files for list-conns")
    ap.add_argument("--push", nargs="*", help="EVENT segment files sent after a matching register")
    ap.add_argument("--log", help="append one JSON line per received segment to this file")
    ap.add_argument("--max-conns", type=int, default=0, help="exit after N connections (0: never)")
    args = ap.parse_args(argv)

    peer = Peer(args)
    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    server = Server(args.socket, Handler)
    server.peer = peer
    # With --max-conns, server_close() waits for the served connections to finish.
    server.daemon_threads = not args.max_conns
    if peer.used_fallback:
        print("fake_vici: hand-built frames for missing captures: "
              + ", ".join(sorted(peer.used_fallback)), file=sys.stderr)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready {args.socket}", flush=True)
    try:
        if args.max_conns:
            for _ in range(args.max_conns):
                server.handle_request()
        else:
            server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
