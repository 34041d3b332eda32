/* fsutil.c - bounded whole-file reads, file hashing, path joining and
 * splitting, and the output-exists check of every writer. */
#include "fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
