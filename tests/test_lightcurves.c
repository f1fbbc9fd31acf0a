/* Long-format light-curve loader (data/lightcurves.c), .ts writer (data/ts_write.c) and
 * stratified k-fold (data/kfold.c): flux conversion and error propagation, column lookup by
 * name, sorting and merging, sentinel rows, and every bad-input path (file:line in the
 * message); the real SDSS Stripe 82 file when it is present. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "data/kfold.h"
#include "data/lc_grid.h"
#include "data/lightcurves.h"
#include "data/ts_write.h"
#include "test_tmpdir.h"
#include "test_util.h"

static int load(const char *obs, const char *lab, sf_lc_set *s) {
    sf_lc_opts o;
    sf_lc_opts_init(&o);
    return sf_lc_load(obs, lab, &o, s);
}

/* Expect a load failure whose message contains `needle`. */
static void expect_fail(const char *obs_text, const char *lab_text, const char *needle) {
    const char *obs = write_file("obs.csv", obs_text);
    const char *lab = lab_text ? write_file("lab.csv", lab_text) : NULL;
    sf_lc_set s;
    int rc = load(obs, lab, &s);
    CHECK_MSG(rc == SF_ERR && msg_has(needle), "wanted '%s', got rc %d '%s'", needle, rc,
              sf_error_message());
    CHECK(s.n_objects == 0 && s.obj == NULL);
}

static void test_basic(void) {
    /* Columns in another order, an extra column, quoted fields, CRLF, blank lines, an object
     * split in two runs, unsorted times, a sentinel row. */
    const char *obs = write_file("ok.csv",
                                 "band,magerr,extra,mag,time,object_id\r\n"
                                 "g,0.01,x,20.0,10.5,A\r\n"
                                 "r,0.02,x,17.5,10.0,A\r\n"
                                 "\r\n"
                                 "\"u\",0.05,x,19.0,3.0,B\r\n"
                                 "u,99.999,x,100.0,4.0,B\r\n"
                                 "z,0.1,x,18,5.0,B\r\n"
                                 "i,0.03,x,21.0,9.0,A\r\n");
    const char *lab = write_file("ok_lab.csv", "Num,Type,Per\nB,c,0.3\nA,ab,0.6\n");
    sf_lc_set s;
    CHECK(load(obs, lab, &s) == SF_OK);
    CHECK(s.n_objects == 2 && s.n_rows == 6 && s.n_dropped_sentinel == 1 && s.is_mag);
    CHECK(s.n_classes == 2 && !strcmp(s.classes[0], "ab") && !strcmp(s.classes[1], "c"));
    int a = sf_lc_find(&s, "A"), b = sf_lc_find(&s, "B");
    CHECK(a == 0 && b == 1);
    if (a == 0 && b == 1) {
        const sf_lightcurve *A = &s.obj[a];
        CHECK(A->n == 3 && !strcmp(A->label, "ab"));
        CHECK(A->time[0] == 9.0 && A->time[1] == 10.0 && A->time[2] == 10.5);
        CHECK(A->band[0] == 3 && A->band[1] == 2 && A->band[2] == 1); /* i, r, g */
        /* mag 17.5, ZP 27.5: flux 10^4; error 0.02 mag -> 10^4 * 0.4 ln 10 * 0.02 */
        CHECK_NEAR(A->flux[1], 1e4, 1e-9);
        CHECK_NEAR(A->flux_err[1], 1e4 * 0.4 * log(10.0) * 0.02, 1e-9);
        CHECK_NEAR(A->flux[0], pow(10, -0.4 * (21.0 - 27.5)), 1e-9);
        CHECK(s.obj[b].n == 2 && !strcmp(s.obj[b].label, "c"));
        CHECK(s.bands.n_bands == 5 && s.bands.band_wavelength[2] == 6166);
        /* GP data: times shifted to the first observation, wavelengths of the bands */
        double t[3], w[3];
        sf_gp_data d;
        sf_lc_gp_data(A, &s.bands, t, w, &d);
        CHECK(d.n == 3 && t[0] == 0 && t[2] == 1.5 && w[0] == 7480 && w[2] == 4686);
    }
    sf_lc_free(&s);

    /* Fluxes given directly, custom bands, no labels. */
    obs = write_file("flux.csv", "object_id,mjd,passband,flux,flux_err\n7,1,b0,-3.5,1\n7,2,b1,4,0.5\n");
    sf_lc_opts o;
    sf_lc_opts_init(&o);
    o.bands = "b0:5000,b1:7000";
    CHECK(sf_lc_load(obs, NULL, &o, &s) == SF_OK);
    CHECK(s.n_objects == 1 && !s.is_mag && s.obj[0].flux[0] == -3.5 && s.obj[0].flux_err[1] == 0.5);
    CHECK(s.obj[0].label == NULL && s.n_classes == 0);
    sf_lc_free(&s);

    /* drop_short: the one-observation object is dropped, and its label row is accepted. */
    obs = write_file("short.csv", "object_id,time,band,mag,magerr\nA,1,g,18,0.1\nA,2,r,18,0.1\nB,1,g,18,0.1\n");
    lab = write_file("short_lab.csv", "object_id,label\nA,x\nB,y\n");
    sf_lc_opts_init(&o);
    o.drop_short = 1;
    CHECK(sf_lc_load(obs, lab, &o, &s) == SF_OK);
    CHECK(s.n_objects == 1 && s.n_dropped_short == 1 && s.n_classes == 1);
    sf_lc_free(&s);
}

static void test_errors(void) {
    const char *H = "object_id,time,band,mag,magerr\n";
    char buf[512];
#define OBS(rows) (snprintf(buf, sizeof buf, "%s%s", H, rows), buf)
    expect_fail("", NULL, "empty file");
    expect_fail("object_id,time,mag,magerr\nA,1,18,0.1\n", NULL, "header needs columns");
    expect_fail("object_id,time,band,mag,flux,magerr\nA,1,g,18,3,0.1\n", NULL, "both 'mag' and 'flux'");
    expect_fail("object_id,time,band,mag\nA,1,g,18\n", NULL, "no error column");
    expect_fail(OBS("A,1,g,18,0.1\nA,2,r,18\n"), NULL, "obs.csv:3: 4 fields, the header has 5");
    expect_fail(OBS("A,1,g,18,0.1\nA,2,y,18,0.1\n"), NULL, "obs.csv:3: unknown band 'y' (known: u, g, r, i, z");
    expect_fail(OBS("A,1,g,18,0.1\nA,nan,r,18,0.1\n"), NULL, "obs.csv:3: column 'time': nan is not a finite value");
    expect_fail(OBS("A,1,g,NaN,0.1\n"), NULL, "obs.csv:2: column 'mag': NaN is not a finite value");
    expect_fail(OBS("A,1,g,18,abc\n"), NULL, "obs.csv:2: column 'magerr': not a number: 'abc'");
    expect_fail(OBS("A,1,g,18,\n"), NULL, "obs.csv:2: column 'magerr': not a number: ''");
    expect_fail(OBS("A,1,g,18,0\n"), NULL, "obs.csv:2: column 'magerr': error 0 is not positive");
    expect_fail(OBS(",1,g,18,0.1\n"), NULL, "obs.csv:2: empty object id");
    expect_fail(OBS("A,1,g,18,0.1\nA,2,g,18,0.1\nB,1,g,18,0.1\n"), NULL,
                "object 'B' has 1 usable observation; a GP needs at least 2");
    expect_fail(OBS("A,1,g,18,0.1\nA,2,g,18,0.1\nB,1,g,100,99.999\nB,2,g,18,0.1\n"), NULL,
                "object 'B' has 1 usable observation");
    expect_fail(OBS("A,1,g,-900,0.1\nA,2,g,18,0.1\n"), NULL, "obs.csv:2: magnitude -900 (error 0.1) gives no finite flux");
    expect_fail(H, NULL, "no observations");
    /* labels */
    const char *two = "A,1,g,18,0.1\nA,2,g,18,0.1\nB,1,g,18,0.1\nB,3,g,18,0.1\n";
    expect_fail(OBS(two), "object_id,label\nA,x\n", "object 'B' has no label in");
    expect_fail(OBS(two), "object_id,label\nA,x\nB,y\nC,z\n", "lab.csv:4: object 'C' has no observations in");
    expect_fail(OBS(two), "object_id,label\nA,x\nB,y\nA,y\n", "lab.csv:4: object 'A' is labelled twice");
    expect_fail(OBS(two), "object_id,period\nA,1\n", "header needs an id column");
    expect_fail(OBS(two), "object_id,label\nA,x\nB\n", "lab.csv:3: 1 fields, the header has 2");
    expect_fail(OBS(two), "object_id,label\nA,x\nB,\n", "lab.csv:3: empty label");
    expect_fail(OBS(two), "", "lab.csv: empty file");
#undef OBS
    sf_lc_set s;
    CHECK(load(tmp_path("does_not_exist.csv"), NULL, &s) == SF_ERR && msg_has("cannot open"));
    /* band lists */
    sf_bandset b;
    CHECK(sf_bandset_parse("u:3551,g", &b) == SF_ERR && msg_has("'g' is not name:wavelength"));
    CHECK(sf_bandset_parse("u:3551,u:10", &b) == SF_ERR && msg_has("band 'u' is listed twice"));
    CHECK(sf_bandset_parse("u:-5", &b) == SF_ERR && msg_has("positive wavelength"));
    /* a gzip stream cut short */
    const char *gz = tmp_path("cut.csv.gz");
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "(printf 'object_id,time,band,mag,magerr\\n'; for i in $(seq 1 3000); do echo A,$i,g,18,0.1; done) "
             "| gzip -c | head -c 2000 > %s",
             gz);
    CHECK(system(cmd) == 0);
    CHECK(load(gz, NULL, &s) == SF_ERR && msg_has("read error"));
}

static void test_ts_and_folds(uint64_t seed) {
    float v[3 * 2 * 4];
    for (int i = 0; i < 24; i++) v[i] = (float)i / 3.0f;
    const char *labels[3] = {"ab", "c", "ab"}, *classes[2] = {"ab", "c"};
    int rows[2] = {2, 0};
    sf_ts_header h = {"Test", "line one\nline two", 2, 4, 2, classes};
    const char *p = tmp_path("x.ts");
    CHECK(sf_ts_write(p, &h, v, labels, rows, 2) == SF_OK);
    void *text;
    size_t n;
    CHECK(sf_read_file(p, &text, &n) == SF_OK);
    const char *want =
        "# line one\n# line two\n@problemName Test\n@timeStamps false\n@missing false\n"
        "@univariate false\n@dimensions 2\n@equalLength true\n@seriesLength 4\n"
        "@classLabel true ab c\n@data\n"
        "5.33333349,5.66666651,6,6.33333349:6.66666651,7,7.33333349,7.66666651:ab\n"
        "0,0.333333343,0.666666687,1:1.33333337,1.66666663,2,2.33333325:ab\n";
    CHECK_MSG(!strcmp(text, want), "got:\n%s", (char *)text);
    free(text);
    /* unequal lengths */
    const float c0[4] = {1, 2, 3, 4}, c1[2] = {5, 6};
    const float *cases[2] = {c0, c1};
    int lens[2] = {2, 1}, rr[2] = {1, 0};
    const char *lab2[2] = {"c", "ab"};
    CHECK(sf_ts_write_ragged(p, &h, cases, lens, lab2, rr, 2) == SF_OK);
    CHECK(sf_read_file(p, &text, &n) == SF_OK);
    CHECK_MSG(strstr(text, "@dimensions 2\n@equalLength false\n@classLabel true ab c\n@data\n5:6:ab\n1,2:3,4:c\n") &&
              !strstr(text, "@seriesLength"), "got:\n%s", (char *)text);
    free(text);
    lens[0] = 0;
    CHECK(sf_ts_write_ragged(p, &h, cases, lens, lab2, rr, 2) == SF_ERR && msg_has("case 0 is empty"));
    const char *bad[2] = {"a b", "c"};
    h.classes = bad;
    CHECK(sf_ts_write(p, &h, v, labels, rows, 2) == SF_ERR && msg_has("class label 'a b'"));
    h.classes = classes;
    const char *unk[3] = {"zz", "c", "zz"};
    CHECK(sf_ts_write(p, &h, v, unk, rows, 2) == SF_ERR && msg_has("label 'zz' is not in the class list"));

    /* k-fold: balanced per class and overall, deterministic in the seed. */
    enum { N = 103 };
    int cls[N], f1[N], f2[N];
    for (int i = 0; i < N; i++) cls[i] = i % 5 == 0 ? 1 : 0; /* 21 of class 1, 82 of class 0 */
    CHECK(sf_kfold_stratified(N, cls, 2, 5, seed, f1) == SF_OK);
    CHECK(sf_kfold_stratified(N, cls, 2, 5, seed, f2) == SF_OK);
    CHECK(!memcmp(f1, f2, sizeof f1));
    int cnt[5][2] = {{0}};
    for (int i = 0; i < N; i++) cnt[f1[i]][cls[i]]++;
    int tot_min = N, tot_max = 0;
    for (int f = 0; f < 5; f++) {
        CHECK(cnt[f][0] >= 16 && cnt[f][0] <= 17 && cnt[f][1] >= 4 && cnt[f][1] <= 5);
        int t = cnt[f][0] + cnt[f][1];
        tot_min = t < tot_min ? t : tot_min;
        tot_max = t > tot_max ? t : tot_max;
    }
    CHECK(tot_max - tot_min <= 1);
    int few[6] = {0, 0, 0, 0, 0, 1};
    CHECK(sf_kfold_stratified(6, few, 2, 5, seed, f1) == SF_ERR && msg_has("class 1 has 1 member, fewer than the 5 folds"));
}

/* The real file (skipped when ../shared is not there): counts from data/README.md, and the
 * arrays the SciPy fixture of test_gp was built from. */
static void test_real(void) {
    const char *obs = "../shared/data/lightcurves/rrlyrae_sdss_stripe82.csv.gz";
    const char *lab = "../shared/data/lightcurves/rrlyrae_periods.csv";
    FILE *f = fopen(obs, "rb");
    if (!f) {
        printf("skipping the real-data check: %s not found\n", obs);
        return;
    }
    fclose(f);
    sf_lc_set s;
    CHECK(load(obs, lab, &s) == SF_OK);
    long rows = 0;
    int ab = 0;
    for (int i = 0; i < s.n_objects; i++) rows += s.obj[i].n, ab += !strcmp(s.obj[i].label, "ab");
    printf("real data: %d objects, %ld rows read, %ld kept, %ld dropped (mag/err >= 99), ab %d, c %d\n",
           s.n_objects, s.n_rows, rows, s.n_dropped_sentinel, ab, s.n_objects - ab);
    CHECK(s.n_objects == 483 && s.n_rows == 136196 && rows + s.n_dropped_sentinel == 136196);
    CHECK(ab == 379 && s.n_classes == 2);
    /* Object 4099 as the fixture has it. */
    void *text;
    size_t n;
    int k = sf_lc_find(&s, "4099");
    CHECK(k >= 0 && sf_read_file("tests/fixtures/gp_rrlyrae.json", &text, &n) == SF_OK);
    if (k >= 0) {
        const sf_lightcurve *lc = &s.obj[k];
        double *t = malloc(sizeof(double) * lc->n), *w = malloc(sizeof(double) * lc->n);
        sf_gp_data d;
        sf_lc_gp_data(lc, &s.bands, t, w, &d);
        /* the fixture's arrays (NumPy: 10**(-0.4 (m - 27.5)), stable sort by time) */
        cJSON *root = cJSON_Parse(text), *o;
        double wt = 0, wy = 0, we = 0;
        int found = 0;
        cJSON_ArrayForEach(o, cJSON_GetObjectItem(root, "objects")) {
            if (strcmp(cJSON_GetObjectItem(o, "id")->valuestring, "4099")) continue;
            found = 1;
            CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(o, "t")) == lc->n);
            for (int i = 0; i < lc->n && i < cJSON_GetArraySize(cJSON_GetObjectItem(o, "t")); i++) {
                double ft = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "t"), i)->valuedouble;
                double fy = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "y"), i)->valuedouble;
                double fe = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "yerr"), i)->valuedouble;
                double fw = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "w"), i)->valuedouble;
                wt = fmax(wt, fabs(t[i] - ft));
                wy = fmax(wy, fabs(d.y[i] - fy) / fabs(fy));
                we = fmax(we, fabs(d.yerr[i] - fe) / fe);
                CHECK(w[i] == fw);
            }
        }
        cJSON_Delete(root);
        printf("object 4099 vs the NumPy fixture: time abs %.1e, flux rel %.1e, error rel %.1e\n", wt, wy, we);
        CHECK(found && wt == 0 && wy < 1e-14 && we < 1e-14);
        free(t), free(w);
    }
    free(text);
    sf_lc_free(&s);
}

int main(void) {
    uint64_t seed = test_seed();
    if (test_tmpdir_create("sf_test_lc")) return 2;
    test_basic();
    test_errors();
    test_ts_and_folds(seed);
    test_real();
    test_tmpdir_remove();
    return test_finish();
}
