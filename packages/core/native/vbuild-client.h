/* vbuild-client's parts: finding and starting the warm servers (vbuild-client-start.c). */
#ifndef VBUILD_CLIENT_H
#define VBUILD_CLIENT_H
#include <limits.h>
#include <stddef.h>

extern char pkg[PATH_MAX]; /* packages/core (or the installed package's root) */

/* The bundle's identity (the server compares it with the file it loaded), or 0 if it is not current. */
int bundle_key(char *key, size_t n);
/* The socket's directory: ours, a real directory, mode 0700; else 0. */
int server_dir(char *dir, size_t n);
/* How many server slots (VLAB_SERVER_SLOTS). */
int server_slots(void);
/* Starts slot k's server in the background; 0 when another holds its lock (running or starting). */
int start_server(const char *base, int k);
#endif
