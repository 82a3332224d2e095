#!/usr/bin/env python3
"""Soak driver and analysis for p2pmon (Python 3, stdlib only).

    soak.py run --out DIR --bin P2PMON --duration S --nodes N --seed SEED
        Runs inside the network namespace that scripts/soak.sh made: starts N
        nodes on 127.0.0.2.., applies a seeded fault schedule (kill -9 +
        restart, SIGINT leave + restart, one iptables partition + heal), and
        writes the ground truth (truth.jsonl), /proc samples (samples.csv) and
        each node's stdout/stderr (node-K.out / node-K.err) into DIR.
    soak.py analyze DIR
        Compares every node's JSON events with the truth. Exits 1 if there is
        any false or missed transition (or a contract breach it can see).

Every loop is bounded by count and by time; only processes this script
started are signalled, by PID.
"""

import argparse
import datetime
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time

INTERVAL = 1.0  # --interval 1s
T = 3.0  # offline threshold: max(offline-after = 3 x interval, 3 x interval)
DETECT_BOUND = T + INTERVAL  # the brief's "missed": not reported within T + interval
CONTRACT = {"crash": 1.0, "leave": 0.5, "partition": T + INTERVAL}  # DESIGN.md
RECOVERY_BOUND = 10.0  # "back online" expected within this after the fault ends
WARMUP = 8.0  # > T: startup settles before the first fault
SPACING = 75.0  # a node is in at most one fault per 75 s: 4 changes per 120 s < flap rule (5)
FLAP_CHANGES, FLAP_WINDOW = 5, 120.0
SAMPLE_EVERY = 2.0
MAX_THREADS = 3  # main, sender, listener (the nodes run with --http off)


def addr(k):
    return f"127.0.0.{k + 2}"


def now():
    return time.time()


# ----------------------------------------------------------------------------- run


def make_schedule(rng, duration, nodes):
    """Sequential faults, each node spaced SPACING s apart, one partition."""
    faults = []
    last_end = {k: -1e9 for k in range(nodes)}
    t = WARMUP
    partitioned = False
    for _ in range(10_000):  # bounded
        if t > duration - 30:
            break
        eligible = [k for k in range(nodes) if last_end[k] <= t - SPACING]
        want_partition = not partitioned and t >= duration * 0.4 and nodes >= 2
        if want_partition and len(eligible) >= 2:
            a, b = sorted(rng.sample(eligible, 2))
            length = rng.uniform(10, 20)
            faults.append({"kind": "partition", "nodes": [a, b], "start": t, "end": t + length})
            partitioned = True
            last_end[a] = last_end[b] = t + length
        elif eligible and not (want_partition and t < duration * 0.6):
            k = rng.choice(eligible)
            kind = rng.choice(["crash", "leave"])
            length = rng.uniform(5, 10)
            faults.append({"kind": kind, "nodes": [k], "start": t, "end": t + length})
            last_end[k] = t + length
        else:
            t += 5
            continue
        t = faults[-1]["end"] + rng.uniform(8, 15)
    return faults


class Soak:
    def __init__(self, args):
        self.args = args
        self.out = args.out
        self.nodes = args.nodes
        self.procs = {}  # k -> Popen
        self.incarnation = {k: 0 for k in range(self.nodes)}
        self.truth = open(os.path.join(self.out, "truth.jsonl"), "a", buffering=1)
        self.samples = open(os.path.join(self.out, "samples.csv"), "a", buffering=1)
        self.samples.write("t,node,incarnation,pid,vmrss_kb,vmhwm_kb,threads\n")
        self.partitions = []

    def record(self, **fields):
        fields.setdefault("t", now())
        self.truth.write(json.dumps(fields) + "\n")

    def start(self, k):
        peers = ",".join(addr(j) for j in range(self.nodes))
        cmd = [self.args.bin, "--listen", addr(k), "--peers", peers,
               "--interval", "1s", "--format", "json", "--http", "off"]
        out = open(os.path.join(self.out, f"node-{k}.out"), "ab")
        err = open(os.path.join(self.out, f"node-{k}.err"), "ab")
        t = now()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        self.incarnation[k] += 1
        self.procs[k] = proc
        self.record(t=t, what="start", node=k, pid=proc.pid, incarnation=self.incarnation[k],
                    cmd=" ".join(cmd))

    def kill9(self, k):
        proc = self.procs.pop(k)
        t = now()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        self.record(t=t, what="crash", node=k, pid=proc.pid)

    def interrupt(self, k, what="leave"):
        proc = self.procs.pop(k)
        t = now()
        os.kill(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=5)
            self.record(what="hung_on_sigint", node=k, pid=proc.pid)
        self.record(t=t, what=what, node=k, pid=proc.pid, exit_code=code,
                    exit_s=round(now() - t, 3))

    def iptables(self, op, a, b):
        for src, dst in ((a, b), (b, a)):
            subprocess.run(["iptables", op, "INPUT", "-s", addr(src), "-d", addr(dst),
                            "-j", "DROP"], check=True, timeout=10)

    def sample(self):
        t = now()
        for k, proc in sorted(self.procs.items()):
            code = proc.poll()
            if code is not None:
                self.record(what="unexpected_exit", node=k, pid=proc.pid, exit_code=code)
                del self.procs[k]
                continue
            fields = {}
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key in ("VmRSS", "VmHWM", "Threads"):
                            fields[key] = value.split()[0]
            except OSError:
                continue
            self.samples.write(f"{t:.3f},{k},{self.incarnation[k]},{proc.pid},"
                               f"{fields.get('VmRSS', '')},{fields.get('VmHWM', '')},"
                               f"{fields.get('Threads', '')}\n")

    def run(self):
        rng = random.Random(self.args.seed)
        faults = make_schedule(rng, self.args.duration, self.nodes)
        print(f"soak: seed {self.args.seed}, {self.nodes} nodes, {self.args.duration} s, "
              f"{len(faults)} faults:", flush=True)
        for f in faults:
            who = "-".join(addr(k) for k in f["nodes"])
            print(f"  {f['start']:7.1f} .. {f['end']:7.1f}  {f['kind']:9s} {who}", flush=True)
        t0 = self.t0 = now()
        self.record(t=t0, what="begin", seed=self.args.seed, duration=self.args.duration,
                    nodes=self.nodes, interval=INTERVAL, schedule=faults)
        for k in range(self.nodes):
            self.start(k)
        actions = []
        for f in faults:
            actions.append((t0 + f["start"], "begin", f))
            actions.append((t0 + f["end"], "end", f))
        actions.sort(key=lambda a: a[0])
        end = t0 + self.args.duration
        next_sample = t0 + 1.0
        deadline = end + 30  # hard bound on the loop
        while now() < end and now() < deadline:
            while actions and actions[0][0] <= now():
                _, phase, f = actions.pop(0)
                self.apply(phase, f)
            if now() >= next_sample:
                self.sample()
                next_sample += SAMPLE_EVERY
            time.sleep(0.05)
        self.sample()
        for a, b in self.partitions:  # never leave rules behind
            self.iptables("-D", a, b)
            self.record(what="heal", nodes=[a, b])
        for k in sorted(self.procs):
            self.interrupt(k, what="stop")
        self.record(what="end")
        print(f"soak: done after {now() - t0:.1f} s, output in {self.out}", flush=True)

    def apply(self, phase, f):
        kind, ks = f["kind"], f["nodes"]
        if kind == "crash":
            if phase == "begin":
                self.kill9(ks[0])
            else:
                self.start(ks[0])
        elif kind == "leave":
            if phase == "begin":
                self.interrupt(ks[0])
            else:
                self.start(ks[0])
        elif kind == "partition":
            a, b = ks
            if phase == "begin":
                self.iptables("-A", a, b)
                self.partitions.append((a, b))
                self.record(what="partition", nodes=[a, b])
            else:
                self.iptables("-D", a, b)
                self.partitions.remove((a, b))
                self.record(what="heal", nodes=[a, b])
        print(f"  [+{now() - self.t0:7.2f}] {phase} {kind} {'-'.join(addr(k) for k in ks)}", flush=True)


# ------------------------------------------------------------------------- analyze


def parse_ts(text):
    return datetime.datetime.fromisoformat(text).timestamp()


def load(out):
    truth = [json.loads(line) for line in open(os.path.join(out, "truth.jsonl"))]
    begin = next(r for r in truth if r["what"] == "begin")
    nodes = begin["nodes"]
    events = {}
    bad_lines = {}
    for k in range(nodes):
        evs, bad, inc = [], 0, 0
        path = os.path.join(out, f"node-{k}.out")
        for line in open(path, errors="replace") if os.path.exists(path) else []:
            try:
                e = json.loads(line)
                if e.get("event") == "started":
                    inc += 1
                e["t"] = parse_ts(e["ts"])
                e["inc"] = inc
                evs.append(e)
            except (ValueError, KeyError):
                bad += 1
        events[k], bad_lines[k] = evs, bad
    return truth, begin, nodes, events, bad_lines


def lifetimes(truth, nodes, t_end):
    """Per node: list of (incarnation, start, stop) of its processes."""
    life = {k: [] for k in range(nodes)}
    for r in truth:
        if r["what"] == "start":
            life[r["node"]].append([r["incarnation"], r["t"], t_end])
        elif r["what"] in ("crash", "leave", "stop", "unexpected_exit"):
            life[r["node"]][-1][2] = r["t"]
    return life


def faults_from_truth(truth, nodes, t_end):
    """Ground truth: (kind, observers' peer set, start, end) of each real fault."""
    faults = []
    open_down = {}
    open_part = {}
    for r in truth:
        w = r["what"]
        if w in ("crash", "leave", "unexpected_exit"):
            open_down[r["node"]] = ("crash" if w != "leave" else "leave", r["t"])
        elif w == "start" and r["node"] in open_down:
            kind, s = open_down.pop(r["node"])
            faults.append({"kind": kind, "peer": r["node"], "observers": None,
                           "start": s, "end": r["t"]})
        elif w == "partition":
            open_part[tuple(r["nodes"])] = r["t"]
        elif w == "heal":
            a, b = r["nodes"]
            s = open_part.pop((a, b))
            faults.append({"kind": "partition", "peer": b, "observers": [a], "start": s, "end": r["t"]})
            faults.append({"kind": "partition", "peer": a, "observers": [b], "start": s, "end": r["t"]})
    for k, (kind, s) in open_down.items():
        faults.append({"kind": kind, "peer": k, "observers": None, "start": s, "end": t_end})
    return faults


def alive(life, k, t0, t1):
    """The incarnation of node k alive over all of [t0, t1], or None."""
    for inc, s, e in life[k]:
        if s <= t0 and e >= t1:
            return inc
    return None


def summarize(values):
    if not values:
        return "n=0"
    return (f"n={len(values)} min={min(values):.3f} median={statistics.median(values):.3f} "
            f"max={max(values):.3f} s")


def analyze(out):
    truth, begin, nodes, events, bad_lines = load(out)
    t_end = next((r["t"] for r in truth if r["what"] == "end"), truth[-1]["t"])
    t_stop = min((r["t"] for r in truth if r["what"] == "stop"), default=t_end)
    life = lifetimes(truth, nodes, t_end)
    faults = faults_from_truth(truth, nodes, t_end)
    peer_of = {addr(k): k for k in range(nodes)}
    problems = []

    def affecting(obs, peer, t, slack_before=0.05, slack_after=0.5):
        for f in faults:
            if f["peer"] != peer or (f["observers"] is not None and obs not in f["observers"]):
                continue
            if f["start"] - slack_before <= t <= f["end"] + slack_after:
                return f
        return None

    # ---- false transitions: a verdict the truth does not back
    false = []
    for obs in range(nodes):
        last = {}  # (inc, peer) -> last state printed
        for e in events[obs]:
            ev = e.get("event")
            if e["t"] >= t_stop - 0.05:
                continue  # the final shutdown: leaves are true, not judged here
            if ev in ("offline", "left", "flapping"):
                peer = peer_of.get(e.get("peer"))
                f = affecting(obs, peer, e["t"]) if peer is not None else None
                ok = f is not None
                if ok and ev == "left" and f["kind"] != "leave":
                    ok = False
                if ok and ev == "flapping":
                    changes = 2 * sum(1 for g in faults if g["peer"] == peer
                                      and (g["observers"] is None or obs in g["observers"])
                                      and e["t"] - FLAP_WINDOW <= g["start"] <= e["t"])
                    ok = changes > FLAP_CHANGES
                if not ok:
                    false.append((obs, e))
                last[(e["inc"], e.get("peer"))] = ev
            elif ev == "online":
                if last.get((e["inc"], e.get("peer"))) not in ("offline", "left", "flapping"):
                    false.append((obs, e))  # back online without having gone away
                last[(e["inc"], e.get("peer"))] = ev
            elif ev == "cut_off":
                false.append((obs, e))  # never more than one peer is away at once here
            elif ev == "restored":
                false.append((obs, e))

    # ---- missed transitions and latencies
    latency = {"crash": [], "leave": [], "partition": []}
    recovery = {"crash": [], "leave": [], "partition": []}
    missed, late_contract, wrong_kind, missed_recovery = [], [], [], []
    for f in faults:
        observers = f["observers"] if f["observers"] is not None else \
            [k for k in range(nodes) if k != f["peer"]]
        for obs in observers:
            inc = alive(life, obs, f["start"] - 2.0, min(f["end"], f["start"] + DETECT_BOUND))
            if inc is None:
                continue  # the observer itself was down or had just restarted
            p = addr(f["peer"])
            hits = [e for e in events[obs] if e["inc"] == inc and e.get("peer") == p
                    and e.get("event") in ("offline", "left", "flapping")
                    and f["start"] - 0.05 <= e["t"] <= f["end"] + 0.5]
            hits += [e for e in events[obs] if e["inc"] == inc and e.get("event") == "cut_off"
                     and f["start"] - 0.05 <= e["t"] <= f["end"] + 0.5]
            hits.sort(key=lambda e: e["t"])
            if not hits:
                missed.append((obs, f, None))
                continue
            d = hits[0]["t"] - f["start"]
            latency[f["kind"]].append(d)
            if d > DETECT_BOUND:
                missed.append((obs, f, d))
            if d > CONTRACT[f["kind"]]:
                late_contract.append((obs, f, d, hits[0]))
            want = "left" if f["kind"] == "leave" else "offline"
            if hits[0]["event"] != want:
                wrong_kind.append((obs, f, hits[0]))
            # back online after the fault ends (if the observer lived to see it)
            if f["end"] >= t_stop - 1 or alive(life, obs, f["start"], f["end"] + RECOVERY_BOUND) is None:
                continue
            back = [e for e in events[obs] if e["inc"] == inc and e.get("peer") == p
                    and e.get("event") == "online" and e["t"] >= f["end"] - 0.05]
            if not back or back[0]["t"] - f["end"] > RECOVERY_BOUND:
                missed_recovery.append((obs, f))
            else:
                recovery[f["kind"]].append(back[0]["t"] - f["end"])

    # ---- resources
    samples = []
    with open(os.path.join(out, "samples.csv")) as fh:
        for line in fh:
            parts = line.strip().split(",")
            if parts[0] == "t" or len(parts) != 7 or "" in parts:
                continue
            samples.append((float(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]),
                            int(parts[4]), int(parts[5]), int(parts[6])))
    unexpected = [r for r in truth if r["what"] in ("unexpected_exit", "hung_on_sigint")]
    sigints = [r for r in truth if r["what"] in ("leave", "stop")]
    slow_exit = [r for r in sigints if r.get("exit_code") != 0 or r.get("exit_s", 0) >= 1.0]
    panics = {}
    for k in range(nodes):
        path = os.path.join(out, f"node-{k}.err")
        text = open(path, errors="replace").read() if os.path.exists(path) else ""
        panics[k] = text.count("panicked")

    # ---- report
    print(f"== soak analysis: {out}")
    print(f"seed {begin['seed']}, {nodes} nodes, {begin['duration']} s at --interval 1s, "
          f"T = {T:.0f} s, detection bound T+interval = {DETECT_BOUND:.0f} s")
    kinds = {}
    for f in faults:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    print("faults (peer views): " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
          + f"  (partition counted once per side)")
    print(f"events parsed: {sum(len(v) for v in events.values())}, unparsable lines: "
          f"{sum(bad_lines.values())}")
    print()
    print(f"false transitions:   {len(false)}")
    for obs, e in false[:20]:
        print(f"   at {addr(obs)}: {json.dumps({k: v for k, v in e.items() if k not in ('t', 'inc')})}")
    print(f"missed transitions:  {len(missed)} (not reported within T+interval = {DETECT_BOUND:.0f} s)")
    for obs, f, d in missed[:20]:
        print(f"   {addr(obs)} about {addr(f['peer'])}: {f['kind']} at +{f['start'] - begin['t']:.1f} s, "
              + ("never reported" if d is None else f"reported after {d:.2f} s"))
    print(f"missed back-online:  {len(missed_recovery)} (within {RECOVERY_BOUND:.0f} s of the fault's end)")
    for obs, f in missed_recovery[:20]:
        print(f"   {addr(obs)} about {addr(f['peer'])}: {f['kind']} ended at +{f['end'] - begin['t']:.1f} s")
    print(f"wrong kind (offline for a leave, or the reverse): {len(wrong_kind)}")
    for obs, f, e in wrong_kind[:10]:
        print(f"   {addr(obs)} about {addr(f['peer'])}: {f['kind']} reported as {e['event']}")
    print(f"slower than DESIGN.md (crash <= 1 s, leave <= 0.5 s, partition <= T+interval): "
          f"{len(late_contract)}")
    for obs, f, d, e in late_contract[:10]:
        print(f"   {addr(obs)} about {addr(f['peer'])}: {f['kind']} after {d:.2f} s "
              f"(reason: {e.get('reason')})")
    print()
    print("detection latency (fault -> first offline/left line):")
    for kind in ("crash", "leave", "partition"):
        print(f"   {kind:9s} {summarize(latency[kind])}")
    print("back-online latency (fault end -> 'online' line):")
    for kind in ("crash", "leave", "partition"):
        print(f"   {kind:9s} {summarize(recovery[kind])}")
    print()
    print("SIGINT exits (leave faults + final stop): "
          f"{len(sigints)}, max {max((r.get('exit_s', 0) for r in sigints), default=0):.3f} s, "
          f"non-zero or >= 1 s: {len(slow_exit)}")
    print(f"unexpected exits / hangs: {len(unexpected)}; panics on stderr: {sum(panics.values())}")
    print()
    print("resources per node (VmRSS kB; first incarnation 5 s after start -> final incarnation at end):")
    print(f"   {'node':11s} {'rss_start':>9s} {'rss_end':>8s} {'longest incarnation (s: start->end kB)':>40s}"
          f" {'max_hwm':>8s} {'max_thr':>7s}")
    thread_breach = []
    rss_growth = []
    for k in range(nodes):
        mine = [s for s in samples if s[1] == k]
        if not mine:
            continue
        first_inc = min(s[2] for s in mine)
        first = [s for s in mine if s[2] == first_inc and s[0] - life[k][0][1] >= 5.0] or mine
        last_inc = max(s[2] for s in mine)
        last = [s for s in mine if s[2] == last_inc]
        best = None
        for inc, s0, e0 in life[k]:
            ss = [s for s in mine if s[2] == inc and s[0] - s0 >= 5.0]
            if ss and (best is None or e0 - s0 > best[0]):
                best = (e0 - s0, ss[0][4], ss[-1][4])
        max_thr = max(s[6] for s in mine)
        if max_thr > MAX_THREADS:
            thread_breach.append((k, max_thr))
        if best:
            rss_growth.append(best[2] - best[1])
        longest = f"{best[0]:.0f} s: {best[1]} -> {best[2]}" if best else "-"
        print(f"   {addr(k):11s} {first[0][4]:9d} {last[-1][4]:8d} {longest:>40s} "
              f"{max(s[5] for s in mine):8d} {max_thr:7d}")
    print(f"thread count > {MAX_THREADS}: {thread_breach or 'none'}")
    print()
    failed = bool(false or missed)
    verdict = "FAIL" if failed else "PASS"
    print(f"RESULT: {verdict}: false={len(false)} missed={len(missed)} "
          f"missed_back_online={len(missed_recovery)} slower_than_contract={len(late_contract)} "
          f"unexpected_exits={len(unexpected)} threads_over_{MAX_THREADS}={len(thread_breach)}")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--bin", required=True)
    r.add_argument("--duration", type=float, default=600)
    r.add_argument("--nodes", type=int, default=5)
    r.add_argument("--seed", type=int, default=1)
    a = sub.add_parser("analyze")
    a.add_argument("out")
    args = ap.parse_args()
    if args.cmd == "run":
        if not 2 <= args.nodes <= 200 or not 30 <= args.duration <= 7200:
            sys.exit("soak.py: nodes must be 2..200 and duration 30..7200 s")
        Soak(args).run()
    else:
        sys.exit(analyze(args.out))


if __name__ == "__main__":
    main()
