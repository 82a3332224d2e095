#!/usr/bin/env python3
"""Hostile-input driver for scripts/bench-abuse.sh (Python 3, stdlib only).

Attacks one p2pmon node on 127.60.0.1:5000 from source addresses in
127.61.0.0/16 (each phase its own /24s), samples the node's /proc status
throughout, then reads the node's JSON stdout and its stderr and prints a
summary table. Every loop is bounded in count and in time. Traffic goes to
loopback only.

    abuse.py --pid PID --out DIR [--target 127.60.0.1] [--honest 127.60.0.2]
"""

import argparse
import datetime
import json
import os
import random
import re
import resource
import selectors
import socket
import struct
import sys
import threading
import time

PORT = 5000


def src(third, fourth):
    return f"127.61.{third}.{fourth}"


def sources(first_third, count):
    """`count` distinct source addresses starting at 127.61.first_third.1."""
    out = []
    for i in range(count):
        out.append(src(first_third + i // 250, 1 + i % 250))
    return out


def connect(source, target, timeout=3.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect((target, PORT))
    return s


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def status_line(**over):
    msg = {"v": 1, "type": "status", "node": "attacker", "port": 5000,
           "boot": int(time.time() * 1000), "seq": 0, "ts": int(time.time() * 1000),
           "interval_ms": 1000, "cpu": 1.0, "memory": 2.0}
    msg.update(over)
    return json.dumps(msg)


def tls_client_hello():
    body = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
    sni = b"localhost"
    ext_sni = struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    body += struct.pack("!H", len(ext_sni)) + ext_sni
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def garbage_payloads():
    """(name, bytes, close_after) of every malformed first frame we send."""
    half = status_line()[:40]
    p = [
        ("http_get", b"GET / HTTP/1.1\r\nHost: 127.60.0.1:5000\r\n\r\n", False),
        ("http_post", b"POST /status HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\n", False),
        ("tls_client_hello", tls_client_hello(), False),
        ("line_70KiB", b"x" * (70 * 1024) + b"\n", False),
        ("json_70KiB", status_line(pad="p" * (70 * 1024)).encode() + b"\n", False),
        ("invalid_utf8", b'{"v":1,"type":"status","node":"\xff\xfe\xc3\x28"}\n', False),
        ("nan", status_line().replace('"cpu": 1.0', '"cpu": NaN').encode() + b"\n", False),
        ("infinity", status_line().replace('"cpu": 1.0', '"cpu": Infinity').encode() + b"\n", False),
        ("huge_number", status_line().replace('"cpu": 1.0', '"cpu": 1e400').encode() + b"\n", False),
        ("negative", status_line(cpu=-1.0).encode() + b"\n", False),
        ("over_100", status_line(memory=100.1).encode() + b"\n", False),
        ("string_number", status_line(cpu="3.2").encode() + b"\n", False),
        ("huge_int_seq", status_line().replace('"seq": 0', '"seq": ' + "9" * 400).encode() + b"\n", False),
        ("huge_string_name", status_line(node="n" * 60000).encode() + b"\n", False),
        ("duplicate_keys", status_line().replace('"cpu": 1.0', '"cpu": 1.0, "cpu": 2.0').encode() + b"\n", False),
        ("deep_array", b"[" * 30000 + b"]" * 30000 + b"\n", False),
        ("deep_object", b'{"a":' * 8000 + b"1" + b"}" * 8000 + b"\n", False),
        ("unknown_version", status_line(v=2).encode() + b"\n", False),
        ("unknown_type", status_line(type="gossip").encode() + b"\n", False),
        ("missing_field", json.dumps({"v": 1, "type": "status", "node": "x"}).encode() + b"\n", False),
        ("not_object", b"[1,2,3]\n", False),
        ("sealed_without_key", b'{"v":1,"sealed":"AAAA"}\n', False),
        ("legacy_nan", b'{"cpu": NaN, "memory": 5}', True),
        ("legacy_out_of_range", b'{"cpu": 250, "memory": 5}', True),
        ("legacy_string", b'{"cpu": "x", "memory": 5}', True),
        ("half_frame_then_close", half.encode(), True),
        ("leave_from_stranger", status_line(type="leave").encode() + b"\n", False),
        ("nul_bytes", b"\x00" * 4096 + b"\n", False),
        ("only_newlines", b"\n" * 4096, False),
    ]
    return p


class Sampler(threading.Thread):
    def __init__(self, pid, period=0.25):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples = []  # (t, rss, hwm, threads, fds)
        self.stop = threading.Event()

    def read(self):
        fields = {}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM", "Threads"):
                        fields[key] = int(value.split()[0])
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None
        return (time.time(), fields["VmRSS"], fields["VmHWM"], fields["Threads"], fds)

    def run(self):
        for _ in range(100_000):  # bounded: ~7 h at 4 Hz, far above any run
            if self.stop.wait(self.period):
                return
            s = self.read()
            if s:
                self.samples.append(s)


class Bench:
    def __init__(self, args):
        self.args = args
        self.target = args.target
        self.sampler = Sampler(args.pid)
        self.phases = []  # dict(name, start, end, notes)
        self.err_path = os.path.join(args.out, "node.err")

    def alive(self):
        return os.path.exists(f"/proc/{self.args.pid}")

    def err_size(self):
        try:
            return os.path.getsize(self.err_path)
        except OSError:
            return 0

    def phase(self, name, fn, settle=3.0):
        if not self.alive():
            print(f"abuse: node gone before phase {name}", flush=True)
            self.phases.append({"name": name, "start": time.time(), "end": time.time(),
                                "err0": self.err_size(), "err1": self.err_size(),
                                "notes": "NODE DEAD"})
            return
        print(f"abuse: phase {name} ...", flush=True)
        before = self.sampler.read()
        start, err0 = time.time(), self.err_size()
        try:
            notes = fn()
        except Exception as e:  # an attack that fails is a finding, not a crash of the bench
            notes = f"driver error: {type(e).__name__}: {e}"
        attack_end = time.time()
        time.sleep(settle)
        after = self.sampler.read()
        self.phases.append({"name": name, "start": start, "attack_end": attack_end,
                            "end": time.time(), "before": before, "after": after,
                            "err0": err0, "err1": self.err_size(), "notes": notes})
        print(f"abuse: phase {name}: {notes}", flush=True)

    # ---------------------------------------------------------------- attacks

    def watch_until_closed(self, socks, deadline_s):
        """Waits (bounded) until the node closes each socket; returns close delays."""
        sel = selectors.DefaultSelector()
        opened = {}
        for s, t0 in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            opened[s] = t0
        closed = []
        end = time.time() + deadline_s
        while opened and time.time() < end:
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                except BlockingIOError:
                    continue
                if not data:
                    closed.append(time.time() - opened.pop(s))
                    sel.unregister(s)
                    s.close()
        left = len(opened)
        for s in opened:
            sel.unregister(s)
            s.close()
        sel.close()
        return closed, left

    def slowloris_silent(self, count=1000):
        socks, failed = [], 0
        end = time.time() + 30
        for source in sources(0, count):
            if time.time() > end:
                break
            try:
                socks.append((connect(source, self.target), time.time()))
            except OSError:
                failed += 1
        opened = len(socks)
        closed, left = self.watch_until_closed(socks, 20)
        return (f"{opened} silent connections from {opened} addresses, {failed} failed; node closed "
                f"{len(closed)} after {min(closed, default=0):.1f}..{max(closed, default=0):.1f} s; "
                f"{left} still open at 20 s")

    def slowloris_dribble(self, count=200, seconds=20):
        payload = status_line().encode()
        socks, failed = [], 0
        for source in sources(10, count):
            try:
                s = connect(source, self.target)
                s.setblocking(False)
                socks.append([s, time.time(), None])
            except OSError:
                failed += 1
        for second in range(seconds):  # one byte per second, bounded
            tick = time.time()
            for entry in socks:
                s, t0, closed_at = entry
                if closed_at is not None:
                    continue
                try:
                    while s.recv(4096):  # drain the hello; b"" means closed
                        pass
                    entry[2] = time.time() - t0
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    entry[2] = time.time() - t0
                    continue
                try:
                    s.send(payload[second % len(payload):second % len(payload) + 1])
                except OSError:
                    entry[2] = time.time() - t0
            time.sleep(max(0.0, 1.0 - (time.time() - tick)))
        closed = [e[2] for e in socks if e[2] is not None]
        for e in socks:
            e[0].close()
        return (f"{len(socks)} connections sending 1 byte/s for {seconds} s, {failed} failed; node "
                f"closed {len(closed)} after {min(closed, default=0):.1f}..{max(closed, default=0):.1f} s; "
                f"{len(socks) - len(closed)} survived {seconds} s")

    def storm(self, count=5000):
        addrs = sources(20, 1000)
        t0, ok, failed = time.time(), 0, 0
        end = t0 + 90
        for i in range(count):
            if time.time() > end:
                break
            try:
                s = connect(addrs[i % len(addrs)], self.target)
                if i % 2:
                    rst_close(s)
                else:
                    s.close()
                ok += 1
            except OSError:
                failed += 1
        dt = time.time() - t0
        return (f"{ok} connect/close in a row in {dt:.1f} s ({ok / dt:.0f}/s; half FIN, half RST), "
                f"{failed} failed")

    def half_open(self, count=500):
        half = status_line()[:60].encode()
        addrs = sources(30, count)
        kept, rst, failed = [], 0, 0
        for i, source in enumerate(addrs):
            try:
                s = connect(source, self.target)
                s.sendall(half)
                if i % 2:
                    rst_close(s)  # vanish at once
                    rst += 1
                else:
                    kept.append((s, time.time()))  # vanish: never another byte
            except OSError:
                failed += 1
        closed, left = self.watch_until_closed(kept, 20)
        return (f"{count} half frames: {rst} then RST, {len(kept)} left silent ({failed} failed); "
                f"node closed {len(closed)} silent ones after {min(closed, default=0):.1f}.."
                f"{max(closed, default=0):.1f} s, {left} still open at 20 s")

    def garbage(self, rounds=3):
        """Each malformed payload from its own address, `rounds` times; plus random binary."""
        rng = random.Random(4)
        addrs = sources(40, 250)
        n, failed, kept_open = 0, 0, []
        payloads = garbage_payloads()
        for r in range(rounds):
            for i, (name, data, close_after) in enumerate(payloads):
                try:
                    s = connect(addrs[i], self.target)
                    s.sendall(data)
                    if not close_after:
                        s.settimeout(2.0)
                        try:  # the node should close on a bad first frame
                            got = b""
                            for _ in range(10):
                                chunk = s.recv(4096)
                                if not chunk:
                                    break
                                got += chunk
                            else:
                                kept_open.append(name)
                        except socket.timeout:
                            kept_open.append(name)
                        except OSError:
                            pass
                    s.close()
                    n += 1
                except OSError:
                    failed += 1
        # random binary, 100 connections x 8 KiB, each from its own address
        rand_addrs = sources(41, 100)
        for source in rand_addrs:
            try:
                s = connect(source, self.target)
                s.sendall(bytes(rng.getrandbits(8) for _ in range(8192)))
                s.close()
                n += 1
            except OSError:
                failed += 1
        # one source, 300 bad frames on 300 connections: the log must say it once
        for _ in range(300):
            try:
                s = connect(src(42, 1), self.target)
                s.sendall(b"not json\n")
                s.close()
                n += 1
            except OSError:
                failed += 1
        return (f"{n} garbage connections ({len(payloads)} kinds x {rounds} + 100 random binary + "
                f"300 from one address), {failed} failed; not closed by the node within 2 s: "
                f"{sorted(set(kept_open)) or 'none'} ({len(kept_open)})")

    def log_limiter(self, distinct=4200, repeat=100):
        """One bad frame from each of 4200 addresses (more than the limiter's
        4096 entries), then again from the first 100: are the repeats logged?"""
        addrs = sources(100, distinct)
        failed = 0
        err0 = self.err_size()
        end = time.time() + 60
        for source in addrs + addrs[:repeat]:
            if time.time() > end:
                break
            try:
                s = connect(source, self.target)
                s.sendall(b"not json\n")
                rst_close(s)
            except OSError:
                failed += 1
        time.sleep(1)
        _, _, _, per_source = reject_lines(self.err_path, err0, self.err_size())
        twice = sum(1 for a in addrs[:repeat] if per_source.get(a, 0) > 1)
        return (f"bad frame from {distinct} distinct addresses, then again from {repeat} of them "
                f"within the 60 s window ({failed} failed); repeats logged a second time: "
                f"{twice} of {repeat}")

    def cap(self, count=2300, hold=4):
        """More silent strangers than --max-connections (2048): the excess is
        refused or evicts the oldest stranger, never the honest peer."""
        socks, failed = [], 0
        end = time.time() + 40
        for source in sources(200, count):
            if time.time() > end:
                break
            try:
                socks.append(connect(source, self.target))
            except OSError:
                failed += 1
        time.sleep(hold)
        for s in socks:
            rst_close(s)
        return f"{len(socks)} silent connections held {hold} s ({failed} failed)"

    def endless(self, seconds=10, cap=200 * 1024 * 1024):
        """Bytes without a newline until the node closes (bounded in time and bytes)."""
        results = []
        for j, chunk in enumerate((b"a" * 65536, os.urandom(65536).replace(b"\n", b"n"))):
            sent = 0
            try:
                s = connect(src(43, 1 + j), self.target)
                s.settimeout(2)
                end = time.time() + seconds
                while time.time() < end and sent < cap:
                    sent += s.send(chunk)
                how = "still open"
            except (BrokenPipeError, ConnectionResetError):
                how = "closed by node"
            except socket.timeout:
                how = "node stopped reading"
            except OSError as e:
                how = f"error {e}"
            results.append(f"{sent // 1024} KiB then {how}")
            s.close()
        return "endless line: " + "; ".join(results)


def parse_ts(text):
    return datetime.datetime.fromisoformat(text).timestamp()


def stream_gaps(path, peer):
    times = []
    offline = 0
    attackers = []
    other = []
    for line in open(path, errors="replace"):
        try:
            e = json.loads(line)
        except ValueError:
            other.append(line)
            continue
        p = e.get("peer", "")
        if e.get("event") == "status" and p == peer:
            times.append(parse_ts(e["ts"]))
        elif e.get("event") in ("offline", "left", "flapping", "cut_off") and p == peer:
            offline += 1
        if p and p != peer:
            attackers.append(e)
    return times, offline, attackers, other


def largest_gap(times, t0, t1):
    ts = [t for t in times if t0 - 5 <= t <= t1 + 5]
    best = 0.0
    for a, b in zip(ts, ts[1:]):
        if b >= t0 and a <= t1:
            best = max(best, b - a)
    return best


def reject_lines(path, start, end):
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(max(0, end - start)).decode(errors="replace")
    lines = [l for l in text.splitlines() if l.strip()]
    rejected = [l for l in lines if "rejected message" in l]
    reasons, per_source = {}, {}
    for l in rejected:
        m = re.search(r"\[(\w+);", l)
        if m:
            reasons[m.group(1)] = reasons.get(m.group(1), 0) + 1
        m = re.search(r"rejected message from (\S+):", l)
        if m:
            per_source[m.group(1)] = per_source.get(m.group(1), 0) + 1
    return len(lines), len(rejected), reasons, per_source


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--target", default="127.60.0.1")
    ap.add_argument("--honest", default="127.60.0.2")
    ap.add_argument("--baseline", type=float, default=8.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))

    b = Bench(args)
    b.sampler.start()
    time.sleep(2)
    b.phase("baseline", lambda: time.sleep(args.baseline) or
            f"idle {args.baseline:.0f} s, honest peer sending", settle=0)
    b.phase("a1 slowloris silent x1000", b.slowloris_silent)
    b.phase("a2 slowloris 1 B/s x200", b.slowloris_dribble)
    b.phase("b1 connect/close storm x5000", b.storm)
    b.phase("b2 half-open x500", b.half_open)
    b.phase("c1 garbage frames", b.garbage)
    b.phase("c2 endless line", b.endless)
    b.phase("c3 log limiter x4300 sources", b.log_limiter)
    b.phase("a3 connection cap x2300", b.cap)
    time.sleep(2)
    b.sampler.stop.set()
    b.sampler.join(timeout=2)
    report(b, args)


def report(b, args):
    out = args.out
    times, offline, attackers, other = stream_gaps(os.path.join(out, "node.out"), args.honest)
    # and the reverse direction: does the node under attack still reach its peer on time?
    times_rev, offline_rev, _, _ = stream_gaps(os.path.join(out, "honest.out"), args.target)
    samples = b.sampler.samples
    t_first = b.phases[0]["start"] if b.phases else time.time()
    t_last = b.phases[-1]["end"] if b.phases else time.time()
    print()
    print("== abuse bench summary (node %s, honest peer %s, --interval 1s)" % (args.target, args.honest))
    hdr = (f"{'phase':30s} {'RSS before':>10s} {'RSS max':>8s} {'RSS after':>9s} {'HWM after':>9s} "
           f"{'thr max':>7s} {'fds max':>7s} {'gap max':>7s} {'gap rev':>7s} {'stderr':>6s} {'rejlog':>6s}")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    all_reasons = {}
    for p in b.phases:
        during = [s for s in samples if p["start"] <= s[0] <= p["end"]]
        before = p.get("before") or (during[0] if during else None)
        after = p.get("after") or (during[-1] if during else None)
        rss_max = max((s[1] for s in during), default=0)
        thr_max = max((s[3] for s in during), default=0)
        fds_max = max((s[4] for s in during), default=0)
        gap = largest_gap(times, p["start"], p["end"])
        gap_rev = largest_gap(times_rev, p["start"], p["end"])
        n_err, n_rej, reasons, _ = reject_lines(b.err_path, p["err0"], p["err1"])
        for k, v in reasons.items():
            all_reasons[k] = all_reasons.get(k, 0) + v
        row = {"phase": p["name"], "rss_before_kb": before[1] if before else None,
               "rss_max_kb": rss_max, "rss_after_kb": after[1] if after else None,
               "hwm_after_kb": after[2] if after else None, "threads_max": thr_max,
               "fds_max": fds_max, "gap_max_s": round(gap, 3), "gap_rev_s": round(gap_rev, 3),
               "stderr_lines": n_err, "reject_log_lines": n_rej, "reasons_logged": reasons,
               "notes": p["notes"]}
        rows.append(row)
        print(f"{p['name']:30s} {row['rss_before_kb'] or 0:10d} {rss_max:8d} {row['rss_after_kb'] or 0:9d} "
              f"{row['hwm_after_kb'] or 0:9d} {thr_max:7d} {fds_max:7d} {gap:7.2f} {gap_rev:7.2f} "
              f"{n_err:6d} {n_rej:6d}")
    print()
    for row in rows:
        print(f"  {row['phase']}: {row['notes']}")
        if row["reasons_logged"]:
            print(f"      logged reasons: {row['reasons_logged']}")
    overall_gap = largest_gap(times, t_first, t_last)
    overall_rev = largest_gap(times_rev, t_first, t_last)
    print()
    print(f"honest peer statuses printed during the run: {len([t for t in times if t_first <= t <= t_last])}, "
          f"largest gap {overall_gap:.3f} s (interval 1 s); offline/left lines for it: {offline}")
    print(f"node -> honest peer (printed by the honest peer): largest gap {overall_rev:.3f} s; "
          f"offline lines: {offline_rev}")
    print(f"events about any other peer (attackers) on the node's stdout: {len(attackers)}; "
          f"non-JSON stdout lines: {len(other)}")
    for e in attackers[:10]:
        print(f"   {json.dumps(e)}")
    hwm = max((s[2] for s in samples), default=0)
    print(f"peak VmHWM over the run: {hwm} kB; max threads: {max((s[3] for s in samples), default=0)}; "
          f"node alive at the end: {b.alive()}")
    print(f"reject log lines by reason, whole run: {all_reasons}")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"rows": rows, "largest_gap_s": overall_gap, "largest_gap_reverse_s": overall_rev,
                   "attacker_events": len(attackers), "peak_hwm_kb": hwm,
                   "honest_offline": offline, "alive": b.alive()}, f, indent=1)
    # DESIGN.md: at most 4 threads with the status endpoint on (it is by default).
    bad = (not b.alive() or attackers or offline or overall_gap > 1.5
           or max((s[3] for s in samples), default=0) > 4)
    print("RESULT: " + ("FAIL" if bad else "PASS") +
          " (node alive, honest gap <= 1.5 s, no attacker status, no offline, threads <= 4)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
