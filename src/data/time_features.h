/* Calendar features of timestamps, Informer's `timeF` encoding (utils/timefeatures.py with
 * timeenc=1): each feature is a calendar field scaled to [-0.5, 0.5],
 *   SecondOfMinute s/59 - .5, MinuteOfHour m/59 - .5, HourOfDay h/23 - .5,
 *   DayOfWeek (Monday 0) w/6 - .5, DayOfMonth (d-1)/30 - .5, DayOfYear (doy-1)/365 - .5,
 *   MonthOfYear (m-1)/11 - .5, WeekOfYear (ISO week - 1)/52 - .5,
 * chosen and ordered by the data frequency as pandas offsets map to them:
 *   's' second : SecondOfMinute, MinuteOfHour, HourOfDay, DayOfWeek, DayOfMonth, DayOfYear
 *   't' minute : MinuteOfHour, HourOfDay, DayOfWeek, DayOfMonth, DayOfYear
 *   'h' hour   : HourOfDay, DayOfWeek, DayOfMonth, DayOfYear
 *   'd' day, 'b' business day : DayOfWeek, DayOfMonth, DayOfYear
 *   'w' week   : DayOfMonth, WeekOfYear
 *   'm' month  : MonthOfYear
 * Timestamps are seconds since 1970-01-01 UTC (sf_table.timestamps). Computed in double, stored
 * as float (as the reference's float64 features become float32 tensors). */
#ifndef SF_DATA_TIME_FEATURES_H
#define SF_DATA_TIME_FEATURES_H

#include <stdint.h>

/* Features per timestamp for a frequency letter, or 0 for an unknown one. */
int sf_time_features_count(char freq);
/* The frequency choices as an option's choice list. */
#define SF_TIME_FREQ_CHOICES "h|t|s|d|b|w|m"
/* The frequency letter for a series' step in seconds: s below a minute, t below an hour, h below
 * a day, d below a week, w below four weeks, m otherwise (the reference's --freq for ETTm is t). */
char sf_time_freq_for_step(int64_t step);
/* out[n][count(freq)] for timestamps ts[n]. */
void sf_time_features(const int64_t *ts, long n, char freq, float *out);

#endif
