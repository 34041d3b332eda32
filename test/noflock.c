/* noflock.c - an LD_PRELOAD shim for test/store_lock.t: a file system
 * without file locks, as Lustre mounted without -o flock is (flock answers
 * ENOSYS) or an NFS mount without lockd (ENOLCK).
 *
 *   QID_NOFLOCK=ENOSYS|EOPNOTSUPP|ENOLCK   flock(2) fails with that errno
 *   QID_NOFCNTL=ENOSYS|EOPNOTSUPP|ENOLCK   so do fcntl(2)'s record locks
 *                                          (F_SETLK, F_SETLKW, F_GETLK, OFD)
 *
 * Everything else goes to libc. Both qid's own store lock and HDF5's file
 * lock call flock through the dynamic linker, so both see the refusal.
 * Built by `make tests` as build/test/noflock.so; never linked into qid. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

int flock(int fd, int op);
int fcntl(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...);

/* The errno named by environment variable var, or 0. */
static int refusal(const char *var)
{
    const char *v = getenv(var);
    if (!v) return 0;
    if (strcmp(v, "ENOSYS") == 0) return ENOSYS;
    if (strcmp(v, "EOPNOTSUPP") == 0) return EOPNOTSUPP;
    if (strcmp(v, "ENOLCK") == 0) return ENOLCK;
    return 0;
}

static int is_lock_cmd(int cmd)
{
    return cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW ||
           cmd == F_OFD_GETLK;
}

int flock(int fd, int op)
{
    static int (*real)(int, int);
    int e = refusal("QID_NOFLOCK");
    if (e) {
        errno = e;
        return -1;
    }
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "flock");
    return real(fd, op);
}

/* fcntl's third argument is an int or a pointer; both pass in the same
 * register on the ABIs qid runs on, as libc's own wrappers assume. */
static int fcntl_via(const char *name, int fd, int cmd, void *arg)
{
    int e = refusal("QID_NOFCNTL");
    if (e && is_lock_cmd(cmd)) {
        errno = e;
        return -1;
    }
    int (*real)(int, int, ...);
    *(void **)&real = dlsym(RTLD_NEXT, name);
    return real(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_via("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_via("fcntl64", fd, cmd, arg);
}
