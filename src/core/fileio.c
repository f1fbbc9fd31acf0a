#include "core/fileio.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* The process umask, read without changing it where possible: umask() can only be queried by
 * setting it, which races with other threads creating files, so prefer /proc/self/status. */
static mode_t current_umask(void) {
    FILE *fp = fopen("/proc/self/status", "re");
    if (fp) {
        char line[256];
        unsigned int m;
        while (fgets(line, sizeof line, fp)) {
            if (sscanf(line, "Umask: %o", &m) == 1) {
                fclose(fp);
                return (mode_t)m;
            }
        }
        fclose(fp);
    }
    mode_t m = umask(022);
    umask(m);
    return m;
}

/* Directory part of path ("." when there is none, "/" for "/x"). Caller frees. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return sf_strdup(".");
    size_t len = (size_t)(slash - path);
    while (len > 0 && path[len - 1] == '/') len--;
    if (len == 0) return sf_strdup("/");
    char *d = sf_malloc(len + 1);
    memcpy(d, path, len);
    d[len] = '\0';
    return d;
}

static void release(sf_atomic_file *f) {
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof *f);
}

int sf_atomic_open(sf_atomic_file *f, const char *path) {
    SF_ASSERT(f && path);
    memset(f, 0, sizeof *f);
    if (!path[0]) return sf_errorf("cannot write file: empty path");
    size_t len = strlen(path);
    if (path[len - 1] == '/') return sf_errorf("cannot write '%s': path names a directory", path);

    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) return sf_errorf("cannot write '%s': is a directory", path);
    mode_t mode = exists && S_ISREG(st.st_mode) ? (st.st_mode & 07777) : (0666 & ~current_umask());

    static const char suffix[] = ".tmp.XXXXXX";
    char *tmp = sf_malloc(len + sizeof suffix);
    memcpy(tmp, path, len);
    memcpy(tmp + len, suffix, sizeof suffix);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return sf_errorf("cannot write '%s': cannot create temporary file: %s", path, strerror(e));
    }
    (void)fchmod(fd, mode); /* best effort: on failure the file simply stays 0600 */
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return sf_errorf("cannot write '%s': %s", path, strerror(e));
    }
    f->fp = fp;
    f->path = sf_strdup(path);
    f->tmp_path = tmp;
    return SF_OK;
}

int sf_atomic_write(sf_atomic_file *f, const void *data, size_t n) {
    SF_ASSERT(f && f->fp && (data || n == 0));
    if (n == 0) return f->failed ? SF_ERR : SF_OK;
    if (fwrite(data, 1, n, f->fp) != n) {
        if (!f->failed) f->err_no = errno;
        f->failed = 1;
        return sf_errorf("cannot write '%s': %s", f->path,
                         f->err_no ? strerror(f->err_no) : "write failed");
    }
    return SF_OK;
}

/* Fail the commit: close and remove the temporary file, release f. The message is set by the
 * caller before calling this. */
static int commit_fail(sf_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    f->fp = NULL;
    if (f->tmp_path) unlink(f->tmp_path);
    release(f);
    return SF_ERR;
}

int sf_atomic_commit(sf_atomic_file *f) {
    SF_ASSERT(f && f->fp && f->path && f->tmp_path);
    const char *path = f->path;
    if (f->failed || ferror(f->fp)) {
        sf_errorf("cannot write '%s': %s (file not replaced)", path,
                  f->err_no ? strerror(f->err_no) : "write failed");
        return commit_fail(f);
    }
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0) {
        sf_errorf("cannot write '%s': %s (file not replaced)", path, strerror(errno));
        return commit_fail(f);
    }
    FILE *fp = f->fp;
    f->fp = NULL;
    if (fclose(fp) != 0) {
        sf_errorf("cannot write '%s': %s (file not replaced)", path, strerror(errno));
        return commit_fail(f);
    }
    if (rename(f->tmp_path, path) != 0) {
        sf_errorf("cannot replace '%s': %s (file not replaced)", path, strerror(errno));
        return commit_fail(f);
    }
    /* Make the rename itself durable. Filesystems that cannot sync a directory (EINVAL) and
     * directories we cannot open for reading are tolerated: the data is already in place. */
    char *dir = dir_of(path);
    int rc = SF_OK;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
            rc = sf_errorf("wrote '%s' but could not sync directory '%s': %s", path, dir,
                           strerror(errno));
        close(dfd);
    }
    free(dir);
    release(f);
    return rc;
}

void sf_atomic_abort(sf_atomic_file *f) {
    if (!f) return;
    if (f->fp) fclose(f->fp);
    f->fp = NULL;
    if (f->tmp_path) unlink(f->tmp_path);
    release(f);
}

int sf_write_file_atomic(const char *path, const void *data, size_t n) {
    sf_atomic_file f;
    if (sf_atomic_open(&f, path) != SF_OK) return SF_ERR;
    if (sf_atomic_write(&f, data, n) != SF_OK) {
        sf_atomic_abort(&f);
        return SF_ERR;
    }
    return sf_atomic_commit(&f);
}

int sf_read_file(const char *path, void **data, size_t *n) {
    SF_ASSERT(path && data && n);
    *data = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sf_errorf("cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sf_errorf("cannot read '%s': %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return sf_errorf("cannot read '%s': is a directory", path);
    }
    /* Regular files: size known up front (plus one byte to notice growth and hold the '\0');
     * pipes and the like: grow as needed. */
    size_t cap = S_ISREG(st.st_mode) && st.st_size >= 0 ? (size_t)st.st_size + 1 : 65536;
    char *buf = sf_malloc(cap);
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = sf_realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            close(fd);
            return sf_errorf("cannot read '%s': %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (len == cap) buf = sf_realloc(buf, cap + 1);
    buf[len] = '\0';
    *data = buf;
    *n = len;
    return SF_OK;
}

/* Make one directory unless a directory already exists there. */
static int mkdir_one(const char *p, const char *full) {
    struct stat st;
    if (stat(p, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return SF_OK;
        return sf_errorf("cannot create directory '%s': '%s' exists and is not a directory", full,
                         p);
    }
    if (mkdir(p, 0777) != 0) {
        int e = errno;
        /* Lost a race with another creator: fine if it made a directory. */
        if (e == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) return SF_OK;
        return sf_errorf("cannot create directory '%s': %s", p, strerror(e));
    }
    return SF_OK;
}

int sf_mkdir_p(const char *dir) {
    SF_ASSERT(dir);
    if (!dir[0]) return sf_errorf("cannot create directory: empty path");
    char *p = sf_strdup(dir);
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') p[--len] = '\0';
    int rc = SF_OK;
    for (size_t i = 1; i < len && rc == SF_OK; i++) {
        if (p[i] != '/' || p[i - 1] == '/') continue;
        p[i] = '\0';
        rc = mkdir_one(p, dir);
        p[i] = '/';
    }
    if (rc == SF_OK) rc = mkdir_one(p, dir);
    free(p);
    return rc;
}
