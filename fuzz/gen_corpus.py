#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/corpus/ (run from the repo root).

Seeds are small valid (or nearly valid) inputs of each target's format;
the fuzzers mutate from there. Documents come from examples/ and the
schema fixtures; binary formats are built here by hand from their
documented layouts, so this file also shows what each target's input is.
"""
import glob, json, os, shutil, struct, zlib

OUT = "fuzz/corpus"


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- schema: HCS documents -------------------------------------------------
for p in sorted(glob.glob("examples/*.json")) + sorted(
    glob.glob("crates/hcs-schema/tests/fixtures/*.json")
):
    with open(p, "rb") as f:
        raw = f.read()
    # Compact JSON: smaller inputs fuzz faster.
    try:
        raw = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    except ValueError:
        pass
    put("schema", os.path.basename(p), raw)

# ---- monitor_wire: [fds][len u16][packet = flags byte + JSON chunk] ---------
def packets(msg, chunk=None, fds=0):
    body = json.dumps(msg, separators=(",", ":")).encode()
    chunk = chunk or len(body)
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    out = b""
    for i, part in enumerate(parts):
        more = 1 if i + 1 < len(parts) else 0
        pkt = bytes([more]) + part
        out += bytes([fds if i == 0 else 0]) + struct.pack("<H", len(pkt)) + pkt
    return out


doc = json.dumps({"SchemaVersion": {"Major": 2, "Minor": 1}, "Container": {}})
requests = [
    {"id": 1, "request": {"Hello": {"version": 1, "kind": "Handle", "client_pid": 42}}},
    {"id": 2, "request": {"Create": {"version": 1, "namespace": "default", "id": "c1",
                                     "document": doc, "client_pid": 42}}},
    {"id": 3, "request": {"Start": {"options": None}}},
    {"id": 4, "request": {"GetProperties": {"query": "{\"PropertyTypes\":[\"Statistics\"]}"}}},
    {"id": 5, "request": "WaitForExit"},
    {"id": 6, "request": {"SignalProcess": {"process": {"pid": 7, "token": 9},
                                            "options": "{\"Signal\":15}"}}},
    {"id": 7, "request": {"CreateProcess": {"parameters": "{\"CommandLine\":\"sh\"}"}}},
]
for i, r in enumerate(requests):
    put("monitor_wire", f"request-{i}", packets(r))
put("monitor_wire", "request-split", packets(requests[1], chunk=16))
put("monitor_wire", "request-with-fds", packets(requests[6], fds=3))
# More descriptors than a message may carry (MAX_FDS is 8): these once
# leaked in the receiver.
put("monitor_wire", "too-many-fds", packets(requests[0], fds=12))
put("monitor_wire", "reply-response", packets(
    {"Response": {"id": 3, "outcome": {"hresult": 0, "document": None, "process": None}}}))
put("monitor_wire", "reply-event", packets(
    {"Event": {"SystemExited": {"status": "{\"Status\":0}"}}}))
put("monitor_wire", "two-messages", packets(requests[0]) + packets(requests[2]))

# ---- agent_protocol: frames ------------------------------------------------
def frame(ty, payload, req=1, version=1):
    return b"HCSA" + struct.pack("<HHQII", version, ty, req, len(payload), 0) + payload


def bstr(b):
    return struct.pack("<I", len(b)) + b


def blist(items):
    return struct.pack("<I", len(items)) + b"".join(bstr(i) for i in items)


hello = frame(0x0001, struct.pack("<IH", 1, 1) + bstr(b"hcs-monitor"), req=0)
create = frame(0x0002,
               blist([b"/bin/sh", b"-c", b"echo hi"]) + blist([b"PATH=/bin", b"TERM=xterm"])
               + bstr(b"/") + b"\x01" + struct.pack("<II", 0, 0)
               + b"\x01" + struct.pack("<HH", 24, 80)
               + b"\x01" + struct.pack("<I", 1000) + b"\x01" + struct.pack("<I", 1001)
               + b"\x00", req=2)
create_name = frame(0x0002, blist([b"ls"]) + blist([]) + bstr(b"") + b"\x02" + bstr(b"nobody")
                    + b"\x00" + b"\x00" + b"\x01" + struct.pack("<I", 5) + b"\x00", req=3)
entry = (struct.pack("<I", 1) + bstr(b"/sbin/init") + struct.pack("<QQQQQQ", 1, 2, 3, 4, 5, 6))
put("agent_protocol", "hello", hello)
put("agent_protocol", "create-process", create)
put("agent_protocol", "create-process-named-user", create_name)
put("agent_protocol", "resize", frame(0x0003, struct.pack("<IHH", 7, 50, 132)))
put("agent_protocol", "signal", frame(0x0004, struct.pack("<II", 7, 15)))
put("agent_protocol", "wait", frame(0x0005, struct.pack("<I", 7)))
put("agent_protocol", "process-list", frame(0x0006, b""))
put("agent_protocol", "shutdown", frame(0x0007, b"\x01"))
put("agent_protocol", "hello-reply", frame(0x8001, struct.pack("<H", 1) + bstr(b"hcs-agent")))
put("agent_protocol", "process-created", frame(0x8002, struct.pack("<I", 7)))
put("agent_protocol", "ok", frame(0x8003, b""))
put("agent_protocol", "process-exited", frame(0x8005, struct.pack("<III", 7, 143, 15)))
put("agent_protocol", "process-list-reply", frame(0x8006, struct.pack("<I", 1) + entry))
put("agent_protocol", "error", frame(0x80FF, struct.pack("<I", 0x80070490) + bstr(b"no such process")))
put("agent_protocol", "stream", hello + create + frame(0x0005, struct.pack("<I", 7), req=4))

# ---- virtio: [device][flags][next_avail][next_used] + guest memory image ----
QSTRIDE = 0x400


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


NEXT, WRITE = 1, 2


def image(queues, data):
    """queues: {k: [chain, ...]} with chain = [(addr, len, writable)];
    data: {addr: bytes}."""
    mem = bytearray(0x3000)
    for k, chains in queues.items():
        base = k * QSTRIDE
        i = 0
        heads = []
        for chain in chains:
            heads.append(i)
            for j, (addr, length, w) in enumerate(chain):
                fl = (WRITE if w else 0) | (NEXT if j + 1 < len(chain) else 0)
                mem[base + 16 * i : base + 16 * i + 16] = desc(addr, length, fl, i + 1)
                i += 1
        avail = struct.pack("<HH", 0, len(heads)) + b"".join(struct.pack("<H", h) for h in heads)
        mem[base + 0x100 : base + 0x100 + len(avail)] = avail
    for addr, b in data.items():
        if len(mem) < addr + len(b):
            mem.extend(bytes(addr + len(b) - len(mem)))
        mem[addr : addr + len(b)] = b
    return bytes(mem)


def virtio(device, flags, mem):
    return bytes([device, flags]) + struct.pack("<HH", 0, 0) + mem


# The image starts at guest address 0 (after the 6-byte prefix).
blk_read = image({0: [[(0x3000, 16, False), (0x3100, 512, True), (0x3400, 1, True)]]},
                 {0x3000: struct.pack("<IIQ", 0, 0, 1)})
blk_write = image({0: [[(0x3000, 16, False), (0x3100, 512, False), (0x3400, 1, True)],
                       [(0x3010, 16, False), (0x3401, 1, True)],
                       [(0x3020, 16, False), (0x3500, 20, True), (0x3402, 1, True)]]},
                  {0x3000: struct.pack("<IIQ", 1, 0, 2), 0x3010: struct.pack("<IIQ", 4, 0, 0),
                   0x3020: struct.pack("<IIQ", 8, 0, 0), 0x3100: b"A" * 512})
put("virtio", "blk-read", virtio(0, 0, blk_read))
put("virtio", "blk-write-flush-id", virtio(0, 1, blk_write))


def vsock_hdr(src_cid, dst_cid, src_port, dst_port, length, op, flags=0, buf_alloc=65536, fwd=0):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, src_port, dst_port, length, 1, op,
                       flags, buf_alloc, fwd)


req = vsock_hdr(3, 2, 5000, 1024, 0, 1)
rw = vsock_hdr(3, 2, 5000, 1024, 5, 5) + b"hello"
rst = vsock_hdr(3, 2, 5001, 9999, 0, 1)
vs = image({0: [[(0x3800, 44, True)], [(0x3900, 44 + 4096, True)]],
            1: [[(0x3000, 44, False)], [(0x3100, 44, False), (0x312c, 5, False)],
                [(0x3200, 44, False)]]},
           {0x3000: req, 0x3100: rw, 0x3200: rst})
put("virtio", "vsock-connect-send", virtio(1, 0, vs))

eth = bytes(12) + bytes.fromhex("02155d000001" "02155d000002" "88b5") + b"payload"
net = image({0: [[(0x3800, 2048, True)]], 1: [[(0x3000, len(eth), False)]]}, {0x3000: eth})
# A host frame at the end of memory (the last 4 KiB of the 64 KiB image).
net = net + bytes(0xF000 - len(net)) + struct.pack("<H", 20) + bytes.fromhex("02155d000002") * 2 + b"\x88\xb5" + b"xxxxxx"
put("virtio", "net-tx-rx", virtio(2, 0, net))

# ---- snapshot: [fix] + state file -----------------------------------------
def section(name, payload, version=1, encoding=1):
    n = name.encode().ljust(32, b"\0")
    return n + struct.pack("<IHHQ", version, encoding, 0, len(payload)) + payload


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pstr(s):
    return varint(len(s)) + s


def state(sections):
    body = b"".join(sections)
    total = 48 + len(body)
    h = b"HCSSTATE" + struct.pack("<IIIIQI", 1, 0, len(sections), 0, total, zlib.crc32(body)) + bytes(8)
    h += struct.pack("<I", zlib.crc32(h))
    return h + body


machine = varint(256) + b"\x01" + varint(1) + b"\x00" + varint(2) + pstr(b"vm.state.memory")
put("snapshot", "machine-only", b"\x00" + state([section("machine", machine)]))
put("snapshot", "mixed-encodings", b"\x00" + state([
    section("machine", machine),
    section("raw.blob", b"\x01\x02\x03", encoding=0),
    section("json.doc", b"{\"a\":1}", encoding=2),
    section("memory.layout", varint(1) + varint(0) + varint(0x10000000) + varint(0)),
]))
put("snapshot", "empty", b"\x00" + state([]))
put("snapshot", "fixed-up", b"\x03" + state([section("kvm.vcpus", varint(1) + bytes(64))]))

# ---- oci_spec: config.json -------------------------------------------------
with open("fuzz/seeds/runc-config.json") as f:
    spec = json.load(f)
put("oci_spec", "runc-default.json", json.dumps(spec, separators=(",", ":")))
s2 = json.loads(json.dumps(spec))
s2["root"]["readonly"] = False
s2["mounts"].append({"destination": "/data", "type": "bind", "source": "rootfs",
                     "options": ["rbind", "ro"]})
s2["linux"]["resources"] = {"memory": {"limit": 268435456}, "cpu": {"shares": 512, "quota": 50000,
                            "period": 100000}, "pids": {"limit": 64},
                            "devices": [{"allow": False, "access": "rwm"}]}
s2["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
s2["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
s2["linux"]["namespaces"].append({"type": "user"})
s2["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
s2["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                          "syscalls": [{"names": ["read", "write", "exit"], "action": "SCMP_ACT_ALLOW"},
                                       {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                                        "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}
s2["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "hard": 100, "soft": 50})
s2["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 18}
s2["hooks"] = {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]}
s2["annotations"] = {"org.example": "x"}
put("oci_spec", "runc-extended.json", json.dumps(s2, separators=(",", ":")))
