/* core/fileio: atomic writes (all-or-nothing, no temp files left behind, old content kept on
 * failure), whole-file reads, mkdir -p. Works in a fresh directory under /tmp. */
#include "core/error.h"
#include "core/fileio.h"
#include "test_util.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static char *path_in(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

/* Entries in dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static int file_equals(const char *path, const char *content) {
    void *data;
    size_t n;
    if (sf_read_file(path, &data, &n) != SF_OK) return 0;
    int ok = n == strlen(content) && memcmp(data, content, n) == 0;
    free(data);
    return ok;
}

static int has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void test_write_read(void) {
    const char *p = path_in("a.bin");
    unsigned char bin[300];
    for (int i = 0; i < 300; i++) bin[i] = (unsigned char)(i * 7);
    CHECK(sf_write_file_atomic(p, bin, sizeof bin) == SF_OK);
    void *data = NULL;
    size_t n = 0;
    CHECK(sf_read_file(p, &data, &n) == SF_OK);
    CHECK(n == sizeof bin && memcmp(data, bin, n) == 0);
    CHECK(data && ((char *)data)[n] == '\0');
    free(data);

    /* Overwrite with shorter content; empty file. */
    CHECK(sf_write_file_atomic(p, "hello", 5) == SF_OK);
    CHECK(file_equals(p, "hello"));
    CHECK(sf_write_file_atomic(p, "", 0) == SF_OK);
    CHECK(sf_read_file(p, &data, &n) == SF_OK && n == 0 && ((char *)data)[0] == '\0');
    free(data);
    CHECK(count_prefix(g_dir, "a.bin.tmp.") == 0);

    /* New file: 0666 & ~umask. Replacing keeps the old mode. */
    mode_t um = umask(022);
    umask(um);
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == (0666 & ~um));
    CHECK(chmod(p, 0640) == 0);
    CHECK(sf_write_file_atomic(p, "x", 1) == SF_OK);
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640);

    /* Relative path in the current directory (dir part "."). */
    char rel[64];
    snprintf(rel, sizeof rel, "sf_fileio_rel_%d.txt", (int)getpid());
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(g_dir) == 0);
    CHECK(sf_write_file_atomic(rel, "rel", 3) == SF_OK);
    CHECK(file_equals(rel, "rel"));
    CHECK(chdir(cwd) == 0);
}

static void test_read_errors(void) {
    void *data = (void *)1;
    size_t n = 7;
    const char *p = path_in("missing.txt");
    CHECK(sf_read_file(p, &data, &n) == SF_ERR);
    CHECK(data == NULL && n == 0);
    CHECK_MSG(has(sf_error_message(), p) && has(sf_error_message(), "No such file"), "%s",
              sf_error_message());
    CHECK(sf_read_file(g_dir, &data, &n) == SF_ERR);
    CHECK_MSG(has(sf_error_message(), g_dir) && has(sf_error_message(), "directory"), "%s",
              sf_error_message());
}

static void test_abort_and_failures(void) {
    const char *p = path_in("ckpt.bin");
    CHECK(sf_write_file_atomic(p, "old content", 11) == SF_OK);

    /* Abort: old file intact, no temp file. */
    sf_atomic_file f;
    CHECK(sf_atomic_open(&f, p) == SF_OK);
    CHECK(f.fp && f.tmp_path && strncmp(f.tmp_path, p, strlen(p)) == 0);
    CHECK(has(f.tmp_path, ".tmp."));
    CHECK(sf_atomic_write(&f, "new content that is longer", 26) == SF_OK);
    fflush(f.fp);
    CHECK(count_prefix(g_dir, "ckpt.bin.tmp.") == 1); /* it really exists while open */
    CHECK(file_equals(p, "old content"));
    sf_atomic_abort(&f);
    CHECK(f.fp == NULL && f.path == NULL && f.tmp_path == NULL);
    CHECK(file_equals(p, "old content"));
    CHECK(count_prefix(g_dir, "ckpt.bin.tmp.") == 0);
    sf_atomic_abort(&f); /* again: no-op */

    /* Commit after a failure was flagged: SF_ERR, old file intact, no temp file. */
    CHECK(sf_atomic_open(&f, p) == SF_OK);
    fputs("partial", f.fp);
    f.failed = 1;
    CHECK(sf_atomic_commit(&f) == SF_ERR);
    CHECK_MSG(has(sf_error_message(), p) && has(sf_error_message(), "not replaced"), "%s",
              sf_error_message());
    CHECK(f.fp == NULL && f.tmp_path == NULL);
    CHECK(file_equals(p, "old content"));
    CHECK(count_prefix(g_dir, "ckpt.bin.tmp.") == 0);

    /* The rename fails (a non-empty directory took the target's place meanwhile). */
    const char *q = path_in("became_dir");
    CHECK(sf_atomic_open(&f, q) == SF_OK);
    fputs("data", f.fp);
    CHECK(mkdir(q, 0755) == 0);
    CHECK(sf_write_file_atomic(path_in("became_dir/inner"), "i", 1) == SF_OK);
    CHECK(sf_atomic_commit(&f) == SF_ERR);
    CHECK_MSG(has(sf_error_message(), q), "%s", sf_error_message());
    CHECK(count_prefix(g_dir, "became_dir.tmp.") == 0);
    CHECK(file_equals(path_in("became_dir/inner"), "i"));

    /* Open errors name the path and leave nothing behind. */
    const char *nodir = path_in("no/such/dir/file.bin");
    CHECK(sf_atomic_open(&f, nodir) == SF_ERR);
    CHECK_MSG(has(sf_error_message(), nodir) && has(sf_error_message(), "No such file"), "%s",
              sf_error_message());
    CHECK(f.fp == NULL && f.tmp_path == NULL && f.path == NULL);
    CHECK(sf_write_file_atomic(q, "x", 1) == SF_ERR); /* target is a directory */
    CHECK_MSG(has(sf_error_message(), q) && has(sf_error_message(), "directory"), "%s",
              sf_error_message());
    CHECK(sf_write_file_atomic("", "x", 1) == SF_ERR);
    CHECK(count_prefix(g_dir, "became_dir.tmp.") == 0);

    /* A successful open + write + commit through the streaming API. */
    CHECK(sf_atomic_open(&f, p) == SF_OK);
    fprintf(f.fp, "line %d\n", 1);
    CHECK(sf_atomic_write(&f, "line 2\n", 7) == SF_OK);
    CHECK(sf_atomic_commit(&f) == SF_OK);
    CHECK(file_equals(p, "line 1\nline 2\n"));
    CHECK(count_prefix(g_dir, "ckpt.bin.tmp.") == 0);
}

static void test_mkdir_p(void) {
    const char *d = path_in("x/y//z/");
    CHECK(sf_mkdir_p(d) == SF_OK);
    struct stat st;
    CHECK(stat(path_in("x/y/z"), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(sf_mkdir_p(d) == SF_OK); /* existing: fine */
    CHECK(sf_mkdir_p(path_in("x")) == SF_OK);
    CHECK(sf_write_file_atomic(path_in("x/y/z/f.txt"), "f", 1) == SF_OK);
    CHECK(file_equals(path_in("x/y/z/f.txt"), "f"));

    const char *bad = path_in("x/y/z/f.txt/sub");
    CHECK(sf_mkdir_p(bad) == SF_ERR);
    CHECK_MSG(has(sf_error_message(), bad) && has(sf_error_message(), "not a directory"), "%s",
              sf_error_message());
    CHECK(sf_mkdir_p(path_in("x/y/z/f.txt")) == SF_ERR);
    CHECK(sf_mkdir_p("") == SF_ERR);
    CHECK(sf_mkdir_p("/") == SF_OK);
}

int main(void) {
    test_seed();
    snprintf(g_dir, sizeof g_dir, "/tmp/sf_test_fileio.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_write_read();
    test_read_errors();
    test_abort_and_failures();
    test_mkdir_p();
    rm_rf(g_dir);
    return test_finish();
}
