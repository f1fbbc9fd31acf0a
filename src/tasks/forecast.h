/* Task "forecast": long-horizon multivariate forecasting with the Time-Series-Library data
 * protocol (data/forecast_data.h): windows of seq_len steps in, pred_len steps out, z-scored with
 * train statistics; loss MSE; metrics MSE and MAE in scaled units (as the papers report). */
#ifndef SF_TASKS_FORECAST_H
#define SF_TASKS_FORECAST_H

#include "data/forecast_data.h"
#include "tasks/task.h"

/* Mean squared error over n elements and its gradient (dy may be NULL). */
double sf_mse_loss(const float *y, const float *target, float *dy, long n);
/* "auto", "ett-hour"/"ETT-hour", "ett-minute"/"ETT-minute", "custom" -> kind. */
int sf_split_kind_parse(const char *s, sf_split_kind *kind);

#endif
