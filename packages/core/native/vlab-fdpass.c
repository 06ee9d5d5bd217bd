/*
 * vlab-fdpass.node: the few system calls the warm CLI server (src/cli/server.ts) needs and Node
 * lacks: receiving the client's stdin/stdout/stderr with SCM_RIGHTS (so the command writes to the
 * very same open files, ttys and pipes as a direct run), the peer's uid and pid (SO_PEERCRED), dup2 onto
 * 0/1/2 (so child processes inherit them as they would), file status flags (restored after each
 * request), a blocking-safe write, and pidfds of the peer (SO_PEERPIDFD, pidfd_open): a pid read
 * from the peer is only used while its pidfd says the process is still alive.
 *
 * A Node-API addon without node_api.h (vlab-napi.h declares what it calls), so building it needs
 * only a C compiler. Every function returns a number >= 0 or -errno; nothing throws.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "vlab-napi.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define MAX_REQUEST (8 << 20) /* argv + environment: above ARG_MAX, so any real command fits */
#define MAX_FDS 3

static int32_t arg_int(napi_env env, napi_callback_info info, int i) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t v = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if ((size_t)i < argc) napi_get_value_int32(env, argv[i], &v);
  return v;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for events, at most until deadline (ms, CLOCK_MONOTONIC). */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)left);
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return -errno;
  }
}

/* The number of SCM_RIGHTS descriptors a message carried: the first max kept in fds, the rest closed. */
static int take_fds(struct msghdr *m, int *fds, int max) {
  int n = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int *got = (int *)CMSG_DATA(c);
    for (int i = 0; i < k; i++, n++) {
      if (n < max) fds[n] = got[i];
      else close(got[i]);
    }
  }
  return n;
}

/*
 * One recvmsg of up to `len` bytes into `base`, non-blocking, fds close-on-exec: the first `max`
 * descriptors into `fds`, the rest closed; *nfds: how many came. -EAGAIN: nothing yet.
 * -EBADMSG (every fd closed): the control data was cut (MSG_CTRUNC), so some were lost.
 */
static ssize_t recv_with_fds(int fd, void *base, size_t len, int *fds, int max, int *nfds) {
  struct iovec iov = {.iov_base = base, .iov_len = len};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int) * 8)];
  } ctl;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
  ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
  *nfds = take_fds(&m, fds, max);
  if (m.msg_flags & MSG_CTRUNC) {
    for (int i = 0; i < *nfds && i < max; i++) close(fds[i]);
    *nfds = 0;
    return -EBADMSG;
  }
  return n;
}

/*
 * recvRequest(fd, timeoutMs) -> payload Buffer | -errno. The client sends a little-endian u32
 * length, then the payload; no descriptors (they come with its go-ahead: recvGo). Any that come
 * are closed, and the request is refused.
 */
static napi_value recv_request(napi_env env, napi_callback_info info) {
  int fd = arg_int(env, info, 0);
  long long deadline = now_ms() + arg_int(env, info, 1);
  int extra = 0;
  uint32_t want = 0;
  size_t have = 0;
  char *buf = NULL;
  int err = 0;
  for (;;) {
    if ((err = wait_fd(fd, POLLIN, deadline))) goto fail;
    char head[4];
    int nfds = 0;
    ssize_t n = !buf ? recv_with_fds(fd, head + have, 4 - have, NULL, 0, &nfds)
                     : recv_with_fds(fd, buf + have - 4, want - (have - 4), NULL, 0, &nfds);
    if (n == -EAGAIN) continue;
    if (n <= 0) {
      err = n < 0 ? (int)n : -ECONNRESET;
      goto fail;
    }
    extra += nfds;
    have += (size_t)n;
    if (!buf && have == 4) {
      memcpy(&want, head, 4);
      want = le32toh(want);
      if (want == 0 || want > MAX_REQUEST || !(buf = malloc(want))) {
        err = -EMSGSIZE;
        goto fail;
      }
    }
    if (buf && have - 4 == want) break;
  }
  if (extra) {
    err = -EBADMSG;
    goto fail;
  }
  napi_value b;
  napi_create_buffer_copy(env, want, buf, NULL, &b);
  free(buf);
  return b;
fail:
  free(buf);
  return num(env, err);
}

/*
 * recvGo(fd, timeoutMs) -> [fd0, fd1, fd2] | -errno: the client's go-ahead, one byte "G" with its
 * stdin, stdout and stderr (close-on-exec: only the dup2 onto 0/1/2 is inherited). The one commit
 * point: the server runs the command only once this returned the fds; the client, having sent it,
 * waits for that server. -ECONNRESET: the client left (or gave up) first.
 */
static napi_value recv_go(napi_env env, napi_callback_info info) {
  int fd = arg_int(env, info, 0);
  long long deadline = now_ms() + arg_int(env, info, 1);
  int fds[MAX_FDS] = {-1, -1, -1}, err;
  for (;;) {
    if ((err = wait_fd(fd, POLLIN, deadline))) return num(env, err);
    char g = 0;
    int got = 0;
    ssize_t n = recv_with_fds(fd, &g, 1, fds, MAX_FDS, &got);
    if (n == -EAGAIN) continue;
    if (n < 0) return num(env, (int)n);
    if (n == 0) return num(env, -ECONNRESET);
    if (g != 'G' || got != MAX_FDS) {
      for (int i = 0; i < got && i < MAX_FDS; i++) close(fds[i]);
      return num(env, -EBADMSG);
    }
    break;
  }
  napi_value arr;
  napi_create_array_with_length(env, MAX_FDS, &arr);
  for (int i = 0; i < MAX_FDS; i++) napi_set_element(env, arr, (uint32_t)i, num(env, fds[i]));
  return arr;
}

/* peerUid(fd) -> the uid of the process at the other end of a unix socket | -errno. */
static napi_value peer_uid(napi_env env, napi_callback_info info) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(arg_int(env, info, 0), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return num(env, -errno);
  return num(env, (int32_t)cred.uid);
}

/* peerPid(fd) -> the pid of the process at the other end (as it was at connect()) | -errno. */
static napi_value peer_pid(napi_env env, napi_callback_info info) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(arg_int(env, info, 0), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return num(env, -errno);
  return num(env, (int32_t)cred.pid);
}

/* peerPidfd(fd) -> a pidfd of the peer process as it was at connect() | -errno (ENOPROTOOPT: before 6.5). */
static napi_value peer_pidfd(napi_env env, napi_callback_info info) {
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (getsockopt(arg_int(env, info, 0), SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) return num(env, -errno);
  fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  return num(env, pidfd);
}

/* pidfdOpen(pid) -> a close-on-exec pidfd of the process pid names now | -errno. */
static napi_value pidfd_open_(napi_env env, napi_callback_info info) {
  long r = syscall(SYS_pidfd_open, (pid_t)arg_int(env, info, 0), 0);
  if (r < 0) return num(env, -errno);
  fcntl((int)r, F_SETFD, FD_CLOEXEC);
  return num(env, (int32_t)r);
}

/* pidfdAlive(pidfd) -> 1 while its process has not been reaped (its pid is still its own) | -errno (ESRCH: gone). */
static napi_value pidfd_alive(napi_env env, napi_callback_info info) {
  if (syscall(SYS_pidfd_send_signal, arg_int(env, info, 0), 0, NULL, 0) < 0) return num(env, -errno);
  return num(env, 1);
}

/* peerOpen(fd) -> 1 while the peer has not closed (or shut down) its end, 0 once it has | -errno.
 * Fails closed: poll ignores a negative fd and reports one not open as POLLNVAL, neither is a peer. */
static napi_value peer_open(napi_env env, napi_callback_info info) {
  struct pollfd p = {.fd = arg_int(env, info, 0), .events = POLLRDHUP};
  if (p.fd < 0) return num(env, -EBADF);
  int n = poll(&p, 1, 0);
  if (n < 0) return num(env, -errno);
  if (p.revents & POLLNVAL) return num(env, -EBADF);
  return num(env, (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) ? 0 : 1);
}

static napi_value do_dup2(napi_env env, napi_callback_info info) {
  return num(env, dup2(arg_int(env, info, 0), arg_int(env, info, 1)) < 0 ? -errno : 0);
}

/* dup(fd) -> a close-on-exec copy above 2 | -errno. */
static napi_value do_dup(napi_env env, napi_callback_info info) {
  int r = fcntl(arg_int(env, info, 0), F_DUPFD_CLOEXEC, 3);
  return num(env, r < 0 ? -errno : r);
}

static napi_value do_close(napi_env env, napi_callback_info info) {
  return num(env, close(arg_int(env, info, 0)) < 0 ? -errno : 0);
}

static napi_value get_fl(napi_env env, napi_callback_info info) {
  int r = fcntl(arg_int(env, info, 0), F_GETFL);
  return num(env, r < 0 ? -errno : r);
}

static napi_value set_fl(napi_env env, napi_callback_info info) {
  return num(env, fcntl(arg_int(env, info, 0), F_SETFL, arg_int(env, info, 1)) < 0 ? -errno : 0);
}

static napi_value set_cloexec(napi_env env, napi_callback_info info) {
  return num(env, fcntl(arg_int(env, info, 0), F_SETFD, FD_CLOEXEC) < 0 ? -errno : 0);
}

/* writeAll(fd, buffer) -> 0 | -errno: all of it, waiting while a non-blocking pipe is full. */
static napi_value write_all(napi_env env, napi_callback_info info) {
  size_t argc = 2, len = 0;
  napi_value argv[2];
  char *p = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  if (napi_get_buffer_info(env, argv[1], (void **)&p, &len) != 0) return num(env, -EINVAL);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd q = {.fd = fd, .events = POLLOUT};
        poll(&q, 1, -1);
        continue;
      }
      return num(env, -errno);
    }
    p += n;
    len -= (size_t)n;
  }
  return num(env, 0);
}

static const struct vlab_napi_fn fns[] = {
    {"recvRequest", recv_request}, {"recvGo", recv_go}, {"peerUid", peer_uid}, {"peerPid", peer_pid}, {"dup2", do_dup2},
    {"dup", do_dup},               {"close", do_close},   {"getFl", get_fl},     {"setFl", set_fl},
    {"cloexec", set_cloexec},      {"writeAll", write_all}, {"peerPidfd", peer_pidfd},
    {"pidfdOpen", pidfd_open_},    {"pidfdAlive", pidfd_alive}, {"peerOpen", peer_open},
};
VLAB_NAPI_MODULE(fns)
