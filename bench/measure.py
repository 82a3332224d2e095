#!/usr/bin/env python3
"""Per-process cost of the monitors that bench/compare.sh starts (stdlib only).

Reads a PID file of lines "SYSTEM NODE PID" and, from /proc:
  * CPU: sum over /proc/PID/task/*/schedstat of the first field (ns on CPU),
    read at the start and at the end of the steady window;
    /proc/PID/stat utime+stime (which also counts threads that exited) is
    kept in the JSON as a cross-check;
  * RSS: VmRSS at the end and VmHWM (peak) from /proc/PID/status, plus
    VmRSS sampled every --sample seconds over the window;
  * threads: the Threads line of /proc/PID/status;
  * USS: private memory, Private_Clean + Private_Dirty from
    /proc/PID/smaps_rollup, at the end of the window (what the host really
    pays for the process: pages shared with other processes excluded);
  * wire, per system whose nodes have a network namespace to themselves
    (/proc/PID/ns/net): bytes and packets sent on that namespace's `lo`
    (its line in /proc/PID/net/dev, read through any of its nodes) at the
    start and at the end of the window. On lo every packet is sent once
    and received once, so tx counts each packet of the cluster exactly once
    (bytes from the IP header on: lo counts after it pulls the 14-byte
    Ethernet header). A system that shares its namespace with another gets
    n/a;
  * statuses, per system whose nodes' stdout is kept next to the PID file
    (SYSTEM-NODE.out, as bench/lib.sh's start_node_logged does): the lines
    starting "Received status from" (p2pmon and the Python original print
    one per status received), at the start and at the end of the window.

Subcommands:
  window  --pids F --warmup S --duration S [--sample S] --json OUT
          sleep the warm-up, measure the window, write raw JSON, print the table
  table   --json IN      print the table again from a raw JSON file
  series  --pids F --duration S --every S --json OUT
          RSS of every process every --every seconds (the RSS-growth run)
  smaps   --pids F [--json OUT]
          per process: VmRSS, USS and where the pages are, by mapping, from
          /proc/PID/smaps (bench/footprint.sh)
"""
import argparse
import glob
import json
import os
import re
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# issue 15 targets ("Footprint", "Quiet wire"), and issue 7's thread count
RSS_VS_GMOND = 0.75       # VmRSS at the end, HTTP on (the default)
CPU_VS_PYTHON = 0.5       # CPU s/min per node
BYTES_VS_PYTHON = 1.0     # lo bytes/min per node, with our richer status
MAX_PACKETS_PER_STATUS = 2.5
MAX_THREADS = 4
STATUS_LINE = "Received status from"


def read_pids(path):
    procs = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                procs.append({"system": parts[0], "node": parts[1], "pid": int(parts[2])})
    return procs


def sched_ns(pid):
    total = 0
    for p in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(p) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that exited between glob and read
    return total


def stat_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])  # kB
            elif k == "Threads":
                out[k] = int(v)
    return out


def uss(pid):
    """Private_Clean + Private_Dirty (kB) from smaps_rollup."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Private_Clean", "Private_Dirty"):
                total += int(v.split()[0])
    return total


def net_ns(pid):
    return os.readlink(f"/proc/{pid}/ns/net")


def lo_tx(pid):
    """(bytes, packets) sent on lo in PID's network namespace."""
    with open(f"/proc/{pid}/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                fields = rest.split()
                return int(fields[8]), int(fields[9])
    raise OSError(f"no lo in /proc/{pid}/net/dev")


def count_statuses(path):
    n = 0
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(STATUS_LINE):
                n += 1
    return n


def wire_sources(procs, pids_path):
    """Per system: its PIDs if its namespace is its own (else None), and its
    nodes' stdout files if every one was kept (else None)."""
    owners = {}
    ns_of = {}
    for p in procs:
        try:
            ns_of[p["pid"]] = net_ns(p["pid"])
        except OSError:
            continue
        owners.setdefault(ns_of[p["pid"]], set()).add(p["system"])
    out_dir = os.path.dirname(os.path.abspath(pids_path))
    sources = {}
    for p in procs:
        src = sources.setdefault(p["system"], {"pids": [], "outs": [], "own_ns": True,
                                               "all_out": True, "ns": set()})
        src["pids"].append(p["pid"])
        ns = ns_of.get(p["pid"])
        src["ns"].add(ns)
        if ns is None or owners[ns] != {p["system"]}:
            src["own_ns"] = False
        out = os.path.join(out_dir, f"{p['system']}-{p['node']}.out")
        if os.path.exists(out):
            src["outs"].append(out)
        else:
            src["all_out"] = False
    for src in sources.values():
        if len(src["ns"]) != 1:
            src["own_ns"] = False
    return sources


def wire_snapshot(sources):
    snap = {}
    for name, src in sources.items():
        row = {"lo": None, "statuses": None}
        if src["own_ns"]:
            for pid in src["pids"]:  # any live node sees the same lo
                try:
                    row["lo"] = lo_tx(pid)
                    break
                except OSError:
                    pass
        if src["all_out"]:
            try:
                row["statuses"] = sum(count_statuses(o) for o in src["outs"])
            except OSError:
                pass
        snap[name] = row
    return snap


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def snapshot(procs):
    t = time.monotonic()
    snap = {}
    for p in procs:
        pid = p["pid"]
        try:
            snap[pid] = {"ns": sched_ns(pid), "ticks": stat_ticks(pid), **status(pid)}
        except OSError:
            snap[pid] = None  # the process died
    return t, snap


def cmd_window(a):
    procs = read_pids(a.pids)
    for p in procs:
        p["comm"] = comm(p["pid"])
    sources = wire_sources(procs, a.pids)
    time.sleep(a.warmup)
    t0, s0 = snapshot(procs)
    w0 = wire_snapshot(sources)
    samples = {p["pid"]: [] for p in procs}
    end = t0 + a.duration
    while True:
        now = time.monotonic()
        if now >= end:
            break
        time.sleep(min(a.sample, end - now))
        if time.monotonic() < end - 0.5:
            for p in procs:
                try:
                    samples[p["pid"]].append(status(p["pid"])["VmRSS"])
                except OSError:
                    pass
    t1, s1 = snapshot(procs)
    w1 = wire_snapshot(sources)
    for p in procs:
        if s1.get(p["pid"]) is not None:
            try:
                s1[p["pid"]]["uss_kb"] = uss(p["pid"])
            except OSError:
                pass  # e.g. not root for another user's process: left out
    secs = t1 - t0
    rows = []
    for p in procs:
        a0, a1 = s0.get(p["pid"]), s1.get(p["pid"])
        if a0 is None or a1 is None:
            rows.append({**p, "dead": True})
            continue
        rows.append({
            **p,
            "window_s": secs,
            "cpu_s": (a1["ns"] - a0["ns"]) / 1e9,
            "cpu_s_stat": (a1["ticks"] - a0["ticks"]) / CLK_TCK,
            "rss_kb": a1["VmRSS"],
            "uss_kb": a1.get("uss_kb"),
            "hwm_kb": a1["VmHWM"],
            "threads": a1["Threads"],
            "rss_samples_kb": samples[p["pid"]] + [a1["VmRSS"]],
        })
    wire = {}
    for name in sources:
        a0, a1 = w0[name], w1[name]
        wire[name] = {
            "lo_tx_bytes": a1["lo"][0] - a0["lo"][0] if a0["lo"] and a1["lo"] else None,
            "lo_tx_packets": a1["lo"][1] - a0["lo"][1] if a0["lo"] and a1["lo"] else None,
            "statuses": (a1["statuses"] - a0["statuses"]
                         if a0["statuses"] is not None and a1["statuses"] is not None
                         else None),
        }
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "warmup_s": a.warmup,
           "window_s": secs, "rows": rows, "wire": wire}
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    print_table(out)


def mib(kb):
    return kb / 1024.0


def summarise(data):
    """Per system: mean per node of RSS, HWM, CPU s/min, threads (max); per
    node lo bytes/min, packets/min, statuses/min, and packets per status."""
    systems = {}
    for r in data["rows"]:
        systems.setdefault(r["system"], []).append(r)
    summary = {}
    for name, rows in systems.items():
        live = [r for r in rows if not r.get("dead")]
        if not live:
            summary[name] = {"dead": True, "nodes": len(rows)}
            continue
        n = len(live)
        summary[name] = {
            "nodes": len(rows),
            "dead": len(rows) - n,
            "rss": sum(mib(r["rss_kb"]) for r in live) / n,
            "uss": (sum(mib(r["uss_kb"]) for r in live) / n
                    if all(r.get("uss_kb") is not None for r in live) else None),
            "rss_max": max(mib(r["rss_kb"]) for r in live),
            "hwm": max(mib(r["hwm_kb"]) for r in live),
            "cpu": sum(r["cpu_s"] * 60.0 / r["window_s"] for r in live) / n,
            "cpu_stat": sum(r["cpu_s_stat"] * 60.0 / r["window_s"] for r in live) / n,
            "threads": max(r["threads"] for r in live),
            "comm": live[0]["comm"],
        }
    for name, w in data.get("wire", {}).items():
        v = summary.get(name)
        if v is None or v.get("dead") is True:
            continue
        per_min = 60.0 / data["window_s"] / v["nodes"]
        v["bytes_min"] = w["lo_tx_bytes"] * per_min if w["lo_tx_bytes"] is not None else None
        v["packets_min"] = (w["lo_tx_packets"] * per_min
                            if w["lo_tx_packets"] is not None else None)
        v["statuses_min"] = w["statuses"] * per_min if w["statuses"] is not None else None
        v["packets_per_status"] = (w["lo_tx_packets"] / w["statuses"]
                                   if w["lo_tx_packets"] is not None and w["statuses"]
                                   else None)
    return summary


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


def fmt(x, spec):
    return format(x, spec) if x is not None else "n/a"


def live(v):
    return v is not None and v.get("dead") is not True


def check(name, what, value, limit, text):
    """One target line: the figures, then PASS, FAIL or n/a."""
    verdict = "n/a" if value is None or limit is None else (
        "PASS" if value <= limit else "FAIL")
    print(f"{name}: {what} {text}: {verdict}")


def print_table(data):
    s = summarise(data)
    g, py = s.get("gmond"), s.get("python")
    print(f"# window {data['window_s']:.1f} s after {data['warmup_s']:.0f} s warm-up; "
          f"{data['date']}; per node = mean over the nodes (threads, HWM: max)")
    hdr = ("| system | nodes | RSS MiB/node | USS MiB/node | HWM MiB | CPU s/min/node | threads "
           "| RSS / gmond | CPU / gmond | RSS / Python | CPU / Python "
           "| lo bytes/min/node | lo packets/min/node | statuses/min/node | packets/status |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for name, v in s.items():
        if v.get("dead") is True:
            print(f"| {name} | {v['nodes']} | died |" + " |" * (hdr.count("|") - 4))
            continue
        cells = [name, f"{v['nodes']}" + (f" ({v['dead']} died)" if v["dead"] else ""),
                 f"{v['rss']:.2f}",
                 f"{v['uss']:.2f}" if v.get("uss") is not None else "n/a",
                 f"{v['hwm']:.2f}", f"{v['cpu']:.4f}", str(v["threads"])]
        for ref in (g, py):
            if ref and not ref.get("dead") is True:
                cells += [ratio(v["rss"], ref["rss"]), ratio(v["cpu"], ref["cpu"])]
            else:
                cells += ["n/a", "n/a"]
        cells += [fmt(v.get("bytes_min"), ".0f"), fmt(v.get("packets_min"), ".1f"),
                  fmt(v.get("statuses_min"), ".1f"), fmt(v.get("packets_per_status"), ".2f")]
        print("| " + " | ".join(cells) + " |")
    print()
    print("# issue 15 targets, per p2pmon system (RSS: the target is with HTTP on, "
          "p2pmon-http; n/a: no figure to compare)")
    for name, v in s.items():
        if not name.startswith("p2pmon") or v.get("dead") is True:
            continue
        # a check whose reference system is not in the run is left out
        # (bench/footprint.sh runs p2pmon alone); n/a marks a missing figure
        if g is not None:
            lim = RSS_VS_GMOND * g["rss"] if live(g) else None
            check(name, "RSS", v["rss"], lim,
                  f"{v['rss']:.2f} <= {RSS_VS_GMOND} x gmond {fmt(g.get('rss'), '.2f')}"
                  f" = {fmt(lim, '.2f')} MiB")
        if py is not None:
            lim = CPU_VS_PYTHON * py["cpu"] if live(py) else None
            check(name, "CPU", v["cpu"], lim,
                  f"{v['cpu']:.4f} <= {CPU_VS_PYTHON} x Python {fmt(py.get('cpu'), '.4f')}"
                  f" = {fmt(lim, '.4f')} s/min/node")
            lim = (BYTES_VS_PYTHON * py["bytes_min"]
                   if live(py) and py.get("bytes_min") is not None else None)
            check(name, "lo bytes/min/node", v.get("bytes_min"), lim,
                  f"{fmt(v.get('bytes_min'), '.0f')} <= Python {fmt(lim, '.0f')}")
        if "bytes_min" in v:
            check(name, "packets per status", v.get("packets_per_status"),
                  MAX_PACKETS_PER_STATUS,
                  f"{fmt(v.get('packets_per_status'), '.2f')} <= {MAX_PACKETS_PER_STATUS}")
        check(name, "threads", v["threads"], MAX_THREADS, f"{v['threads']} <= {MAX_THREADS}")


def cmd_table(a):
    with open(a.json) as f:
        print_table(json.load(f))


def cmd_series(a):
    procs = read_pids(a.pids)
    start = time.monotonic()
    series = []
    while True:
        t = time.monotonic() - start
        row = {"t": round(t, 1)}
        for p in procs:
            try:
                st = status(p["pid"])
                row[p["node"]] = {"rss_kb": st["VmRSS"], "hwm_kb": st["VmHWM"],
                                  "threads": st["Threads"], "cpu_ns": sched_ns(p["pid"])}
            except OSError:
                row[p["node"]] = None
        series.append(row)
        print(f"t={t:6.1f}s " + " ".join(
            f"{p['node']}={row[p['node']]['rss_kb'] if row[p['node']] else 'dead'}kB"
            for p in procs), flush=True)
        if t >= a.duration:
            break
        time.sleep(max(0.0, start + (len(series)) * a.every - time.monotonic()))
    with open(a.json, "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "every_s": a.every,
                   "series": series}, f, indent=1)
    print()
    print("| node | first RSS kB | min | max | last | last - first | HWM kB at end "
          "| threads | CPU s/min |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in procs:
        vals = [r[p["node"]] for r in series if r[p["node"]]]
        rss = [v["rss_kb"] for v in vals]
        cpu = (vals[-1]["cpu_ns"] - vals[0]["cpu_ns"]) / 1e9 * 60.0 / max(series[-1]["t"], 1)
        print(f"| {p['node']} | {rss[0]} | {min(rss)} | {max(rss)} | {rss[-1]} | "
              f"{rss[-1] - rss[0]:+d} | {vals[-1]['hwm_kb']} | {vals[-1]['threads']} | {cpu:.4f} |")
    # growth after the first minute (start-up allocations excluded)
    for p in procs:
        vals = [(r["t"], r[p["node"]]["rss_kb"]) for r in series if r[p["node"]] and r["t"] >= 60]
        if len(vals) >= 2:
            n = len(vals)
            mt = sum(t for t, _ in vals) / n
            mr = sum(r for _, r in vals) / n
            den = sum((t - mt) ** 2 for t, _ in vals)
            slope = sum((t - mt) * (r - mr) for t, r in vals) / den if den else 0.0
            print(f"{p['node']}: after t=60 s, RSS {vals[0][1]} -> {vals[-1][1]} kB, "
                  f"least-squares slope {slope * 60:+.2f} kB/min")


SMAPS_HEAD = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")
KINDS = ["binary text", "binary rodata", "binary data", "libc", "other libs", "[heap]",
         "thread stacks", "malloc arenas", "other anonymous", "[stack]", "other"]


def smaps(pid):
    """The mappings of /proc/PID/smaps: start, end, perms, path, Rss, Private kB."""
    maps = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = SMAPS_HEAD.match(line)
            if m:
                maps.append({"start": int(m[1], 16), "end": int(m[2], 16), "perms": m[3],
                             "path": m[4].strip(), "rss": 0, "private": 0})
                continue
            k, _, v = line.partition(":")
            if k == "Rss":
                maps[-1]["rss"] = int(v.split()[0])
            elif k in ("Private_Clean", "Private_Dirty"):
                maps[-1]["private"] += int(v.split()[0])
    return maps


def classify(maps, exe):
    """Each mapping's kind. A thread stack is an anonymous rw mapping right
    above a no-access guard (glibc puts the guard below the stack); a malloc
    arena is an anonymous rw mapping right below its no-access reserve (a
    per-thread heap reserves 64 MiB and grows into it)."""
    kinds = []
    for i, m in enumerate(maps):
        path, perms = m["path"], m["perms"]
        below = maps[i - 1] if i > 0 else None
        above = maps[i + 1] if i + 1 < len(maps) else None
        if path == exe:
            kind = ("binary text" if "x" in perms else
                    "binary data" if "w" in perms else "binary rodata")
        elif "/libc.so" in path or "/libc-" in path:
            kind = "libc"
        elif ".so" in path:
            kind = "other libs"
        elif path in ("[heap]", "[stack]"):
            kind = path
        elif path == "" and perms.startswith("rw"):
            if below and below["path"] == "" and below["perms"].startswith("---") \
                    and below["end"] == m["start"] and below["end"] - below["start"] <= 1 << 16:
                kind = "thread stacks"
            elif above and above["path"] == "" and above["perms"].startswith("---") \
                    and above["start"] == m["end"] and (m["start"] & ((64 << 20) - 1)) == 0:
                kind = "malloc arenas"
            else:
                kind = "other anonymous"
        else:
            kind = "other"  # [vvar], [vdso], guards, other files
        kinds.append(kind)
    return kinds


def cmd_smaps(a):
    procs = read_pids(a.pids)
    out = []
    for p in procs:
        pid = p["pid"]
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            maps = smaps(pid)
            st = status(pid)
            u = uss(pid)
        except OSError as e:
            print(f"{p['system']} {p['node']}: {e}", file=sys.stderr)
            continue
        by = {k: {"rss": 0, "private": 0, "maps": 0} for k in KINDS}
        for m, kind in zip(maps, classify(maps, exe)):
            by[kind]["rss"] += m["rss"]
            by[kind]["private"] += m["private"]
            by[kind]["maps"] += 1
        out.append({**p, "exe": exe, "rss_kb": st["VmRSS"], "uss_kb": u,
                    "threads": st["Threads"], "by": by})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "rows": out}, f, indent=1)
    print("| node | VmRSS kB | USS kB | threads |")
    print("|---|---|---|---|")
    for r in out:
        print(f"| {r['system']} {r['node']} | {r['rss_kb']} | {r['uss_kb']} | {r['threads']} |")
    print()
    print("RSS / private kB by mapping (private = Private_Clean + Private_Dirty):")
    print()
    print("| mapping | " + " | ".join(f"{r['node']} RSS | private" for r in out) + " |")
    print("|---|" + "---|---|" * len(out))
    for k in KINDS:
        if not any(r["by"][k]["maps"] for r in out):
            continue
        print(f"| {k} | " + " | ".join(f"{r['by'][k]['rss']} | {r['by'][k]['private']}"
                                        for r in out) + " |")
    print("| total | " + " | ".join(
        f"{sum(v['rss'] for v in r['by'].values())} | "
        f"{sum(v['private'] for v in r['by'].values())}" for r in out) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("window")
    w.add_argument("--pids", required=True)
    w.add_argument("--warmup", type=float, default=20)
    w.add_argument("--duration", type=float, default=90)
    w.add_argument("--sample", type=float, default=10)
    w.add_argument("--json", required=True)
    w.set_defaults(func=cmd_window)
    t = sub.add_parser("table")
    t.add_argument("--json", required=True)
    t.set_defaults(func=cmd_table)
    s = sub.add_parser("series")
    s.add_argument("--pids", required=True)
    s.add_argument("--duration", type=float, default=600)
    s.add_argument("--every", type=float, default=10)
    s.add_argument("--json", required=True)
    s.set_defaults(func=cmd_series)
    m = sub.add_parser("smaps")
    m.add_argument("--pids", required=True)
    m.add_argument("--json")
    m.set_defaults(func=cmd_smaps)
    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    sys.exit(main())
