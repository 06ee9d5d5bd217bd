/**
 * The security defaults both executors apply, Docker's (moby oci/defaults.go and caps/defaults.go,
 * runc's `runc spec`): the capability set, paths masked or made read-only under /proc and /sys,
 * and rlimits.
 */

/** PATH of a container whose env has none, and of every image FROM scratch (BuildKit's default). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's default capability set (without the CAP_ prefix, lower case for setpriv). */
export const DEFAULT_CAPS = [
  'chown',
  'dac_override',
  'fsetid',
  'fowner',
  'mknod',
  'net_raw',
  'setgid',
  'setuid',
  'setfcap',
  'setpcap',
  'net_bind_service',
  'sys_chroot',
  'kill',
  'audit_write',
];

/** Hidden from the container: directories get an empty read-only tmpfs, files /dev/null. */
export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts', // moby 25+
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Open files: soft and hard (runc spec's default). */
export const NOFILE_LIMIT = 1024;
