/*
 * plot.c - latency percentile distributions as a PNG, drawn by gnuplot.
 *
 * The plot is the HdrHistogram one: x is the percentile on the scale
 * 1/(1-p) (so 90%, 99%, 99.9% ... are evenly spaced), y is the latency on
 * a log scale; one line per transport.  The data goes to a private temp
 * file, the script to gnuplot's stdin.  gnuplot-nox has both the pngcairo
 * (anti-aliased) and the libgd png terminal; the script picks pngcairo
 * when the running gnuplot lists it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plot.h"

/* Points per decade of 1/(1-p). */
#define PLOT_STEPS_PER_DECADE 20

static int write_data(FILE *f, const struct hist *const *hists, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const struct hist *h = hists[i];
		/* From p = 0 up to the last percentile the sample count can
		 * resolve (1/(1-p) = total), then the max. */
		double top = h->total > 1 ? (double)h->total : 1.0;
		for (unsigned k = 0;; k++) {
			double x = pow(10.0, (double)k / PLOT_STEPS_PER_DECADE);
			if (x > top)
				break;
			double p = 100.0 * (1.0 - 1.0 / x);
			fprintf(f, "%.6g %.6g\n", x, (double)hist_percentile(h, p) / 1000.0);
		}
		fprintf(f, "%.6g %.6g\n", top, (double)h->max / 1000.0);
		fprintf(f, "\n\n"); /* next gnuplot index block */
	}
	return ferror(f) ? -EIO : 0;
}

int bench_plot_png(const char *png, const char *title, const char *const *names,
		   const struct hist *const *hists, unsigned n)
{
	char data[] = "/tmp/hbus-bench-plot-XXXXXX";
	FILE *f, *gp;
	int fd, rc, status;

	if (!png || !n || strchr(png, '"') || strchr(title, '"'))
		return -EINVAL;
	fd = mkstemp(data);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		unlink(data);
		return rc;
	}
	rc = write_data(f, hists, n);
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	if (rc)
		goto out;
	gp = popen("gnuplot 1>&2", "w"); /* keep stdout for --json */
	if (!gp) {
		rc = -errno;
		goto out;
	}
	fprintf(gp,
		"if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
		"  set terminal pngcairo size 1100,650 font \"sans,10\"\n"
		"} else {\n"
		"  set terminal png size 1100,650\n"
		"}\n"
		"set output \"%s\"\n"
		"set title \"%s\"\n"
		"set logscale xy\n"
		"set format y \"%%g\"\n"
		"set xrange [1:*]\n"
		/* Tic labels are gnuplot format strings: "%%%%" prints "%". */
		"set xtics (\"0%%%%\" 1, \"90%%%%\" 10, \"99%%%%\" 100, \"99.9%%%%\" 1000,"
		" \"99.99%%%%\" 10000, \"99.999%%%%\" 100000, \"99.9999%%%%\" 1000000,"
		" \"99.99999%%%%\" 10000000)\n"
		"set xlabel \"percentile\"\n"
		"set ylabel \"round-trip latency (us)\"\n"
		"set grid xtics ytics mytics\n"
		"set key top left\n"
		"plot ", png, title);
	for (unsigned i = 0; i < n; i++)
		fprintf(gp, "%s\"%s\" index %u using 1:2 with lines lw 2 title \"%s\"", i ? ", " : "",
			data, i, names[i]);
	fprintf(gp, "\n");
	status = pclose(gp);
	if (status == -1)
		rc = -errno;
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		rc = WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
out:
	unlink(data);
	return rc;
}
