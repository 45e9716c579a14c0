#!/usr/bin/env python3
"""Dev-only tool: capture real VICI segments from a charon socket (python3 stdlib only).

Every saved .bin file holds exactly one complete segment as it was on the wire:
u32 big-endian length + payload (packet type byte, optional name, message).

  vici_capture.py cmd URI OUT.bin COMMAND [key=value ...] [--stream EVENT --spool DIR]
      Send one command; save its CMD_RESPONSE (or CMD_UNKNOWN) to OUT.bin. With --stream,
      register EVENT first (its EVENT_CONFIRM / EVENT_UNKNOWN goes to DIR/00000-confirm.bin)
      and save every streamed EVENT to DIR/NNNNN-event-EVENT.bin.
      Values: key=value (string), key=a,b (only with key[]=a,b: a list).
  vici_capture.py register URI OUT.bin EVENT
      Register EVENT on a fresh connection and save the reply (EVENT_CONFIRM or EVENT_UNKNOWN).
  vici_capture.py listen URI DIR EVENT [EVENT ...]
      Register the events, touch DIR/ready, then save every EVENT as DIR/NNNNN-event-NAME.bin
      until SIGTERM/SIGINT.
  vici_capture.py pick DIR OUT.bin [--name EVENT] [--nth N | --last] [PRED ...]
      Copy the Nth (default first) spooled segment whose decoded message matches all PREDs.
      PRED: path=value | path~substring | path? (exists) | !path (absent); a path is
      dot-separated section/key names, '*' matches any one name; list items count as values.
  vici_capture.py dump FILE|DIR ...
      Print segments decoded (one block per file).
  vici_capture.py seq DIR [--skip SUBSTRING ...]
      One line per spooled EVENT in arrival order: its name and what tells it apart (alert
      type and IKE_SA, log level and msg, updown up/down and IKE_SA); repeats folded. Log
      messages containing a SUBSTRING are left out.
"""
import glob
import os
import signal
import socket
import struct
import sys

# packet types
CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT = 3, 4, 5, 6, 7
TYPE_NAMES = {0: "CMD_REQUEST", 1: "CMD_RESPONSE", 2: "CMD_UNKNOWN", 3: "EVENT_REGISTER",
              4: "EVENT_UNREGISTER", 5: "EVENT_CONFIRM", 6: "EVENT_UNKNOWN", 7: "EVENT"}
NAMED = (CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT)
# message element types
SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM, LIST_END = 1, 2, 3, 4, 5, 6
MAX_SEGMENT = 512 * 1024


class ViciError(Exception):
    pass


class Section(list):
    """A decoded section: a list of (key, value) pairs (a plain list is a VICI list)."""


# ------------------------------------------------------------------ encoding

def _name(n):
    b = n.encode("ascii")
    if not 0 < len(b) < 256:
        raise ViciError("bad name %r" % n)
    return bytes([len(b)]) + b


def encode_message(items):
    """items: list of (key, value); value is str, list of str, or list of (key, value) pairs
    given as a dict (a section)."""
    out = bytearray()
    for key, value in items:
        if isinstance(value, dict):
            out += bytes([SECTION_START]) + _name(key)
            out += encode_message(list(value.items()))
            out += bytes([SECTION_END])
        elif isinstance(value, list):
            out += bytes([LIST_START]) + _name(key)
            for v in value:
                b = v.encode()
                out += bytes([LIST_ITEM]) + struct.pack(">H", len(b)) + b
            out += bytes([LIST_END])
        else:
            b = str(value).encode()
            out += bytes([KEY_VALUE]) + _name(key) + struct.pack(">H", len(b)) + b
    return bytes(out)


def encode_packet(ptype, name=None, message=b""):
    payload = bytes([ptype])
    if ptype in NAMED:
        payload += _name(name)
    payload += message
    return struct.pack(">I", len(payload)) + payload


# ------------------------------------------------------------------ decoding

def decode_packet(seg):
    """seg: full segment (length prefix included). Returns (type, name, message-tree)."""
    if len(seg) < 5:
        raise ViciError("short segment")
    (length,) = struct.unpack(">I", seg[:4])
    if length != len(seg) - 4:
        raise ViciError("length prefix %d != payload %d" % (length, len(seg) - 4))
    ptype = seg[4]
    pos = 5
    name = None
    if ptype in NAMED:
        n = seg[pos]
        name = seg[pos + 1:pos + 1 + n].decode("ascii")
        pos += 1 + n
    return ptype, name, decode_message(seg[pos:])


def decode_message(buf):
    """Returns a list of (key, value): value is str, list of str, or a nested such list."""
    stack = [Section()]
    names = []
    cur_list = None
    pos = 0
    while pos < len(buf):
        t = buf[pos]
        pos += 1
        if t in (SECTION_START, KEY_VALUE, LIST_START):
            n = buf[pos]
            key = buf[pos + 1:pos + 1 + n].decode("ascii", "replace")
            pos += 1 + n
        if t == SECTION_START:
            new = Section()
            stack[-1].append((key, new))
            stack.append(new)
            names.append(key)
        elif t == SECTION_END:
            if len(stack) < 2:
                raise ViciError("unbalanced SECTION_END")
            stack.pop()
            names.pop()
        elif t == KEY_VALUE:
            (vl,) = struct.unpack(">H", buf[pos:pos + 2])
            value = buf[pos + 2:pos + 2 + vl].decode("utf-8", "replace")
            pos += 2 + vl
            stack[-1].append((key, value))
        elif t == LIST_START:
            cur_list = []
            stack[-1].append((key, cur_list))
        elif t == LIST_ITEM:
            (vl,) = struct.unpack(">H", buf[pos:pos + 2])
            cur_list.append(buf[pos + 2:pos + 2 + vl].decode("utf-8", "replace"))
            pos += 2 + vl
        elif t == LIST_END:
            cur_list = None
        else:
            raise ViciError("unknown element type %d at %d" % (t, pos - 1))
    if len(stack) != 1:
        raise ViciError("unterminated section")
    return stack[0]


def is_list_of_str(v):
    return isinstance(v, list) and not isinstance(v, Section)


def render(tree, indent=0):
    lines = []
    pad = "  " * indent
    for key, value in tree:
        if isinstance(value, str):
            lines.append("%s%s = %s" % (pad, key, value))
        elif is_list_of_str(value):
            lines.append("%s%s = [%s]" % (pad, key, ", ".join(value)))
        else:
            lines.append("%s%s {" % (pad, key))
            lines.extend(render(value, indent + 1))
            lines.append("%s}" % pad)
    return lines


# ------------------------------------------------------------------ socket

def connect(uri):
    if not uri.startswith("unix://"):
        raise ViciError("only unix:// URIs are supported, got %r" % uri)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(uri[len("unix://"):])
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ViciError("connection closed by charon")
        buf += chunk
    return bytes(buf)


def recv_segment(s):
    head = recv_exact(s, 4)
    (length,) = struct.unpack(">I", head)
    if length == 0 or length > MAX_SEGMENT:
        raise ViciError("bad segment length %d" % length)
    return head + recv_exact(s, length)


def write_file(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Spool:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        existing = glob.glob(os.path.join(directory, "[0-9]" * 5 + "-*.bin"))
        self.n = max([int(os.path.basename(p)[:5]) for p in existing] + [0])

    def save(self, seg, label):
        self.n += 1
        path = os.path.join(self.dir, "%05d-%s.bin" % (self.n, label))
        write_file(path, seg)
        return path


def register(s, event, spool=None):
    """Register; returns the confirm/unknown segment. Events arriving meanwhile are spooled."""
    s.sendall(encode_packet(EVENT_REGISTER, event))
    while True:
        seg = recv_segment(s)
        t = seg[4]
        if t in (EVENT_CONFIRM, EVENT_UNKNOWN):
            return seg
        if t == EVENT and spool:
            spool.save(seg, "event-" + decode_packet(seg)[1])
        elif t != EVENT:
            raise ViciError("unexpected %s while registering" % TYPE_NAMES.get(t, t))


# ------------------------------------------------------------------ commands

def parse_kv(args):
    items = []
    for a in args:
        if "=" not in a:
            raise ViciError("argument %r is not key=value" % a)
        k, v = a.split("=", 1)
        if k.endswith("[]"):
            items.append((k[:-2], [x for x in v.split(",") if x]))
        else:
            items.append((k, v))
    return items


def cmd_cmd(argv):
    stream = spool_dir = None
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] == "--stream":
            stream = argv[i + 1]; i += 2
        elif argv[i] == "--spool":
            spool_dir = argv[i + 1]; i += 2
        else:
            rest.append(argv[i]); i += 1
    if len(rest) < 3:
        raise ViciError("usage: cmd URI OUT.bin COMMAND [key=value ...] [--stream EVENT --spool DIR]")
    uri, out, command = rest[:3]
    message = encode_message(parse_kv(rest[3:]))
    if stream and not spool_dir:
        raise ViciError("--stream needs --spool DIR")
    spool = Spool(spool_dir) if spool_dir else None
    s = connect(uri)
    if stream:
        conf = register(s, stream, spool)
        write_file(os.path.join(spool_dir, "00000-confirm.bin"), conf)
        if conf[4] != EVENT_CONFIRM:
            raise ViciError("stream event %r unknown to charon" % stream)
    s.sendall(encode_packet(CMD_REQUEST, command, message))
    events = 0
    while True:
        seg = recv_segment(s)
        t = seg[4]
        if t == EVENT:
            spool.save(seg, "event-" + decode_packet(seg)[1]) if spool else None
            events += 1
            continue
        if t in (CMD_RESPONSE, CMD_UNKNOWN):
            write_file(out, seg)
            break
        raise ViciError("unexpected %s" % TYPE_NAMES.get(t, t))
    if stream:
        s.sendall(encode_packet(EVENT_UNREGISTER, stream))
        while recv_segment(s)[4] == EVENT:
            pass
    s.close()
    ptype, _, tree = decode_packet(seg)
    summary = " ".join("%s=%s" % (k, v) for k, v in tree if isinstance(v, str))
    print("%s: %s %s (%d streamed events)" % (out, TYPE_NAMES[ptype], summary, events))


def cmd_register(argv):
    if len(argv) != 3:
        raise ViciError("usage: register URI OUT.bin EVENT")
    uri, out, event = argv
    s = connect(uri)
    seg = register(s, event)
    write_file(out, seg)
    s.close()
    print("%s: %s" % (out, TYPE_NAMES[seg[4]]))


def cmd_listen(argv):
    if len(argv) < 3:
        raise ViciError("usage: listen URI DIR EVENT [EVENT ...]")
    uri, directory, events = argv[0], argv[1], argv[2:]
    spool = Spool(directory)
    stop = []

    def on_signal(signum, frame):
        stop.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    s = connect(uri)
    for ev in events:
        if register(s, ev, spool)[4] != EVENT_CONFIRM:
            raise ViciError("event %r unknown to charon" % ev)
    s.settimeout(None)
    write_file(os.path.join(directory, "ready"), b"")
    try:
        while True:
            seg = recv_segment(s)
            if seg[4] == EVENT:
                spool.save(seg, "event-" + decode_packet(seg)[1])
    except KeyboardInterrupt:
        pass
    s.close()


def lookup(tree, path):
    """All values at path (list of names, '*' wildcard); list items are flattened."""
    if not path:
        return []
    head, rest = path[0], path[1:]
    found = []
    for key, value in tree:
        if head != "*" and key != head:
            continue
        if not rest:
            if isinstance(value, str):
                found.append(value)
            elif is_list_of_str(value):
                found.extend(value) if value else found.append("")
            else:
                found.append("")  # a section: exists
        elif isinstance(value, Section):
            found.extend(lookup(value, rest))
    return found


def matches(tree, pred):
    if pred.startswith("!"):
        return not lookup(tree, pred[1:].split("."))
    if pred.endswith("?"):
        return bool(lookup(tree, pred[:-1].split(".")))
    for op in ("=", "~"):
        if op in pred:
            path, want = pred.split(op, 1)
            vals = lookup(tree, path.split("."))
            if op == "=":
                return want in vals
            return any(want in v for v in vals)
    raise ViciError("bad predicate %r" % pred)


def cmd_pick(argv):
    if len(argv) < 2:
        raise ViciError("usage: pick DIR OUT.bin [--name EVENT] [--nth N | --last] [PRED ...]")
    directory, out = argv[0], argv[1]
    name = None
    nth = 1
    last = False
    preds = []
    i = 2
    while i < len(argv):
        if argv[i] == "--name":
            name = argv[i + 1]; i += 2
        elif argv[i] == "--nth":
            nth = int(argv[i + 1]); i += 2
        elif argv[i] == "--last":
            last = True; i += 1
        else:
            preds.append(argv[i]); i += 1
    hits = []
    for path in sorted(glob.glob(os.path.join(directory, "[0-9]" * 5 + "-*.bin"))):
        with open(path, "rb") as f:
            seg = f.read()
        ptype, pname, tree = decode_packet(seg)
        if name is not None and pname != name:
            continue
        if all(matches(tree, p) for p in preds):
            hits.append((path, seg))
    if not hits or (not last and len(hits) < nth):
        sys.stderr.write("pick: no match in %s for name=%s %s\n" % (directory, name, " ".join(preds)))
        sys.exit(1)
    path, seg = hits[-1] if last else hits[nth - 1]
    write_file(out, seg)
    print("%s <- %s" % (out, os.path.basename(path)))


def cmd_dump(argv):
    files = []
    for a in argv:
        if os.path.isdir(a):
            files.extend(sorted(glob.glob(os.path.join(a, "*.bin"))))
        else:
            files.append(a)
    for path in files:
        with open(path, "rb") as f:
            seg = f.read()
        ptype, name, tree = decode_packet(seg)
        print("=== %s (%d bytes): %s%s" % (os.path.basename(path), len(seg), TYPE_NAMES[ptype],
                                         " " + name if name else ""))
        for line in render(tree, 1):
            print(line)


def event_summary(name, tree):
    def ike_names(sub):
        return ",".join(k for k, v in sub if isinstance(v, Section))
    fields = dict((k, v) for k, v in tree if isinstance(v, str))
    if name == "alert":
        sas = [v for k, v in tree if k == "ike-sa" and isinstance(v, Section)]
        return "alert %s (ike-sa %s)" % (fields.get("type", "?"), ike_names(sas[0]) if sas else "-")
    if name in ("log", "control-log"):
        return "%s %s: %s" % (name, fields.get("level", "?"), fields.get("msg", ""))
    if name in ("ike-updown", "child-updown"):
        return "%s %s (%s)" % (name, "up" if fields.get("up") == "yes" else "down", ike_names(tree))
    return name


def cmd_seq(argv):
    if not argv:
        raise ViciError("usage: seq DIR [--skip SUBSTRING ...]")
    directory, skips = argv[0], []
    i = 1
    while i < len(argv):
        if argv[i] == "--skip" and i + 1 < len(argv):
            skips.append(argv[i + 1]); i += 2
        else:
            raise ViciError("bad argument %r" % argv[i])
    last, count = None, 0
    lines = []
    for path in sorted(glob.glob(os.path.join(directory, "[0-9]" * 5 + "-event-*.bin"))):
        with open(path, "rb") as f:
            ptype, name, tree = decode_packet(f.read())
        line = event_summary(name, tree)
        if name == "log" and any(s in line for s in skips):
            continue
        if line == last:
            count += 1
            continue
        if last is not None:
            lines.append(last + (" (x%d)" % count if count > 1 else ""))
        last, count = line, 1
    if last is not None:
        lines.append(last + (" (x%d)" % count if count > 1 else ""))
    for line in lines:
        print(line)


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    handlers = {"cmd": cmd_cmd, "register": cmd_register, "listen": cmd_listen,
                "pick": cmd_pick, "dump": cmd_dump, "seq": cmd_seq}
    h = handlers.get(sys.argv[1])
    if not h:
        sys.stderr.write("unknown subcommand %r\n" % sys.argv[1])
        return 2
    try:
        h(sys.argv[2:])
    except (ViciError, OSError) as e:
        sys.stderr.write("vici_capture: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
