#!/usr/bin/env python3
"""Write a unicast gmond.conf for one of the benchmark's gmond nodes.

Starts from the configuration Debian's ganglia-monitor installs,
/etc/ganglia/gmond.conf (its modules, with their paths, and its collection
groups are kept as they are: default metric collection; `gmond -t` is no
substitute, its modules have no paths and fail to load), and
replaces only what a three-node unicast cluster on loopback needs:
  * globals: daemonize = no, setuid = no (we stop it by PID), and
    override_hostname / override_ip, because gmond 3.7.2 cannot bind the
    source address of what it sends, so every packet leaves from 127.0.0.1;
    send_metadata_interval = 30, as Ganglia's docs require for unicast
    (the default 0 only suits multicast);
  * one udp_send_channel per other node, udp_recv_channel and
    tcp_accept_channel bound on this node's own address.

usage: gmond_conf.py SELF_IP OTHER_IP... > gmond-N.conf
"""
import re
import sys

PORT = 8649
DEFAULT = "/etc/ganglia/gmond.conf"


def main():
    me, others = sys.argv[1], sys.argv[2:]
    with open(DEFAULT) as f:
        conf = f.read()
    # the include line holds "/*" in a path; drop it before stripping comments
    conf = re.sub(r"(?m)^\s*include\s*\(.*\)\s*$", "", conf)
    conf = re.sub(r"/\*.*?\*/", "", conf, flags=re.S)
    for block in ("globals", "cluster", "udp_send_channel", "udp_recv_channel",
                  "tcp_accept_channel"):
        conf = re.sub(r"(?m)^\s*" + block + r"\s*\{[^{}]*\}\s*$", "", conf)
    name = "node" + me.rsplit(".", 1)[1]
    head = f"""globals {{
  daemonize = no
  setuid = no
  user = nobody
  debug_level = 0
  max_udp_msg_len = 1472
  mute = no
  deaf = no
  allow_extra_data = yes
  host_dmax = 0
  cleanup_threshold = 300
  gexec = no
  send_metadata_interval = 30
  override_hostname = "{name}"
  override_ip = "{me}"
}}
cluster {{
  name = "p2pmon-bench"
  owner = "unspecified"
  latlong = "unspecified"
  url = "unspecified"
}}
"""
    for o in others:
        head += f"udp_send_channel {{\n  host = {o}\n  port = {PORT}\n  ttl = 1\n}}\n"
    head += f"udp_recv_channel {{\n  port = {PORT}\n  bind = {me}\n}}\n"
    head += f"tcp_accept_channel {{\n  port = {PORT}\n  bind = {me}\n}}\n"
    conf = re.sub(r"\n\s*\n+", "\n", conf)
    sys.stdout.write(head + conf)


if __name__ == "__main__":
    main()
