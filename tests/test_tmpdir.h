/* A per-process scratch directory for tests that write their own input files (malformed CSVs,
 * gzip files, ...), shared so each test does not carry its own copy. */
#ifndef SF_TEST_TMPDIR_H
#define SF_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

static char g_dir[64];

/* Create /tmp/<prefix>_<pid>; returns 0 on success. */
static inline int test_tmpdir_create(const char *prefix) {
    char cmd[128];
    snprintf(g_dir, sizeof g_dir, "/tmp/%s_%ld", prefix, (long)getpid());
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
    return system(cmd) != 0;
}

static inline void test_tmpdir_remove(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_dir);
}

/* Path of `name` inside the scratch directory (8 rotating buffers). */
static inline const char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static inline const char *write_file(const char *name, const char *text) {
    const char *p = tmp_path(name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return p;
}

static inline int msg_has(const char *needle) {
    return strstr(sf_error_message(), needle) != NULL;
}

#endif
