/*
 * The pty of a container process (`run -t`, `exec -t`): the master is opened in the container's
 * own devpts instance (its /dev/ptmx), so `tty` inside names /dev/pts/N of the container, as
 * runc's console does. The process that holds the master copies bytes between it and its own
 * stdin/stdout (the user's terminal, put in raw mode, or Node's pipes) and passes window-size
 * changes on (SIGWINCH, read from its stdin when that is a terminal).
 * Built into the same binary as vlab-init.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "vlab-init.h"

int open_pty_master(const char *ptmx, char *slave, size_t len, unsigned rows, unsigned cols) {
  int m = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) die("open", ptmx);
  if (unlockpt(m) != 0) die("unlockpt", ptmx);
  if (ptsname_r(m, slave, len) != 0) die("ptsname", ptmx);
  struct winsize ws = {0};
  if (isatty(0) && ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row) {
    /* the user's terminal decides */
  } else {
    ws.ws_row = rows ? rows : 24;
    ws.ws_col = cols ? cols : 80;
  }
  if (ioctl(m, TIOCSWINSZ, &ws) != 0) die("set window size", NULL);
  return m;
}

void attach_slave(const char *slave) {
  int s = open(slave, O_RDWR);
  if (s < 0) die("open", slave);
  if (ioctl(s, TIOCSCTTY, 0) != 0) die("set controlling terminal", slave);
  if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0) die("dup2", slave);
  if (s > 2) close(s);
}

static int write_all(int fd, const char *p, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= w;
  }
  return 0;
}

static struct termios saved;
static int raw;

static void restore_terminal(void) {
  if (raw) tcsetattr(0, TCSADRAIN, &saved);
}

void relay_pty(int master) {
  if (isatty(0) && tcgetattr(0, &saved) == 0) {
    struct termios t = saved;
    cfmakeraw(&t);
    if (tcsetattr(0, TCSADRAIN, &t) == 0) raw = 1;
    atexit(restore_terminal);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGWINCH);
  sigprocmask(SIG_BLOCK, &set, NULL);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  char buf[16384];
  int in_open = 1;
  for (;;) {
    struct pollfd p[3] = {{master, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break; /* EIO: every holder of the slave is gone */
      if (write_all(1, buf, n) != 0) break;
    }
    if (p[1].revents) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) in_open = 0; /* our stdin ended: the process keeps its terminal */
      else if (write_all(master, buf, n) != 0) break;
    }
    if (sfd >= 0 && p[2].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {
      }
      struct winsize ws;
      if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
    }
  }
  restore_terminal();
  raw = 0;
  if (sfd >= 0) close(sfd);
  close(master);
}
