/**
 * `top`: a container's processes, read from its cgroup (cgroup.procs) and /proc, in the columns
 * docker top prints (it runs `ps -ef` on the host and keeps the container's pids): UID PID PPID C
 * STIME TTY TIME CMD, host pids and host user names. Only processes in pid 1's pid namespace are
 * listed: the host-side launcher that also sits in the cgroup is not the container's.
 */
import { promises as fs } from 'node:fs';
import type { Cgroup } from './cgroups.ts';

export const TOP_TITLES = ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'];
/** USER_HZ: the unit of /proc/PID/stat times, 100 on every Linux architecture's userspace ABI. */
const HZ = 100;

export interface TopResult {
  titles: string[];
  processes: string[][];
}

export async function top(cg: Cgroup, initPid: number, now = new Date()): Promise<TopResult> {
  const ns = await fs.readlink(`/proc/${initPid}/ns/pid`).catch(() => undefined);
  const [btime, uptime, names] = await Promise.all([bootTime(), upSeconds(), userNames()]);
  const rows: [number, string[]][] = [];
  for (const pid of (await cg.pids()).sort((a, b) => a - b)) {
    if (ns && (await fs.readlink(`/proc/${pid}/ns/pid`).catch(() => '')) !== ns) continue;
    const row = await psRow(pid, btime, uptime, names, now).catch(() => undefined); // gone meanwhile
    if (row) rows.push([pid, row]);
  }
  return { titles: TOP_TITLES, processes: rows.map(([, r]) => r) };
}

async function psRow(
  pid: number,
  btime: number,
  uptime: number,
  names: Map<number, string>,
  now: Date,
): Promise<string[]> {
  const [stat, status, cmdline] = await Promise.all([
    fs.readFile(`/proc/${pid}/stat`, 'utf8'),
    fs.readFile(`/proc/${pid}/status`, 'utf8'),
    fs.readFile(`/proc/${pid}/cmdline`),
  ]);
  // comm may hold spaces and parens: the fields start after the last ')'
  const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const field = (n: number) => Number(f[n - 3]); // proc(5) numbers the fields from 1
  const uid = Number(/^Uid:\s*(\d+)/m.exec(status)?.[1] ?? 0);
  const cpuTicks = field(14) + field(15);
  const startTicks = field(22);
  const elapsed = uptime - startTicks / HZ;
  const c = elapsed > 0 ? Math.min(99, Math.floor((cpuTicks * 100) / HZ / elapsed)) : 0;
  const args = cmdline.toString('utf8').split('\0');
  while (args.length && args[args.length - 1] === '') args.pop();
  return [
    names.get(uid) ?? String(uid),
    String(pid),
    String(field(4)),
    String(c),
    startTime(new Date((btime + startTicks / HZ) * 1000), now),
    ttyName(field(7)),
    cpuTime(Math.floor(cpuTicks / HZ)),
    args.length ? args.join(' ') : `[${comm}]`,
  ];
}

/** procps' STIME: HH:MM today, MmmDD this year, else the year (local time, as ps). */
export function startTime(t: Date, now: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  if (t.getFullYear() !== now.getFullYear()) return String(t.getFullYear());
  if (t.getMonth() !== now.getMonth() || t.getDate() !== now.getDate())
    return t.toLocaleString('en-US', { month: 'short' }) + two(t.getDate());
  return `${two(t.getHours())}:${two(t.getMinutes())}`;
}

/** procps' TIME: [DD-]HH:MM:SS of cpu time. */
export function cpuTime(sec: number): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const d = Math.floor(sec / 86400);
  const hms = `${two(Math.floor((sec % 86400) / 3600))}:${two(Math.floor((sec % 3600) / 60))}:${two(sec % 60)}`;
  return d ? `${two(d)}-${hms}` : hms;
}

/** The tty of /proc/PID/stat's tty_nr: ptys (majors 136-143) as pts/N, none as '?'. */
export function ttyName(ttyNr: number): string {
  if (!ttyNr) return '?';
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${(major - 136) * 256 + minor}`;
  if (major === 4 && minor < 64) return `tty${minor}`;
  return '?';
}

async function bootTime(): Promise<number> {
  return Number(/^btime (\d+)/m.exec(await fs.readFile('/proc/stat', 'utf8'))?.[1] ?? 0);
}

async function upSeconds(): Promise<number> {
  return Number((await fs.readFile('/proc/uptime', 'utf8')).split(' ')[0]);
}

/** Host user names (ps runs on the host: the container's uids are shown as the host names them). */
async function userNames(): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const line of (await fs.readFile('/etc/passwd', 'utf8').catch(() => '')).split('\n')) {
    const f = line.split(':');
    if (f.length > 3 && /^\d+$/.test(f[2]) && !out.has(Number(f[2]))) out.set(Number(f[2]), f[0]);
  }
  return out;
}
