/* fsutil.c - bounded whole-file reads, file hashing, path joining and
 * splitting, and the output-exists check of every writer. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"

int qid_read_text_file(const char *path, size_t max_bytes, char **out, size_t *len, qid_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return qid_error_set(err, QID_E_IO, "'%s' is not a regular file", path);
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        fclose(f);
        return qid_error_set(err, QID_E_INVALID, "'%s' is %lld bytes, more than the %zu allowed", path,
                             (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = qid_malloc(n + 1, "a text file");
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return qid_error_set(err, QID_E_IO, "cannot read '%s'", path);
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return QID_OK;
}

int qid_sha256_file(const char *path, char hex[65], qid_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return qid_error_set(err, QID_E_IO, "cannot open '%s': %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = qid_malloc(CHUNK, "a hashing buffer");
    qid_sha256 h;
    qid_sha256_init(&h);
    size_t got;
    while ((got = fread(buf, 1, CHUNK, f)) > 0)
        qid_sha256_update(&h, buf, got);
    int bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) return qid_error_set(err, QID_E_IO, "cannot read '%s'", path);
    uint8_t d[32];
    qid_sha256_final(&h, d);
    qid_sha256_hex(d, hex);
    return QID_OK;
}

int qid_copy_file(const char *src, const char *dst, qid_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = QID_OK;
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot open '%s': %s", src, strerror(errno));
        if (in >= 0) close(in);
        return rc;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
    if (out < 0) {
        rc = qid_error_set(err, QID_E_IO, "cannot create '%s': %s", dst, strerror(errno));
        close(in);
        return rc;
    }
    enum { CHUNK = 1 << 20 };
    char *buf = qid_malloc(CHUNK, "a copying buffer");
    for (;;) {
        ssize_t got = read(in, buf, CHUNK);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            rc = qid_error_set(err, QID_E_IO, "cannot read '%s': %s", src, strerror(errno));
            break;
        }
        if (got == 0) break;
        for (ssize_t done = 0; done < got && !rc;) {
            ssize_t put = write(out, buf + done, (size_t)(got - done));
            if (put < 0 && errno == EINTR) continue;
            if (put < 0)
                rc = qid_error_set(err, QID_E_IO, "cannot write '%s': %s", dst, strerror(errno));
            else
                done += put;
        }
        if (rc) break;
    }
    free(buf);
    close(in);
    if (!rc && fsync(out) != 0) rc = qid_error_set(err, QID_E_IO, "cannot write '%s': %s", dst, strerror(errno));
    if (close(out) != 0 && !rc) rc = qid_error_set(err, QID_E_IO, "cannot write '%s': %s", dst, strerror(errno));
    if (rc) unlink(dst);
    return rc;
}

char *qid_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = qid_malloc(n, "a path");
    snprintf(p, n, "%s%s%s", dir, (dir[0] && dir[strlen(dir) - 1] != '/') ? "/" : "", name);
    return p;
}

int qid_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

const char *qid_path_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int qid_output_check(const char *path, int force, qid_error *err)
{
    if (!force && qid_path_exists(path))
        return qid_error_set(err, QID_E_INVALID, "output '%s' exists (use --force to replace it)", path);
    return QID_OK;
}

void qid_csv_field(FILE *out, const char *s)
{
    s = s ? s : "";
    if (strpbrk(s, ",\"\r\n") == NULL && s[0] != ' ' && (s[0] == '\0' || s[strlen(s) - 1] != ' ')) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}
