/* SVG line charts: well-formed output, escaping, NaN gaps, degenerate ranges, tick labels,
 * atomic writes and error reporting. */
#include "util/svg_plot.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "test_util.h"

static char g_dir[64];

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

static int count(const char *s, const char *sub) {
    int n = 0;
    size_t l = strlen(sub);
    for (const char *p = strstr(s, sub); p; p = strstr(p + l, sub)) n++;
    return n;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Checks every coordinate attribute and every path/polyline number: parseable, finite and
 * inside the viewBox (0..W, 0..H). Returns the number of bad values. */
static int bad_coords(const char *svg, double W, double H) {
    static const char *xs[] = {" x=\"", " x1=\"", " x2=\"", " cx=\""};
    static const char *ys[] = {" y=\"", " y1=\"", " y2=\"", " cy=\""};
    int bad = 0;
    for (int axis = 0; axis < 2; axis++) {
        const char **names = axis ? ys : xs;
        double lim = axis ? H : W;
        for (int k = 0; k < 4; k++)
            for (const char *p = strstr(svg, names[k]); p; p = strstr(p + 1, names[k])) {
                char *end;
                double v = strtod(p + strlen(names[k]), &end);
                if (*end != '"' || !isfinite(v) || v < 0 || v > lim) {
                    bad++;
                    fprintf(stderr, "bad coordinate near: %.40s\n", p);
                }
            }
    }
    for (const char *p = strstr(svg, " d=\""); p; p = strstr(p + 1, " d=\"")) {
        const char *q = p + 4;
        int i = 0;
        while (*q && *q != '"') {
            if (*q == 'M' || *q == 'L' || *q == ' ') {
                q++;
                continue;
            }
            char *end;
            double v = strtod(q, &end);
            if (end == q || !isfinite(v) || v < 0 || v > ((i & 1) ? H : W)) {
                bad++;
                fprintf(stderr, "bad path number near: %.40s\n", q);
                if (end == q) break;
            }
            i++;
            q = end;
        }
    }
    return bad;
}

/* Common structural checks; returns the file text (caller frees) or NULL. */
static char *check_svg(const char *path, double W, double H) {
    char *s = slurp(path);
    CHECK_MSG(s != NULL, "cannot read %s", path);
    if (!s) return NULL;
    CHECK(strncmp(s, "<svg", 4) == 0);
    CHECK(ends_with(s, "</svg>\n"));
    CHECK_MSG(count(s, "<g") == count(s, "</g>"), "%d <g vs %d </g>", count(s, "<g"), count(s, "</g>"));
    CHECK(count(s, "<text") == count(s, "</text>"));
    CHECK(count(s, "<svg") == 1 && count(s, "</svg>") == 1);
    CHECK(strstr(s, "nan") == NULL && strstr(s, "NaN") == NULL && strstr(s, "inf") == NULL);
    CHECK(bad_coords(s, W, H) == 0);
    return s;
}

static void test_basic(void) {
    double x[50], a[50], b[50];
    for (int i = 0; i < 50; i++) {
        x[i] = i + 1;
        a[i] = 1.0 / (i + 1);
        b[i] = 1.2 / (i + 1) + 0.05;
    }
    sf_series s[2] = {{"train", x, a, 50}, {"val", x, b, 50}};
    const char *p = tmp_path("basic.svg");
    CHECK(sf_svg_line_plot(p, "Loss", "epoch", "loss", s, 2, 17, "best epoch 17") == SF_OK);
    char *t = check_svg(p, 800, 450);
    if (!t) return;
    CHECK(strstr(t, ">train</text>") && strstr(t, ">val</text>"));
    CHECK(strstr(t, ">Loss</text>") && strstr(t, ">epoch</text>") && strstr(t, ">loss</text>"));
    CHECK(strstr(t, "best epoch 17") != NULL);
    CHECK(strstr(t, "stroke-dasharray") != NULL); /* the marker */
    CHECK(count(t, "<path") == 2);
    CHECK(count(t, "<circle") == 0); /* 50 points: lines only */
    /* integral x data: integral x tick labels; y 0..1.25 in steps of 0.2 or 0.25 */
    CHECK(strstr(t, ">10</text>") != NULL);
    CHECK(strstr(t, ">10.0</text>") == NULL);
    free(t);
}

static void test_escaping(void) {
    double y[3] = {1, 2, 3};
    sf_series s[1] = {{"a<b & \"c\"", NULL, y, 3}};
    const char *lab[3] = {"t<0>", "t&1", "t'2"};
    sf_plot_opts o;
    sf_plot_opts_init(&o);
    o.title = "P&L <daily> \x01 \xff";
    o.xlabel = "x>y";
    o.ylabel = "it's";
    o.marker_x = 1;
    o.marker_label = "<start>";
    o.xtick_labels = lab;
    o.n_xtick_labels = 3;
    const char *p = tmp_path("esc.svg");
    CHECK(sf_svg_plot(p, &o, s, 1) == SF_OK);
    char *t = check_svg(p, 800, 450);
    if (!t) return;
    CHECK(strstr(t, "P&amp;L &lt;daily&gt; ? ?") != NULL);
    CHECK(strstr(t, "a&lt;b &amp; &quot;c&quot;") != NULL);
    CHECK(strstr(t, "x&gt;y") && strstr(t, "it&apos;s") && strstr(t, "&lt;start&gt;"));
    CHECK(strstr(t, "t&lt;0&gt;") && strstr(t, "t&amp;1") && strstr(t, "t&apos;2"));
    /* no raw special characters in text content: every '&' starts an entity */
    for (const char *q = strchr(t, '&'); q; q = strchr(q + 1, '&'))
        CHECK(strncmp(q, "&amp;", 5) == 0 || strncmp(q, "&lt;", 4) == 0 || strncmp(q, "&gt;", 4) == 0 ||
              strncmp(q, "&quot;", 6) == 0 || strncmp(q, "&apos;", 6) == 0);
    CHECK(strstr(t, "<daily") == NULL && strstr(t, "a<b") == NULL);
    free(t);
}

static void test_nan_gap(void) {
    double y[8] = {1, 2, NAN, 4, 5, INFINITY, 7, NAN};
    double x[8] = {0, 1, 2, 3, 4, 5, 6, NAN};
    sf_series s[1] = {{"gappy", x, y, 8}};
    const char *p = tmp_path("nan.svg");
    CHECK(sf_svg_line_plot(p, "gaps", NULL, NULL, s, 1, NAN, NULL) == SF_OK);
    char *t = check_svg(p, 800, 450);
    if (!t) return;
    /* runs {0,1}, {3,4}, {6}: three moves, the last point drawn as a dot too */
    const char *d = strstr(t, " d=\"");
    CHECK(d != NULL);
    if (d) {
        const char *e = strchr(d + 4, '"');
        int m = 0;
        for (const char *q = d + 4; q < e; q++) m += *q == 'M';
        CHECK_MSG(m == 3, "%d moves", m);
    }
    CHECK(strstr(t, "stroke-dasharray") == NULL); /* NaN marker = none */
    free(t);
}

/* Per-series styles (sf_plot_opts.styles): shared colour, thin dashed line, dots only. */
static void test_styles(void) {
    double x[60], a[60], b[60];
    for (int i = 0; i < 60; i++) x[i] = i, a[i] = sin(i * 0.1), b[i] = a[i] + 0.5;
    sf_series s[3] = {{"mean", x, a, 60}, {NULL, x, b, 60}, {"obs", x, a, 60}};
    sf_series_style st[3] = {{2, SF_SERIES_LINE}, {2, SF_SERIES_DASHED}, {2, SF_SERIES_DOTS}};
    sf_plot_opts o;
    sf_plot_opts_init(&o);
    o.styles = st;
    const char *p = tmp_path("styles.svg");
    CHECK(sf_svg_plot(p, &o, s, 3) == SF_OK);
    char *t = check_svg(p, 800, 450);
    if (!t) return;
    CHECK(count(t, "stroke-dasharray=\"4,3\"") == 1);
    CHECK(count(t, "<path stroke=\"#ff7f0e\"") == 3); /* palette entry 2 for all three */
    CHECK(count(t, "d=\"\"") == 1);                  /* the dots series draws no line */
    CHECK(count(t, "r=\"1.8\"") == 60);              /* ... but every point */
    free(t);
}

static void test_degenerate(void) {
    double c[5] = {3, 3, 3, 3, 3}, z[4] = {0, 0, 0, 0}, one = 42, big[2] = {1e300, -1e300};
    const char *p = tmp_path("deg.svg");
    sf_series s1[1] = {{"const", NULL, c, 5}};
    CHECK(sf_svg_line_plot(p, "constant", "x", "y", s1, 1, NAN, NULL) == SF_OK);
    free(check_svg(p, 800, 450));
    sf_series s2[1] = {{"zeros", NULL, z, 4}};
    CHECK(sf_svg_line_plot(p, "zeros", "x", "y", s2, 1, NAN, NULL) == SF_OK);
    free(check_svg(p, 800, 450));
    sf_series s3[1] = {{"single", NULL, &one, 1}};
    CHECK(sf_svg_line_plot(p, "single", "x", "y", s3, 1, 0, "m") == SF_OK);
    char *t = check_svg(p, 800, 450);
    if (t) CHECK(count(t, "<circle") == 1);
    free(t);
    double allnan[3] = {NAN, NAN, NAN};
    sf_series s4[2] = {{"nothing", NULL, allnan, 3}, {"empty", NULL, NULL, 0}};
    CHECK(sf_svg_line_plot(p, "no data", "x", "y", s4, 2, NAN, NULL) == SF_OK);
    free(check_svg(p, 800, 450));
    CHECK(sf_svg_line_plot(p, NULL, NULL, NULL, NULL, 0, NAN, NULL) == SF_OK);
    free(check_svg(p, 800, 450));
    sf_series s5[1] = {{"huge", NULL, big, 2}};
    CHECK(sf_svg_line_plot(p, "huge", NULL, NULL, s5, 1, NAN, NULL) == SF_OK);
    free(check_svg(p, 800, 450));
    double tiny[3] = {1e-12, 2e-12, 1.5e-12};
    sf_series s6[1] = {{"tiny", NULL, tiny, 3}};
    CHECK(sf_svg_line_plot(p, "tiny", NULL, NULL, s6, 1, NAN, NULL) == SF_OK);
    free(check_svg(p, 800, 450));
    /* custom size */
    sf_plot_opts o;
    sf_plot_opts_init(&o);
    o.width = 300;
    o.height = 200;
    CHECK(sf_svg_plot(p, &o, s1, 1) == SF_OK);
    t = check_svg(p, 300, 200);
    if (t) CHECK(strstr(t, "viewBox=\"0 0 300 200\"") != NULL);
    free(t);
}

static void test_ticks(void) {
    double y[11];
    for (int i = 0; i <= 10; i++) y[i] = i / 10.0;
    sf_series s[1] = {{"ramp", NULL, y, 11}};
    const char *p = tmp_path("ticks.svg");
    CHECK(sf_svg_line_plot(p, "ramp", NULL, NULL, s, 1, NAN, NULL) == SF_OK);
    char *t = check_svg(p, 800, 450);
    if (!t) return;
    CHECK(strstr(t, ">0.0</text>") && strstr(t, ">0.4</text>") && strstr(t, ">1.0</text>"));
    CHECK(strstr(t, "-0") == NULL);
    free(t);
    /* negative to positive: a zero tick, never "-0.0" */
    double w[3] = {-0.3, 0.1, 0.27};
    sf_series s2[1] = {{"w", NULL, w, 3}};
    CHECK(sf_svg_line_plot(p, "w", NULL, NULL, s2, 1, NAN, NULL) == SF_OK);
    t = check_svg(p, 800, 450);
    if (t) CHECK(strstr(t, ">0.0</text>") != NULL && strstr(t, ">-0.0<") == NULL);
    free(t);
}

/* The y tick labels (right-aligned texts) are pairwise distinct and there are >= 3. */
static int y_labels_distinct(const char *svg) {
    char lab[16][64];
    int n = 0;
    const char *key = "text-anchor=\"end\">";
    for (const char *p = strstr(svg, key); p && n < 16; p = strstr(p + 1, key)) {
        p += strlen(key);
        size_t l = strcspn(p, "<");
        if (l >= sizeof lab[0]) l = sizeof lab[0] - 1;
        memcpy(lab[n], p, l);
        lab[n][l] = '\0';
        for (int i = 0; i < n; i++)
            if (!strcmp(lab[i], lab[n])) return 0;
        n++;
    }
    return n >= 3;
}

static void test_tick_precision(void) {
    const char *p = tmp_path("prec.svg");
    double a[2] = {12345678.1, 12345678.5}, b[3] = {1e-9, 3e-9, 2e-9}, c[2] = {-5e12, 7e12};
    const double *ys[3] = {a, b, c};
    int ns[3] = {2, 3, 2};
    for (int k = 0; k < 3; k++) {
        sf_series s[1] = {{"v", NULL, ys[k], ns[k]}};
        CHECK(sf_svg_line_plot(p, "precision", NULL, NULL, s, 1, NAN, NULL) == SF_OK);
        char *t = check_svg(p, 800, 450);
        if (t) CHECK_MSG(y_labels_distinct(t), "case %d", k);
        free(t);
    }
}

static void test_string_xticks_and_forecast(void) {
    enum { NH = 168, NF = 24 };
    double hist[NH], fc[NF], act[NF];
    char labels[NH + NF][32];
    const char *lp[NH + NF];
    for (int i = 0; i < NH + NF; i++) {
        snprintf(labels[i], sizeof labels[i], "2016-07-%02d %02d:00", 1 + i / 24, i % 24);
        lp[i] = labels[i];
    }
    for (int i = 0; i < NH; i++) hist[i] = sin(i * 0.26) * 3 + 10;
    for (int i = 0; i < NF; i++) {
        fc[i] = sin((NH + i) * 0.26) * 2.5 + 10;
        act[i] = i == 5 ? NAN : sin((NH + i) * 0.26) * 3 + 10;
    }
    const char *p = tmp_path("forecast.svg");
    CHECK(sf_svg_forecast_plot(p, "OT forecast", "OT", hist, NH, fc, NF, act, lp) == SF_OK);
    char *t = check_svg(p, 800, 450);
    if (!t) return;
    CHECK(strstr(t, ">history</text>") && strstr(t, ">forecast</text>") && strstr(t, ">actual</text>"));
    CHECK(strstr(t, "forecast start") != NULL);
    int nl = count(t, ">2016-07-");
    /* thinned: a few labels, not 192 (16 chars ~ 110 px each on a ~700 px axis) */
    CHECK_MSG(nl >= 3 && nl <= 7, "%d x labels", nl);
    free(t);
    /* without labels and without actual */
    CHECK(sf_svg_forecast_plot(p, NULL, NULL, hist, NH, fc, NF, NULL, NULL) == SF_OK);
    t = check_svg(p, 800, 450);
    if (t) CHECK(strstr(t, ">actual</text>") == NULL && strstr(t, ">step</text>") != NULL);
    free(t);
    /* loss plot helper */
    double tr[5] = {1, 0.7, 0.5, 0.45, 0.44}, va[5] = {1.1, 0.8, NAN, 0.6, 0.62};
    CHECK(sf_svg_loss_plot(p, NULL, tr, va, 5, 4) == SF_OK);
    t = check_svg(p, 800, 450);
    if (t) {
        CHECK(strstr(t, "best epoch 4") && strstr(t, ">train</text>") && strstr(t, ">val</text>"));
        CHECK(count(t, "<circle") == 9); /* short series: every finite point is a dot */
    }
    free(t);
}

static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_errors(void) {
    double y[2] = {1, 2};
    sf_series s[1] = {{"y", NULL, y, 2}};
    const char *bad = "/nonexistent-sf-dir/plot.svg";
    sf_error_clear();
    CHECK(sf_svg_line_plot(bad, "t", NULL, NULL, s, 1, NAN, NULL) == SF_ERR);
    CHECK_MSG(strstr(sf_error_message(), bad) != NULL, "message: %s", sf_error_message());
    CHECK(access(bad, F_OK) != 0);

    /* target is a directory: the rename fails; nothing may be left behind */
    char sub[256];
    snprintf(sub, sizeof sub, "%s/errdir", g_dir);
    CHECK(mkdir(sub, 0755) == 0);
    char target[300];
    snprintf(target, sizeof target, "%s/isdir", sub);
    CHECK(mkdir(target, 0755) == 0);
    sf_error_clear();
    CHECK(sf_svg_line_plot(target, "t", NULL, NULL, s, 1, NAN, NULL) == SF_ERR);
    CHECK_MSG(strstr(sf_error_message(), target) != NULL, "message: %s", sf_error_message());
    CHECK_MSG(dir_entries(sub) == 1, "%d entries in %s", dir_entries(sub), sub);
    rmdir(target);
    rmdir(sub);

    /* overwriting an existing file works and replaces it whole */
    const char *p = tmp_path("over.svg");
    FILE *f = fopen(p, "w");
    fputs("old content that is longer than nothing", f);
    fclose(f);
    CHECK(sf_svg_line_plot(p, "new", NULL, NULL, s, 1, NAN, NULL) == SF_OK);
    free(check_svg(p, 800, 450));
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sf_svg_test_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_basic();
    test_escaping();
    test_nan_gap();
    test_styles();
    test_degenerate();
    test_ticks();
    test_tick_precision();
    test_string_xticks_and_forecast();
    test_errors();
    /* clean up: every test file lives in g_dir; it must hold no temp files */
    DIR *d = opendir(g_dir);
    int leftovers = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strstr(e->d_name, ".tmp")) leftovers++;
        unlink(tmp_path(e->d_name));
    }
    if (d) closedir(d);
    CHECK(leftovers == 0);
    rmdir(g_dir);
    return test_finish();
}
