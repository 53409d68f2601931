/*
 * main.c - hbus-amqp: arguments, the hbusd session, the control thread,
 * the event loops, signals, and the once-a-second counters report.
 *
 *   hbus-amqp [--bus NAME] [--run-dir DIR] [--listen HOST:PORT] [--threads N] ...
 *   hbus-amqp --hash-password     (password on stdin -> RabbitMQ SHA-256 hash)
 */
#include "gw.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int loop_init(struct loop *l, unsigned idx, int *lfd_out);
void loop_run(struct loop *l, int lfd);
void loop_fini(struct loop *l, int lfd);
int ctl_start(void);
void ctl_stop(void);

volatile sig_atomic_t gw_stop;

struct gw_opts gw_opts = {
	.host = "127.0.0.1", .port = 5672, .threads = 1, .channel_max = 2047,
	.frame_max = 131072, .heartbeat = 60, .max_unacked = 8192, .max_buffer = 16u << 20,
	.handshake_s = 10, .send_timeout_s = 30, .idle_max_us = 1000,
	.queue_capacity = 1024, .queue_slot_size = 4096,
};

static void on_signal(int sig)
{
	(void)sig;
	gw_stop = 1;
}

static int hash_password(void)
{
	char pw[1024];
	uint8_t buf[4 + 32];
	unsigned char out[64];
	unsigned dlen = 0;
	size_t n;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!fgets(pw, sizeof(pw), stdin))
		return 1;
	n = strcspn(pw, "\r\n");
	pw[n] = 0;
	if (!md || RAND_bytes(buf, 4) != 1 || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, buf, 4) || !EVP_DigestUpdate(md, pw, n) ||
	    !EVP_DigestFinal_ex(md, buf + 4, &dlen)) {
		fprintf(stderr, "hbus-amqp: SHA-256 failed\n");
		return 1;
	}
	EVP_MD_CTX_free(md);
	EVP_EncodeBlock(out, buf, sizeof(buf));
	printf("%s\n", out);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hbus-amqp [--bus NAME] [--run-dir DIR] [--listen HOST:PORT] [--threads N]\n"
		"                 [--channel-max N] [--frame-max B] [--heartbeat S]\n"
		"                 [--max-unacked N] [--max-buffer B] [--handshake-timeout S]\n"
		"                 [--send-timeout S] [--idle-max-us US] [--queue-capacity N]\n"
		"                 [--queue-slot-size B] [--stats-file F]\n"
		"       hbus-amqp --hash-password   (reads a password on stdin)\n");
}

static unsigned long num(const char *s, const char *opt, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v < lo || v > hi) {
		fprintf(stderr, "hbus-amqp: %s must be a number from %lu to %lu\n", opt, lo, hi);
		exit(2);
	}
	return v;
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "bus", 1, 0, 'b' }, { "run-dir", 1, 0, 'r' }, { "listen", 1, 0, 'l' },
		{ "threads", 1, 0, 't' }, { "channel-max", 1, 0, 'C' }, { "frame-max", 1, 0, 'F' },
		{ "heartbeat", 1, 0, 'H' }, { "max-unacked", 1, 0, 'U' }, { "max-buffer", 1, 0, 'B' },
		{ "handshake-timeout", 1, 0, 'T' }, { "send-timeout", 1, 0, 'S' },
		{ "idle-max-us", 1, 0, 'I' }, { "queue-capacity", 1, 0, 'Q' },
		{ "queue-slot-size", 1, 0, 'Z' }, { "stats-file", 1, 0, 'f' },
		{ "hash-password", 0, 0, 'P' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
	};
	int o;

	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (o) {
		case 'b': gw_opts.bus = optarg; break;
		case 'r': gw_opts.run_dir = optarg; break;
		case 'l': {
			char *colon = strrchr(optarg, ':');
			if (!colon || (size_t)(colon - optarg) >= sizeof(gw_opts.host)) {
				fprintf(stderr, "hbus-amqp: --listen takes HOST:PORT\n");
				exit(2);
			}
			memcpy(gw_opts.host, optarg, (size_t)(colon - optarg));
			gw_opts.host[colon - optarg] = 0;
			gw_opts.port = (uint16_t)num(colon + 1, "--listen port", 1, 65535);
			break;
		}
		case 't': gw_opts.threads = (unsigned)num(optarg, "--threads", 1, 64); break;
		case 'C': gw_opts.channel_max = (unsigned)num(optarg, "--channel-max", 1, 65535); break;
		case 'F': gw_opts.frame_max = (unsigned)num(optarg, "--frame-max", 4096, 1u << 24); break;
		case 'H': gw_opts.heartbeat = (unsigned)num(optarg, "--heartbeat", 0, 65535); break;
		case 'U': gw_opts.max_unacked = (unsigned)num(optarg, "--max-unacked", 1, 1u << 24); break;
		case 'B': gw_opts.max_buffer = num(optarg, "--max-buffer", 65536, 1ul << 32); break;
		case 'T': gw_opts.handshake_s = (unsigned)num(optarg, "--handshake-timeout", 1, 3600); break;
		case 'S': gw_opts.send_timeout_s = (unsigned)num(optarg, "--send-timeout", 1, 3600); break;
		case 'I': gw_opts.idle_max_us = (unsigned)num(optarg, "--idle-max-us", 1, 1000000); break;
		case 'Q': gw_opts.queue_capacity = (uint32_t)num(optarg, "--queue-capacity", 2, 1u << 24); break;
		case 'Z': gw_opts.queue_slot_size = (uint32_t)num(optarg, "--queue-slot-size", 8, 1u << 20); break;
		case 'f': gw_opts.stats_file = optarg; break;
		case 'P': exit(hash_password());
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
}

struct thread_arg {
	struct loop loop;
	int lfd;
	pthread_t t;
};

static void *loop_thread(void *p)
{
	struct thread_arg *a = p;

	loop_run(&a->loop, a->lfd);
	return NULL;
}

static void write_stats(void)
{
	static uint64_t last_pub, last_del, last_ns;
	uint64_t now = gw_now_ns(), pub = atomic_load(&gw_stats.v[GC_PUBLISHED]),
		 del = atomic_load(&gw_stats.v[GC_DELIVERED]) + atomic_load(&gw_stats.v[GC_GET]);
	json_t *j = gw_stats_json();
	char tmp[512];

	if (!j)
		return;
	/* Rates over the last interval, so one `hbus stat` shows them. */
	if (last_ns && now > last_ns) {
		double s = (double)(now - last_ns) / 1e9;
		json_object_set_new(j, "publish_per_s", json_integer((json_int_t)((double)(pub - last_pub) / s)));
		json_object_set_new(j, "deliver_per_s", json_integer((json_int_t)((double)(del - last_del) / s)));
	}
	last_pub = pub;
	last_del = del;
	last_ns = now;
	if (gw_opts.stats_file) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", gw_opts.stats_file);
		if (json_dump_file(j, tmp, JSON_COMPACT) == 0)
			rename(tmp, gw_opts.stats_file);
	}
	/* hbusd keeps the latest report for `hbus stat` (gateway_report). */
	struct ctl_req *r = ctl_new(CTL_CALL);
	if (r && (r->req = json_pack("{s:s, s:o}", "op", "gateway_report", "stats", j))) {
		ctl_submit_detached(r);
		return;
	}
	ctl_free(r);
}

int main(int argc, char **argv)
{
	struct hbus_client_opts co = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	struct thread_arg *ta;
	unsigned i;
	int rc;

	parse(argc, argv);
	co.bus = gw_opts.bus;
	co.run_dir = gw_opts.run_dir;
	rc = hbus_connect(&co, &gw_client);
	if (rc) {
		fprintf(stderr, "hbus-amqp: cannot reach hbusd: %s\n", hbus_strerror(rc));
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	ta = calloc(gw_opts.threads, sizeof(*ta));
	if (!ta || ctl_start())
		return 1;
	for (i = 0; i < gw_opts.threads; i++) {
		rc = loop_init(&ta[i].loop, i, &ta[i].lfd);
		if (rc) {
			fprintf(stderr, "hbus-amqp: cannot listen on %s:%u: %s\n", gw_opts.host,
				gw_opts.port, strerror(-rc));
			return 1;
		}
	}
	for (i = 0; i < gw_opts.threads; i++)
		pthread_create(&ta[i].t, NULL, loop_thread, &ta[i]);
	HBUS_INFO("hbus-amqp: listening on %s:%u, %u thread(s), bus '%s'", gw_opts.host,
		  gw_opts.port, gw_opts.threads, gw_opts.bus ? gw_opts.bus : "(default)");
	printf("hbus-amqp: ready on %s:%u\n", gw_opts.host, gw_opts.port);
	fflush(stdout);
	while (!gw_stop) {
		struct timespec ts = { .tv_sec = 1 };
		nanosleep(&ts, NULL);
		write_stats();
	}
	for (i = 0; i < gw_opts.threads; i++)
		pthread_join(ta[i].t, NULL);
	ctl_stop();
	for (i = 0; i < gw_opts.threads; i++)
		loop_fini(&ta[i].loop, ta[i].lfd);
	hbus_close(gw_client);
	free(ta);
	return 0;
}
