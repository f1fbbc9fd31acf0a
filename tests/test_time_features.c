/* Informer's timeF calendar features on known dates. The expected fields (weekday, day of year,
 * ISO week) come from Python's datetime, not from the code under test. */
#include <string.h>

#include "data/table.h"
#include "data/time_features.h"
#include "test_util.h"

typedef struct {
    const char *date;
    int second, minute, hour, weekday, mday, yday, month, isoweek;
} known;

static const known dates[] = {
    {"2016-07-01 00:00:00", 0, 0, 0, 4, 1, 183, 7, 26}, /* ETTh1's first row, a Friday */
    {"2018-02-20 23:00:00", 0, 0, 23, 1, 20, 51, 2, 8},
    {"2016-12-31 13:45:30", 30, 45, 13, 5, 31, 366, 12, 52}, /* leap year's last day */
    {"2021-01-03 06:15:00", 0, 15, 6, 6, 3, 3, 1, 53},       /* ISO week of the previous year */
    {"1969-12-31 23:59:59", 59, 59, 23, 2, 31, 365, 12, 1},  /* before the epoch */
};

static void check_date(const known *k) {
    int64_t ts;
    CHECK(sf_parse_date(k->date, &ts) == 0);
    float f[6];
    double sec = k->second / 59.0 - .5, min = k->minute / 59.0 - .5, hr = k->hour / 23.0 - .5;
    double wd = k->weekday / 6.0 - .5, md = (k->mday - 1) / 30.0 - .5;
    double yd = (k->yday - 1) / 365.0 - .5, mo = (k->month - 1) / 11.0 - .5;
    double wk = (k->isoweek - 1) / 52.0 - .5;
    const double want_s[6] = {sec, min, hr, wd, md, yd};
    sf_time_features(&ts, 1, 's', f);
    for (int j = 0; j < 6; j++)
        CHECK_MSG(fabsf(f[j] - (float)want_s[j]) <= 1e-7f, "%s s[%d] %.8g vs %.8g", k->date, j,
                  f[j], want_s[j]);
    sf_time_features(&ts, 1, 't', f);
    for (int j = 0; j < 5; j++) CHECK_MSG(f[j] == (float)want_s[j + 1], "%s t[%d]", k->date, j);
    sf_time_features(&ts, 1, 'h', f);
    for (int j = 0; j < 4; j++) CHECK_MSG(f[j] == (float)want_s[j + 2], "%s h[%d]", k->date, j);
    sf_time_features(&ts, 1, 'd', f);
    for (int j = 0; j < 3; j++) CHECK_MSG(f[j] == (float)want_s[j + 3], "%s d[%d]", k->date, j);
    sf_time_features(&ts, 1, 'w', f);
    CHECK_MSG(f[0] == (float)md && f[1] == (float)wk, "%s w: %g %g", k->date, f[0], f[1]);
    sf_time_features(&ts, 1, 'm', f);
    CHECK_MSG(f[0] == (float)mo, "%s m", k->date);
}

int main(void) {
    for (size_t i = 0; i < sizeof dates / sizeof *dates; i++) check_date(&dates[i]);
    CHECK(sf_time_features_count('h') == 4 && sf_time_features_count('t') == 5);
    CHECK(sf_time_features_count('s') == 6 && sf_time_features_count('x') == 0);
    /* every value of a year of hours stays in [-0.5, 0.5] */
    int64_t ts[24 * 366];
    for (int i = 0; i < 24 * 366; i++) ts[i] = 1451606400 + 3600LL * i; /* 2016-01-01 */
    static float f[24 * 366 * 4];
    sf_time_features(ts, 24 * 366, 'h', f);
    int inside = 1;
    for (int i = 0; i < 24 * 366 * 4; i++) inside &= f[i] >= -0.5f && f[i] <= 0.5f;
    CHECK(inside);
    CHECK(f[(24 * 366 - 1) * 4 + 3] == 0.5f); /* 2016-12-31: day 366 of a leap year */
    CHECK(sf_time_freq_for_step(3600) == 'h' && sf_time_freq_for_step(900) == 't');
    CHECK(sf_time_freq_for_step(1) == 's' && sf_time_freq_for_step(86400) == 'd');
    CHECK(sf_time_freq_for_step(7 * 86400) == 'w' && sf_time_freq_for_step(30 * 86400) == 'm');
    return test_finish();
}
