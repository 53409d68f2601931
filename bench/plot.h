/*
 * plot.h - percentile-distribution plots (gnuplot, PNG).
 */
#ifndef HBUS_BENCH_PLOT_H
#define HBUS_BENCH_PLOT_H

#include "hist.h"

/* Write a PNG to png with one line per histogram.  0, -ENOENT when gnuplot
 * is not installed, -EIO when it failed (its messages go to stderr),
 * -EINVAL on a file name or title with a double quote. */
int bench_plot_png(const char *png, const char *title, const char *const *names,
		   const struct hist *const *hists, unsigned n);

#endif
