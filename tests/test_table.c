/* Tests for the CSV table reader (src/data/table.c): the shipped ETTh1 file, every supported
 * date format, CRLF/quotes/gzip/BOM/long lines, continuing dates, and one bad-input file per
 * error, each checked for a message that names the file and the line. Run from the repo root. */
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "data/table.h"
#include "test_tmpdir.h"
#include "test_util.h"

/* Expect sf_table_read_csv(path) to fail with a message containing path and each needle. */
static void expect_fail(const char *path, const char *needle1, const char *needle2) {
    sf_table t;
    sf_error_clear();
    int rc = sf_table_read_csv(path, &t);
    CHECK_MSG(rc == SF_ERR, "%s unexpectedly parsed", path);
    CHECK_MSG(msg_has(path), "message lacks path: %s", sf_error_message());
    if (needle1) CHECK_MSG(msg_has(needle1), "message lacks '%s': %s", needle1, sf_error_message());
    if (needle2) CHECK_MSG(msg_has(needle2), "message lacks '%s': %s", needle2, sf_error_message());
    CHECK(strchr(sf_error_message(), '\n') == NULL);
    CHECK(t.n_rows == 0 && t.values == NULL); /* left zeroed */
    if (rc != SF_ERR) sf_table_free(&t);
}

static void test_etth1(void) {
    sf_table t;
    int rc = sf_table_read_csv("data/ETTh1.csv", &t);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc != SF_OK) return;
    CHECK(t.n_rows == 17420);
    CHECK(t.n_cols == 7);
    CHECK(strcmp(t.date_name, "date") == 0);
    const char *names[7] = {"HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"};
    for (int j = 0; j < 7; j++) CHECK(strcmp(t.col_names[j], names[j]) == 0);
    CHECK(sf_table_find_column(&t, "OT") == 6);
    CHECK(sf_table_find_column(&t, "MUFL") == 2);
    CHECK(sf_table_find_column(&t, "ot") == -1);
    CHECK(strcmp(t.dates[0], "2016-07-01 00:00:00") == 0);
    CHECK(strcmp(t.dates[t.n_rows - 1], "2018-06-26 19:00:00") == 0);
    CHECK(t.timestamps[0] == 1467331200); /* 2016-07-01T00:00:00Z */
    CHECK(t.values[0] == 5.827000141143799);
    CHECK(t.values[6] == 30.5310001373291);
    CHECK(t.values[7] == 5.692999839782715);
    int hourly = 1;
    for (int i = 1; i < t.n_rows; i++)
        if (t.timestamps[i] - t.timestamps[i - 1] != 3600) hourly = 0;
    CHECK(hourly);

    char **nd = NULL;
    rc = sf_table_next_dates(&t, 6, &nd);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc == SF_OK) {
        CHECK(strcmp(nd[0], "2018-06-26 20:00:00") == 0);
        CHECK(strcmp(nd[3], "2018-06-26 23:00:00") == 0);
        CHECK(strcmp(nd[4], "2018-06-27 00:00:00") == 0); /* day rollover */
        CHECK(strcmp(nd[5], "2018-06-27 01:00:00") == 0);
        for (int k = 0; k < 6; k++) free(nd[k]);
        free(nd);
    }
    sf_table_free(&t);
    CHECK(t.values == NULL && t.n_rows == 0);
}

static void test_parse_date(void) {
    int64_t ts = 0;
    CHECK(sf_parse_date("1970-01-01 00:00:00", &ts) == SF_OK && ts == 0);
    CHECK(sf_parse_date("1970-01-01", &ts) == SF_OK && ts == 0);
    CHECK(sf_parse_date("2016-07-01 00:15", &ts) == SF_OK && ts == 1467331200 + 900);
    CHECK(sf_parse_date("1990/1/1 0:00", &ts) == SF_OK && ts == 631152000);
    CHECK(sf_parse_date("1990/1/1", &ts) == SF_OK && ts == 631152000);
    CHECK(sf_parse_date("2010/10/10 0:00", &ts) == SF_OK && ts == 1286668800);
    CHECK(sf_parse_date("2000-02-29 23:59:59", &ts) == SF_OK && ts == 951868799);
    CHECK(sf_parse_date("1969-12-31 23:00:00", &ts) == SF_OK && ts == -3600);
    CHECK(sf_parse_date("2016-07-01T01:00:00", &ts) == SF_OK && ts == 1467334800);
    const char *bad[] = {"",           "2016",          "2016-07",          "2017-02-29",
                         "1900-02-29", "2016-13-01",    "2016-00-10",       "2016-07-32",
                         "2016-07-01 24:00:00",         "2016-07-01 10:60", "2016-07-01 1:5",
                         "2016-07-01 10:00:00x",        "16-07-01",         "2016-07/01",
                         "2016-07-01 10",               "abc",              "2016-07-01  10:00",
                         "2016-07-001"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        sf_error_clear();
        int rc = sf_parse_date(bad[k], &ts);
        CHECK_MSG(rc == SF_ERR, "'%s' parsed", bad[k]);
        CHECK(msg_has("unparsable date"));
    }
}

static int tables_equal(const sf_table *a, const sf_table *b) {
    if (a->n_rows != b->n_rows || a->n_cols != b->n_cols) return 0;
    if (strcmp(a->date_name, b->date_name) != 0) return 0;
    for (int j = 0; j < a->n_cols; j++)
        if (strcmp(a->col_names[j], b->col_names[j]) != 0) return 0;
    for (int i = 0; i < a->n_rows; i++) {
        if (strcmp(a->dates[i], b->dates[i]) != 0) return 0;
        if (a->timestamps[i] != b->timestamps[i]) return 0;
    }
    return memcmp(a->values, b->values, sizeof(double) * (size_t)a->n_rows * (size_t)a->n_cols) == 0;
}

static void test_formats(void) {
    const char *lf = "date,a,b\n2016-07-01 00:00:00,1.5,-2\n2016-07-01 01:00:00,3e2,  4.25 \n";
    const char *crlf = "date,a,b\r\n2016-07-01 00:00:00,1.5,-2\r\n2016-07-01 01:00:00,3e2,  4.25 \r\n";
    const char *nonl = "date,a,b\n2016-07-01 00:00:00,1.5,-2\n2016-07-01 01:00:00,3e2,  4.25";
    const char *bom_blank = "\xEF\xBB\xBF" "date,a,b\n\n2016-07-01 00:00:00,1.5,-2\n"
                            "2016-07-01 01:00:00,3e2,  4.25\n\n\r\n";
    sf_table a, b, c, d;
    int ok = sf_table_read_csv(write_file("lf.csv", lf), &a) == SF_OK;
    CHECK_MSG(ok, "%s", sf_error_message());
    if (!ok) return;
    CHECK(a.n_rows == 2 && a.n_cols == 2);
    CHECK(a.values[0] == 1.5 && a.values[1] == -2 && a.values[2] == 300 && a.values[3] == 4.25);
    CHECK(sf_table_read_csv(write_file("crlf.csv", crlf), &b) == SF_OK);
    CHECK(sf_table_read_csv(write_file("nonl.csv", nonl), &c) == SF_OK);
    CHECK(sf_table_read_csv(write_file("bom.csv", bom_blank), &d) == SF_OK);
    CHECK(tables_equal(&a, &b));
    CHECK(tables_equal(&a, &c));
    CHECK(tables_equal(&a, &d));
    sf_table_free(&a);
    sf_table_free(&b);
    sf_table_free(&c);
    sf_table_free(&d);

    /* Quoted header fields, as in statsmodels' sunspots and the ILI file's odd names. */
    const char *q = "\"YEAR\",\"SUNACTIVITY\",\"% WEIGHTED ILI\",\"a,b\",\"say \"\"hi\"\"\"\r\n"
                    "1700/1/1,5.0,1,2,3\r\n1701/1/1,\"11.0\",4,5,6\r\n";
    ok = sf_table_read_csv(write_file("quoted.csv", q), &a) == SF_OK;
    CHECK_MSG(ok, "%s", sf_error_message());
    if (ok) {
        CHECK(strcmp(a.date_name, "YEAR") == 0);
        CHECK(a.n_cols == 4);
        CHECK(strcmp(a.col_names[0], "SUNACTIVITY") == 0);
        CHECK(strcmp(a.col_names[1], "% WEIGHTED ILI") == 0);
        CHECK(strcmp(a.col_names[2], "a,b") == 0);
        CHECK(strcmp(a.col_names[3], "say \"hi\"") == 0);
        CHECK(sf_table_find_column(&a, "% WEIGHTED ILI") == 1);
        CHECK(a.values[4] == 11.0);
        sf_table_free(&a);
    }

    /* gzip, written with zlib. */
    const char *gzp = tmp_path("lf.csv.gz");
    gzFile gz = gzopen(gzp, "wb");
    CHECK(gz != NULL);
    if (gz) {
        gzputs(gz, lf);
        gzclose(gz);
        ok = sf_table_read_csv(gzp, &b) == SF_OK;
        CHECK_MSG(ok, "%s", sf_error_message());
        sf_table_read_csv(write_file("lf2.csv", lf), &a);
        if (ok) {
            CHECK(tables_equal(&a, &b));
            sf_table_free(&b);
        }
        sf_table_free(&a);
    }

    /* Very long lines: 3000 columns with 40-character names (~130 KB header). */
    {
        int nc = 3000;
        size_t cap = (size_t)nc * 64 + 256;
        char *s = sf_malloc(cap * 3);
        size_t pos = (size_t)sprintf(s, "date");
        for (int j = 0; j < nc; j++)
            pos += (size_t)sprintf(s + pos, ",column_with_a_rather_long_name_%08d", j);
        for (int r = 0; r < 2; r++) {
            pos += (size_t)sprintf(s + pos, "\n2020-01-0%d", r + 1);
            for (int j = 0; j < nc; j++) pos += (size_t)sprintf(s + pos, ",%d.%03d", r, j % 1000);
        }
        pos += (size_t)sprintf(s + pos, "\n");
        ok = sf_table_read_csv(write_file("long.csv", s), &a) == SF_OK;
        CHECK_MSG(ok, "%s", sf_error_message());
        if (ok) {
            CHECK(a.n_cols == nc && a.n_rows == 2);
            CHECK(strcmp(a.col_names[nc - 1], "column_with_a_rather_long_name_00002999") == 0);
            CHECK(a.values[(size_t)nc + (size_t)nc - 1] == 1.999);
            CHECK(a.timestamps[1] - a.timestamps[0] == 86400);
            sf_table_free(&a);
        }
        free(s);
    }
}

static void check_next(const char *name, const char *csv, int n, const char *const *want) {
    sf_table t;
    int rc = sf_table_read_csv(write_file(name, csv), &t);
    CHECK_MSG(rc == SF_OK, "%s", sf_error_message());
    if (rc != SF_OK) return;
    char **nd = NULL;
    rc = sf_table_next_dates(&t, n, &nd);
    CHECK_MSG(rc == SF_OK, "%s: %s", name, sf_error_message());
    if (rc == SF_OK) {
        for (int k = 0; k < n; k++) {
            CHECK_MSG(strcmp(nd[k], want[k]) == 0, "%s: got '%s', want '%s'", name, nd[k], want[k]);
            free(nd[k]);
        }
        free(nd);
    }
    sf_table_free(&t);
}

static void test_next_dates(void) {
    const char *w1[] = {"2010/10/11 0:00", "2010/10/12 0:00"};
    check_next("daily.csv", "date,OT\n2010/10/8 0:00,1\n2010/10/9 0:00,2\n2010/10/10 0:00,3\n", 2,
               w1);
    const char *w2[] = {"2011/1/1 0:00"};
    check_next("newyear.csv", "date,OT\n2010/12/30 0:00,1\n2010/12/31 0:00,2\n", 1, w2);
    const char *w3[] = {"2016/2/29", "2016/3/1"};
    check_next("dateonly.csv", "date,OT\n2016/2/27,1\n2016/2/28,2\n", 2, w3);
    const char *w4[] = {"2018-06-26 19:15", "2018-06-26 19:30"};
    check_next("min15.csv", "date,OT\n2018-06-26 18:45,1\n2018-06-26 19:00,2\n", 2, w4);
    const char *w5[] = {"2020-07-07 00:00:00", "2020-07-14 00:00:00"};
    check_next("weekly.csv", "date,OT\n2020-06-23 00:00:00,1\n2020-06-30 00:00:00,2\n", 2, w5);
    const char *w6[] = {"2020-03-01"};
    check_next("dash.csv", "date,OT\n2020-02-27,1\n2020-02-28,2\n2020-02-29,3\n", 1, w6);
    /* An irregular gap does not change the most common step. */
    const char *w7[] = {"2016-07-01 09:00:00"};
    check_next("gap.csv",
               "date,OT\n2016-07-01 00:00:00,1\n2016-07-01 01:00:00,1\n2016-07-01 05:00:00,1\n"
               "2016-07-01 06:00:00,1\n2016-07-01 07:00:00,1\n2016-07-01 08:00:00,1\n",
               1, w7);

    sf_table t;
    char **nd = NULL;
    if (sf_table_read_csv(write_file("one.csv", "date,OT\n2020-01-01,1\n"), &t) == SF_OK) {
        sf_error_clear();
        CHECK(sf_table_next_dates(&t, 1, &nd) == SF_ERR && nd == NULL);
        CHECK(msg_has("one.csv") && msg_has("at least 2 rows"));
        sf_table_free(&t);
    }
    if (sf_table_read_csv(write_file("desc.csv", "date,OT\n2020-01-02,1\n2020-01-01,1\n"), &t) ==
        SF_OK) {
        sf_error_clear();
        CHECK(sf_table_next_dates(&t, 1, &nd) == SF_ERR && nd == NULL);
        CHECK(msg_has("desc.csv"));
        sf_table_free(&t);
    }
}

static void test_errors(void) {
    expect_fail(tmp_path("does_not_exist.csv"), "cannot open", NULL);
    expect_fail(write_file("empty.csv", ""), "empty", NULL);
    expect_fail(write_file("blank.csv", "\n\r\n  \n"), "empty", NULL);
    expect_fail(write_file("header_only.csv", "date,a,OT\n"), "no data rows", NULL);
    expect_fail(write_file("one_col.csv", "date\n2020-01-01\n"), ":1:", "header");
    expect_fail(write_file("no_header.csv", "2016-07-01 00:00:00,1,2\n2016-07-01 01:00:00,1,2\n"),
                ":1:", "missing header");
    expect_fail(write_file("ragged.csv", "date,a,OT\n2020-01-01,1,2\n2020-01-02,1\n"), ":3:",
                "expected 3 fields");
    expect_fail(write_file("ragged2.csv", "date,a,OT\n2020-01-01,1,2\n2020-01-02,1,2,\n"), ":3:",
                "found 4");
    expect_fail(write_file("nonnum.csv", "date,a,OT\n2020-01-01,1,2\n2020-01-02,1,2\n2020-01-03,1,abc\n"),
                ":4: column 'OT': not a number: 'abc'", NULL);
    expect_fail(write_file("partial.csv", "date,a,OT\n2020-01-01,1.5x,2\n"), ":2: column 'a'",
                "not a number");
    expect_fail(write_file("emptyval.csv", "date,a,OT\n2020-01-01,,2\n"), ":2: column 'a'",
                "not a number");
    expect_fail(write_file("nan.csv", "date,a,OT\n2020-01-01,1,2\n2020-01-02,nan,2\n"),
                ":3: column 'a'", "not finite: 'nan'");
    expect_fail(write_file("inf.csv", "date,a,OT\n2020-01-01,1,-inf\n"), ":2: column 'OT'",
                "not finite");
    expect_fail(write_file("huge.csv", "date,a,OT\n2020-01-01,1,1e999\n"), ":2: column 'OT'",
                "not finite");
    expect_fail(write_file("baddate.csv", "date,a,OT\n2020-01-01,1,2\n2020-02-30,1,2\n"), ":3:",
                "unparsable date '2020-02-30'");
    expect_fail(write_file("baddate2.csv", "date,a,OT\n01/02/2020,1,2\n"), ":2:",
                "unparsable date");
    expect_fail(write_file("quote.csv", "date,\"a,OT\n2020-01-01,1,2\n"), ":1:",
                "unterminated quote");
    expect_fail(write_file("quote2.csv", "date,\"a\"x,OT\n2020-01-01,1,2\n"), ":1:", "quote");
    expect_fail(write_file("dup.csv", "date,a,a\n2020-01-01,1,2\n"), ":1:", "duplicate");
    /* A truncated gzip stream is a read error, not silently fewer rows. */
    {
        const char *gzp = tmp_path("trunc.csv.gz");
        gzFile gz = gzopen(gzp, "wb");
        gzputs(gz, "date,OT\n");
        for (int i = 0; i < 20000; i++) gzprintf(gz, "2020-01-01,%d.123456789\n", i * 7919 % 10007);
        gzclose(gz);
        FILE *f = fopen(gzp, "rb");
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fclose(f);
        CHECK(truncate(gzp, n / 2) == 0);
        expect_fail(gzp, "read error", NULL);
    }
}

int main(void) {
    if (test_tmpdir_create("sf_test_table")) return 2;
    test_etth1();
    test_parse_date();
    test_formats();
    test_next_dates();
    test_errors();
    test_tmpdir_remove();
    return test_finish();
}
