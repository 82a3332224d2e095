//! The host's own readings: CPU, memory and the rest of its health
//! (DESIGN.md "Host health"), taken once per interval on the sender thread.
//! The only file that knows sysinfo, so a change of collector (or of
//! sysinfo's API) stays here; only the parts that are sent are refreshed, and
//! sysinfo's thread pool is off (Cargo.toml).
//!
//! sysinfo gives CPU and memory (and swap, read in the same pass over
//! /proc/meminfo), the logical CPU count, the load averages and the uptime.
//! Two parts it has no cheap way to give (its disk and network features
//! would mean more code and other rules), so this file, and no other, reads
//! /proc for them on Linux: `/proc/self/mounts` with one `statvfs` per local
//! filesystem (`df`'s arithmetic, so `used` matches its Use%), and
//! `/proc/net/dev` for bytes received and sent. Each file is read once per
//! sample and parsed by a pure function (unit-tested on sample texts). Where
//! a source is missing (another OS, an unreadable file, a value the wire
//! would refuse), that part is left out rather than sent as zero.

use sysinfo::System;

use crate::limits::{MAX_CPUS, MAX_FILESYSTEMS, MAX_LOAD, MAX_MOUNT_LEN};
use crate::proto::health::{Filesystem, Health};

/// A source of CPU and memory percentages and of the host's health.
#[derive(Debug)]
pub struct Sampler {
    system: System,
}

/// One reading: CPU and memory in percent (0..=100), and the rest of the
/// host's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub cpu: f64,
    pub memory: f64,
    pub health: Health,
}

impl Sampler {
    /// Takes a first CPU reading, so the first real sample covers the time
    /// since start rather than reporting 0.
    pub fn new() -> std::io::Result<Sampler> {
        let mut system = System::new().map_err(|e| std::io::Error::other(e.to_string()))?;
        system.refresh_cpu_usage();
        Ok(Sampler { system })
    }

    /// CPU use since the previous call, memory in use now, and the host's
    /// health now.
    pub fn sample(&mut self) -> Sample {
        self.system.refresh_cpu_usage();
        // RAM and swap, from one read of /proc/meminfo.
        self.system.refresh_memory();
        let cpu = f64::from(self.system.global_cpu_usage());
        let memory = percent(self.system.used_memory(), self.system.total_memory()).unwrap_or(0.0);
        let (net_rx, net_tx) = match network_bytes() {
            Some((rx, tx)) => (Some(rx), Some(tx)),
            None => (None, None),
        };
        let health = Health {
            load: System::load_average()
                .ok()
                .and_then(|load| valid_load([load.one, load.five, load.fifteen])),
            cpus: u32::try_from(self.system.cpus().len())
                .ok()
                .filter(|n| (1..=MAX_CPUS).contains(n)),
            // Absent without swap: 0 % of nothing is not a reading.
            swap: percent(self.system.used_swap(), self.system.total_swap()),
            fs: filesystems(),
            net_rx,
            net_tx,
            uptime_s: System::uptime().ok(),
        };
        Sample {
            cpu: clamp_percent(cpu),
            memory: clamp_percent(memory),
            health,
        }
    }
}

/// The host name, for the default --name.
pub fn host_name() -> Option<String> {
    System::host_name().ok()
}

/// Keeps a reading inside what the wire accepts, whatever the OS reported.
fn clamp_percent(value: f64) -> f64 {
    if value.is_finite() {
        value.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// `part` of `whole` in percent; none of nothing.
fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| clamp_percent(part as f64 * 100.0 / whole as f64))
}

/// Load averages as the wire accepts them (finite, 0..=MAX_LOAD), or none.
fn valid_load(load: [f64; 3]) -> Option<[f64; 3]> {
    load.iter()
        .all(|x| x.is_finite() && (0.0..=MAX_LOAD).contains(x))
        .then_some(load)
}

/// Bytes received and sent since boot over every interface but loopback.
#[cfg(target_os = "linux")]
fn network_bytes() -> Option<(u64, u64)> {
    parse_net_dev(&std::fs::read_to_string("/proc/net/dev").ok()?)
}

#[cfg(not(target_os = "linux"))]
fn network_bytes() -> Option<(u64, u64)> {
    None
}

/// The local filesystems, fullest first, at most [`MAX_FILESYSTEMS`].
#[cfg(target_os = "linux")]
fn filesystems() -> Vec<Filesystem> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let measured = local_mounts(&mounts).into_iter().filter_map(|mount| {
        // A mount that vanished since the read, or that we may not stat, is
        // left out.
        let stats = rustix::fs::statvfs(mount.as_str()).ok()?;
        measure(
            mount,
            Blocks {
                blocks: stats.f_blocks,
                free: stats.f_bfree,
                available: stats.f_bavail,
                fragment: stats.f_frsize,
            },
        )
    });
    fullest_first(measured.collect())
}

#[cfg(not(target_os = "linux"))]
fn filesystems() -> Vec<Filesystem> {
    Vec::new()
}

/// Sums the received and sent bytes of `/proc/net/dev`'s text over every
/// interface but `lo`. None if no line parses (not that file).
#[cfg(any(target_os = "linux", test))]
fn parse_net_dev(text: &str) -> Option<(u64, u64)> {
    let mut total: Option<(u64, u64)> = None;
    // Two header lines, then `name: rx_bytes rx_packets ... (8 receive
    // fields) tx_bytes ...`; the name may touch its first number.
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let counters: Vec<u64> = match counters.split_whitespace().map(str::parse).collect() {
            Ok(counters) => counters,
            Err(_) => continue,
        };
        let (Some(&rx), Some(&tx)) = (counters.first(), counters.get(8)) else {
            continue;
        };
        let (sum_rx, sum_tx) = total.get_or_insert((0, 0));
        if name.trim() != "lo" {
            *sum_rx = sum_rx.saturating_add(rx);
            *sum_tx = sum_tx.saturating_add(tx);
        }
    }
    total
}

/// Filesystem types that are not local storage: kernel and memory
/// filesystems (their "use" says nothing of a disk), read-only images that
/// are always full (squashfs snaps, ISO images), container layers (overlay:
/// its numbers are the disk below, already counted), and network
/// filesystems (someone else's disk, and `statvfs` on a dead server hangs).
#[cfg(any(target_os = "linux", test))]
const NOT_LOCAL: &[&str] = &[
    // kernel and memory
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "ramfs",
    "rootfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "selinuxfs",
    "pstore",
    "bpf",
    "tracefs",
    "debugfs",
    "mqueue",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "efivarfs",
    "nfsd",
    // images and layers
    "overlay",
    "aufs",
    "squashfs",
    "erofs",
    "iso9660",
    // network and host-shared
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ncpfs",
    "afs",
    "9p",
    "virtiofs",
    "ceph",
    "glusterfs",
    "lustre",
    "gpfs",
    "beegfs",
    "davfs",
    "fuse",
    "sshfs",
];

/// Whether a filesystem of type `kind` is local storage worth reporting.
/// FUSE filesystems (`fuse.sshfs`, `fuse.lxcfs`...) are left out, except
/// `fuseblk`, a local block device (ntfs-3g, exfat).
#[cfg(any(target_os = "linux", test))]
fn is_local(kind: &str) -> bool {
    !(NOT_LOCAL.contains(&kind) || kind.starts_with("fuse.") || kind.starts_with("nfs"))
}

/// The mount points of `/proc/self/mounts`' text worth measuring: local
/// filesystems, one mount point per device (a device mounted twice, a bind
/// mount, keeps its shortest mount point, as `df` does), only mount points a
/// peer accepts (printable, at most [`MAX_MOUNT_LEN`] bytes).
#[cfg(any(target_os = "linux", test))]
fn local_mounts(text: &str) -> Vec<String> {
    let mut chosen: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(device), Some(mount), Some(kind)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !is_local(kind) {
            continue;
        }
        let mount = unescape_mount(mount);
        if mount.is_empty() || mount.len() > MAX_MOUNT_LEN || crate::names::check(&mount).is_err() {
            continue;
        }
        match chosen.iter_mut().find(|(seen, _)| *seen == device) {
            Some((_, kept)) => {
                if mount.len() < kept.len() {
                    *kept = mount;
                }
            }
            None => chosen.push((device, mount)),
        }
    }
    chosen.into_iter().map(|(_, mount)| mount).collect()
}

/// A mount point as the kernel writes it in /proc/self/mounts, with space,
/// tab, newline and backslash as octal escapes (`\040`), decoded.
#[cfg(any(target_os = "linux", test))]
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What `statvfs` says of a filesystem's blocks.
#[derive(Debug, Clone, Copy)]
#[cfg(any(target_os = "linux", test))]
struct Blocks {
    /// Size in fragments (`f_blocks`).
    blocks: u64,
    /// Free, counting the blocks reserved for root (`f_bfree`).
    free: u64,
    /// Free for ordinary users (`f_bavail`).
    available: u64,
    /// Bytes per fragment (`f_frsize`).
    fragment: u64,
}

/// A filesystem's use as `df` computes Use%: used = blocks − free, and
/// used / (used + available), so the blocks reserved for root count as
/// neither (a disk is 100 % full when users can write no more). Sizeless
/// filesystems (`df` hides them too) are left out.
#[cfg(any(target_os = "linux", test))]
fn measure(mount: String, blocks: Blocks) -> Option<Filesystem> {
    let used = blocks.blocks.saturating_sub(blocks.free);
    let usable = used.saturating_add(blocks.available);
    if blocks.blocks == 0 || usable == 0 {
        return None;
    }
    Some(Filesystem {
        mount,
        used: clamp_percent(used as f64 * 100.0 / usable as f64),
        size: blocks.blocks.saturating_mul(blocks.fragment),
    })
}

/// Fullest first (ties: the shorter mount point), at most [`MAX_FILESYSTEMS`].
#[cfg(any(target_os = "linux", test))]
fn fullest_first(mut fs: Vec<Filesystem>) -> Vec<Filesystem> {
    fs.sort_by(|a, b| {
        b.used
            .total_cmp(&a.used)
            .then_with(|| a.mount.len().cmp(&b.mount.len()))
            .then_with(|| a.mount.cmp(&b.mount))
    });
    fs.truncate(MAX_FILESYSTEMS);
    fs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_percentages() {
        let mut sampler = match Sampler::new() {
            Ok(sampler) => sampler,
            Err(e) => panic!("sysinfo unavailable: {e}"),
        };
        let sample = sampler.sample();
        assert!((0.0..=100.0).contains(&sample.cpu));
        assert!(sample.memory > 0.0 && sample.memory <= 100.0, "{sample:?}");
    }

    /// What this host gives is what the wire accepts: a sample encodes and
    /// decodes to itself (rounded), every part Linux has is there.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_linux_sample_has_every_part_and_a_peer_accepts_it() {
        let mut sampler = match Sampler::new() {
            Ok(sampler) => sampler,
            Err(e) => panic!("sysinfo unavailable: {e}"),
        };
        let health = sampler.sample().health;
        assert!(health.load.is_some(), "{health:?}");
        assert!(health.cpus.is_some_and(|n| n >= 1), "{health:?}");
        assert!(health.fs.iter().any(|fs| fs.mount == "/"), "{health:?}");
        assert!(health.net_rx.is_some() && health.net_tx.is_some());
        assert!(health.uptime_s.is_some_and(|s| s > 0));
        let message = crate::proto::wire::Message::Status {
            header: crate::proto::wire::Header {
                node: "a".into(),
                port: 5000,
                boot: 1,
                seq: 0,
                ts: 1,
                interval_ms: 1000,
                members: Vec::new(),
            },
            cpu: 1.0,
            memory: 2.0,
            health: health.clone(),
        };
        let line = crate::proto::wire::encode(&message);
        let decoded = crate::proto::wire::decode(line.trim_ascii_end());
        let Ok(crate::proto::wire::Message::Status { health: back, .. }) = decoded else {
            panic!("refused: {decoded:?}");
        };
        assert_eq!(back.fs.len(), health.fs.len());
        assert_eq!(back.cpus, health.cpus);
    }

    #[test]
    fn clamping() {
        assert_eq!(clamp_percent(f64::NAN), 0.0);
        assert_eq!(clamp_percent(100.5), 100.0);
        assert_eq!(clamp_percent(-1.0), 0.0);
        assert_eq!(clamp_percent(42.0), 42.0);
    }

    #[test]
    fn swap_is_absent_without_swap() {
        assert_eq!(percent(0, 0), None);
        assert_eq!(percent(1, 4), Some(25.0));
        assert_eq!(percent(5, 4), Some(100.0));
    }

    #[test]
    fn load_the_wire_would_refuse_is_left_out() {
        assert_eq!(valid_load([0.5, 0.6, 0.7]), Some([0.5, 0.6, 0.7]));
        assert_eq!(valid_load([f64::NAN, 0.6, 0.7]), None);
        assert_eq!(valid_load([0.5, -1.0, 0.7]), None);
        assert_eq!(valid_load([0.5, 0.6, 2e6]), None);
    }

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 13012439333 2755753    0    0    0     0          0         0 13012439333 2755753    0    0    0     0       0          0
  eth0: 291805995    9026    0    0    0     0          0         0   469120    5005    0    0    0     0       0          0
wlan0:18446744073709551615 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
";

    #[test]
    fn network_bytes_sum_every_interface_but_loopback() {
        // wlan0's name touches its first counter; the sum saturates.
        assert_eq!(parse_net_dev(NET_DEV), Some((u64::MAX, 469_127)));
        let without_wlan: String = NET_DEV
            .lines()
            .filter(|l| !l.starts_with("wlan0"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse_net_dev(&without_wlan), Some((291_805_995, 469_120)));
        // Only loopback: zero, not absent (the host has no other traffic).
        let only_lo: String = NET_DEV.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse_net_dev(&only_lo), Some((0, 0)));
        // Not that file, or a line cut short: nothing from it.
        assert_eq!(parse_net_dev(""), None);
        assert_eq!(parse_net_dev("a\nb\n  eth0: 1 2 3\n"), None);
        assert_eq!(parse_net_dev("a\nb\n  eth0: 1 2 3 x 5 6 7 8 9\n"), None);
    }

    #[test]
    fn the_filter_keeps_local_disks_only() {
        for kind in [
            "ext4", "xfs", "btrfs", "zfs", "vfat", "f2fs", "fuseblk", "ext2",
        ] {
            assert!(is_local(kind), "{kind}");
        }
        for kind in [
            "proc",
            "sysfs",
            "tmpfs",
            "devtmpfs",
            "devpts",
            "overlay",
            "squashfs",
            "cgroup",
            "cgroup2",
            "securityfs",
            "pstore",
            "bpf",
            "tracefs",
            "debugfs",
            "mqueue",
            "hugetlbfs",
            "fusectl",
            "configfs",
            "autofs",
            "binfmt_misc",
            "ramfs",
            "rpc_pipefs",
            "nsfs",
            "efivarfs",
            "nfs",
            "nfs4",
            "cifs",
            "smb3",
            "sshfs",
            "fuse.sshfs",
            "fuse.lxcfs",
            "fuse",
            "9p",
            "ceph",
            "glusterfs",
            "iso9660",
            "virtiofs",
        ] {
            assert!(!is_local(kind), "{kind}");
        }
    }

    const MOUNTS: &str = "\
proc /proc proc rw,relatime 0 0
sysfs /sys sysfs rw,relatime 0 0
devtmpfs /dev devtmpfs rw,relatime,size=12334192k 0 0
tmpfs /dev/shm tmpfs rw,relatime 0 0
/dev/vda / ext4 rw,relatime,discard 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
/dev/vda /run/netns ext4 rw,relatime,discard 0 0
/dev/vdb1 /srv/my\\040data xfs rw 0 0
/dev/vdb2 /srv/a\\033[2J xfs rw 0 0
server:/export /mnt/nfs nfs4 rw 0 0
/dev/loop3 /snap/core/1 squashfs ro 0 0
overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0
/dev/vdc /home ext4 rw 0 0
/dev/vdc /bind/home/again ext4 rw 0 0
cut short
";

    #[test]
    fn local_mounts_once_per_device_under_the_shortest_mount_point() {
        assert_eq!(
            local_mounts(MOUNTS),
            // /run/netns is /dev/vda again, /bind/home/again is /dev/vdc
            // again; the escape sequence mount is one no peer would accept.
            ["/", "/srv/my data", "/home"]
        );
        // The shorter mount point wins even when it comes second.
        assert_eq!(
            local_mounts("/dev/sda1 /mnt/root ext4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"),
            ["/"]
        );
        let long = format!("/dev/sda1 /{} ext4 rw 0 0\n", "m".repeat(MAX_MOUNT_LEN));
        assert!(local_mounts(&long).is_empty());
    }

    #[test]
    fn mount_point_escapes_are_decoded() {
        assert_eq!(unescape_mount("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        // A backslash without three octal digits stays as it is.
        assert_eq!(unescape_mount("/a\\9x\\"), "/a\\9x\\");
        assert_eq!(unescape_mount("/é"), "/é");
    }

    #[test]
    fn use_is_computed_as_df_does() {
        // df: 1000 blocks, 300 free of which 250 available to users:
        // used 700, Use% = 700 / (700 + 250) = 73.68...% (df prints 74%).
        let fs = measure(
            "/".into(),
            Blocks {
                blocks: 1000,
                free: 300,
                available: 250,
                fragment: 4096,
            },
        );
        let Some(fs) = fs else {
            panic!("not measured");
        };
        assert!((fs.used - 73.684).abs() < 0.001, "{}", fs.used);
        assert_eq!(fs.size, 4_096_000);
        // Full for users while root still has its reserve: 100 %.
        let full = measure(
            "/".into(),
            Blocks {
                blocks: 1000,
                free: 50,
                available: 0,
                fragment: 1,
            },
        );
        assert_eq!(full.map(|fs| fs.used), Some(100.0));
        // Sizeless: left out, as df does.
        let sizeless = Blocks {
            blocks: 0,
            free: 0,
            available: 0,
            fragment: 4096,
        };
        assert_eq!(measure("/x".into(), sizeless), None);
    }

    #[test]
    fn fullest_first_and_bounded() {
        let fs = |mount: &str, used| Filesystem {
            mount: mount.into(),
            used,
            size: 1,
        };
        let many: Vec<Filesystem> = (0..MAX_FILESYSTEMS + 3)
            .map(|i| fs(&format!("/m{i}"), i as f64))
            .chain([fs("/", 50.0), fs("/b", 50.0)])
            .collect();
        let sorted = fullest_first(many);
        assert_eq!(sorted.len(), MAX_FILESYSTEMS);
        assert_eq!(sorted[0].mount, "/");
        assert_eq!(sorted[1].mount, "/b");
        assert!(sorted.windows(2).all(|w| w[0].used >= w[1].used));
    }
}
