#include "data/time_features.h"

#include "core/error.h"
#include "data/table.h"

int sf_time_features_count(char freq) {
    switch (freq) {
    case 's':
        return 6;
    case 't':
        return 5;
    case 'h':
        return 4;
    case 'd':
    case 'b':
        return 3;
    case 'w':
        return 2;
    case 'm':
        return 1;
    default:
        return 0;
    }
}

char sf_time_freq_for_step(int64_t step) {
    return step < 60           ? 's'
           : step < 3600       ? 't'
           : step < 86400      ? 'h'
           : step < 7 * 86400  ? 'd'
           : step < 28 * 86400 ? 'w'
                               : 'm';
}

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* ISO 8601 week number (1..53): the week of the Thursday of this date's Monday-based week. */
static int iso_week(int64_t days, int dow) {
    int64_t thursday = days - dow + 3;
    int y, m, d;
    sf_civil_from_days(thursday, &y, &m, &d);
    return (int)((thursday - sf_days_from_civil(y, 1, 1)) / 7) + 1;
}

void sf_time_features(const int64_t *ts, long n, char freq, float *out) {
    int F = sf_time_features_count(freq);
    SF_ASSERT(F > 0 && "unknown time-feature frequency");
    for (long i = 0; i < n; i++) {
        int64_t days = floor_div(ts[i], 86400), sod = ts[i] - days * 86400;
        int y, mo, d;
        sf_civil_from_days(days, &y, &mo, &d);
        int dow = (int)(((days + 3) % 7 + 7) % 7); /* 1970-01-01 was a Thursday; Monday is 0 */
        double second = (double)(sod % 60) / 59.0 - 0.5;
        double minute = (double)(sod / 60 % 60) / 59.0 - 0.5;
        double hour = (double)(sod / 3600) / 23.0 - 0.5;
        double weekday = dow / 6.0 - 0.5;
        double mday = (d - 1) / 30.0 - 0.5;
        double yday = (double)(days - sf_days_from_civil(y, 1, 1)) / 365.0 - 0.5;
        double f[6];
        int k = 0;
        switch (freq) {
        case 's':
            f[k++] = second; /* fall through */
        case 't':
            f[k++] = minute; /* fall through */
        case 'h':
            f[k++] = hour; /* fall through */
        case 'd':
        case 'b':
            f[k++] = weekday;
            f[k++] = mday;
            f[k++] = yday;
            break;
        case 'w':
            f[k++] = mday;
            f[k++] = (iso_week(days, dow) - 1) / 52.0 - 0.5;
            break;
        default:
            f[k++] = (mo - 1) / 11.0 - 0.5;
            break; /* 'm' */
        }
        for (int j = 0; j < F; j++) out[i * F + j] = (float)f[j];
    }
}
