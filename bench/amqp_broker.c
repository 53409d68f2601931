/*
 * amqp_broker.c - start, find and stop the AMQP brokers of hbus-bench
 * (amqp_broker.h), and the rabbitmq-c connection the AMQP modes share.
 */
#ifdef HBUS_BENCH_AMQP
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amqp_broker.h"

#define RMQ_SBIN "/usr/lib/rabbitmq/bin"

struct broker {
	int started, failed;
	int port;
	pid_t pid;          /* gateway or rabbitmq-server */
	char dir[64];       /* run dir, logs, RabbitMQ's state */
	char shm[64];       /* hbus: the rings (tmpfs) */
	char node[64];
};

static struct broker brokers[AMQP_BROKER_N];
#define gw_broker (brokers[AMQP_BROKER_HBUS])
#define rmq_broker (brokers[AMQP_BROKER_RABBITMQ])

const char *amqp_broker_name(enum amqp_broker_kind k)
{
	return k == AMQP_BROKER_HBUS ? "amqp" : "rabbitmq";
}

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int port_open(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int wait_port(int port, pid_t pid, int seconds)
{
	for (int i = 0; i < seconds * 20; i++) {
		if (port_open(port))
			return 0;
		if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
			return -ECHILD;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

/* A program next to hbus-bench in the build tree (../DIR/NAME), else NAME. */
static void sibling(const char *dir, const char *name, char *out, size_t cap)
{
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	snprintf(out, cap, "%s", name);
	if (n <= 0)
		return;
	self[n] = 0;
	slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = 0;
	snprintf(out, cap, "%s/../%s/%s", self, dir, name);
	if (access(out, X_OK) != 0)
		snprintf(out, cap, "%s", name);
}

static void gw_stop(void)
{
	char cmd[512];

	if (gw_broker.pid > 0) {
		kill(gw_broker.pid, SIGTERM);
		waitpid(gw_broker.pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "kill $(cat %s/run/hbusbench.pid 2>/dev/null) 2>/dev/null; "
		 "sleep 0.2; rm -rf %s %s", gw_broker.dir, gw_broker.dir, gw_broker.shm);
	if (gw_broker.dir[0] && system(cmd) != 0)
		fprintf(stderr, "hbus-bench: could not remove %s\n", gw_broker.dir);
}

static int gw_start(void)
{
	char hbusd[PATH_MAX], gw[PATH_MAX], cmd[3 * PATH_MAX], hash[128] = "", port_s[32];
	const char *env = getenv("HBUS_BENCH_AMQP_PORT");
	FILE *f;

	if (env) {
		gw_broker.port = atoi(env);
		return 0;
	}
	sibling("control", "hbusd", hbusd, sizeof(hbusd));
	sibling("amqp", "hbus-amqp", gw, sizeof(gw));
	snprintf(gw_broker.dir, sizeof(gw_broker.dir), "/tmp/hbus-bench-amqp-XXXXXX");
	if (!mkdtemp(gw_broker.dir))
		return -errno;
	/* Rings on tmpfs, as hbusd's default: a ring file on a disk would
	 * be written back while the benchmark runs. */
	snprintf(gw_broker.shm, sizeof(gw_broker.shm), "/dev/shm/hbus-bench-amqp-XXXXXX");
	if (!mkdtemp(gw_broker.shm))
		gw_broker.shm[0] = 0;
	atexit(gw_stop);
	if (!gw_broker.shm[0])
		return -errno;
	snprintf(cmd, sizeof(cmd), "echo guest | '%s' --hash-password", gw);
	f = popen(cmd, "r");
	if (!f || !fgets(hash, sizeof(hash), f)) {
		if (f)
			pclose(f);
		return -ENOENT;
	}
	pclose(f);
	hash[strcspn(hash, "\n")] = 0;
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/run && chmod 700 %s/run && "
		 "printf '{\"users\":{\"root\":{\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\","
		 "\"amqp_gateway\":true}},\"amqp_users\":{\"guest\":{\"password_hash\":\"%s\","
		 "\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}}}' >%s/perms.json && "
		 "HBUS_LOG=quiet '%s' --bus hbusbench --run-dir %s/run --shm-dir %s "
		 "--permissions %s/perms.json", gw_broker.dir, gw_broker.dir, hash,
		 gw_broker.dir, hbusd, gw_broker.dir, gw_broker.shm, gw_broker.dir);
	if (system(cmd) != 0)
		return -ENOENT;
	gw_broker.port = free_port();
	snprintf(port_s, sizeof(port_s), "127.0.0.1:%d", gw_broker.port);
	snprintf(cmd, sizeof(cmd), "%s/run", gw_broker.dir);
	gw_broker.pid = fork();
	if (gw_broker.pid == 0) {
		dup2(STDERR_FILENO, STDOUT_FILENO); /* stdout is the benchmark's (--json) */
		setenv("HBUS_LOG", "quiet", 1);
		execl(gw, gw, "--bus", "hbusbench", "--run-dir", cmd, "--listen", port_s,
		      "--idle-max-us", "100", (char *)NULL);
		_exit(127);
	}
	return wait_port(gw_broker.port, gw_broker.pid, 10);
}

static void rmq_env(void)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s/home", rmq_broker.dir);
	setenv("HOME", buf, 1);
	setenv("RABBITMQ_NODENAME", rmq_broker.node, 1);
}

static void rmq_stop(void)
{
	char cmd[512];

	if (rmq_broker.pid > 0) {
		rmq_env();
		snprintf(cmd, sizeof(cmd), RMQ_SBIN "/rabbitmqctl -n %s shutdown >/dev/null 2>&1",
			 rmq_broker.node);
		if (system(cmd) != 0)
			kill(rmq_broker.pid, SIGTERM);
		waitpid(rmq_broker.pid, NULL, 0);
		/* the node's own epmd: "epmd -daemon", its port only in its environment */
		snprintf(cmd, sizeof(cmd), "for p in $(pgrep -x epmd); do "
			 "grep -qzx ERL_EPMD_PORT=%s /proc/$p/environ 2>/dev/null && kill $p; done",
			 getenv("ERL_EPMD_PORT") ?: "0");
		(void)!system(cmd); /* none may be left */
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", rmq_broker.dir);
	if (rmq_broker.dir[0] && system(cmd) != 0)
		fprintf(stderr, "hbus-bench: could not remove %s\n", rmq_broker.dir);
}

/* Debian's rabbitmq-server as root without systemd, sharing nothing. */
static int rmq_start(void)
{
	const char *env = getenv("HBUS_BENCH_RABBITMQ_PORT");
	char buf[512], conf[256];
	FILE *f;

	if (env) {
		rmq_broker.port = atoi(env);
		return 0;
	}
	if (access(RMQ_SBIN "/rabbitmq-server", X_OK) != 0)
		return -ENOPKG;
	snprintf(rmq_broker.dir, sizeof(rmq_broker.dir), "/tmp/hbus-bench-rmq-XXXXXX");
	if (!mkdtemp(rmq_broker.dir))
		return -errno;
	atexit(rmq_stop);
	snprintf(rmq_broker.node, sizeof(rmq_broker.node), "hbusbench%d@localhost", (int)getpid());
	rmq_broker.port = free_port();
	snprintf(buf, sizeof(buf), "mkdir -p %s/home %s/mnesia %s/log && echo '[].' >%s/plugins",
		 rmq_broker.dir, rmq_broker.dir, rmq_broker.dir, rmq_broker.dir);
	if (system(buf) != 0)
		return -EIO;
	snprintf(conf, sizeof(conf), "%s/rabbitmq.conf", rmq_broker.dir);
	f = fopen(conf, "w");
	if (!f)
		return -errno;
	fprintf(f, "listeners.tcp.default = 127.0.0.1:%d\n", rmq_broker.port);
	fclose(f);
	rmq_env();
#define SETF(k, fmt, ...) (snprintf(buf, sizeof(buf), fmt, __VA_ARGS__), setenv(k, buf, 1))
	SETF("RABBITMQ_NODE_PORT", "%d", rmq_broker.port);
	SETF("RABBITMQ_DIST_PORT", "%d", free_port());
	SETF("ERL_EPMD_PORT", "%d", free_port());
	SETF("RABBITMQ_MNESIA_BASE", "%s/mnesia", rmq_broker.dir);
	SETF("RABBITMQ_LOG_BASE", "%s/log", rmq_broker.dir);
	SETF("RABBITMQ_ENABLED_PLUGINS_FILE", "%s/plugins", rmq_broker.dir);
	SETF("RABBITMQ_PLUGINS_EXPAND_DIR", "%s/expand", rmq_broker.dir);
	SETF("RABBITMQ_PID_FILE", "%s/rabbit.pid", rmq_broker.dir);
	SETF("RABBITMQ_CONFIG_FILE", "%s/rabbitmq", rmq_broker.dir);
	SETF("RABBITMQ_ADVANCED_CONFIG_FILE", "%s/advanced.config", rmq_broker.dir);
	SETF("RABBITMQ_CONF_ENV_FILE", "%s/env.conf", rmq_broker.dir);
#undef SETF
	rmq_broker.pid = fork();
	if (rmq_broker.pid == 0) {
		int fd;
		snprintf(buf, sizeof(buf), "%s/server.out", rmq_broker.dir);
		fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(RMQ_SBIN "/rabbitmq-server", "rabbitmq-server", (char *)NULL);
		_exit(127);
	}
	fprintf(stderr, "hbus-bench: starting a private RabbitMQ (%s, port %d)\n", rmq_broker.node,
		rmq_broker.port);
	return wait_port(rmq_broker.port, rmq_broker.pid, 60);
}

int amqp_broker_port(enum amqp_broker_kind k, int *port)
{
	struct broker *b = &brokers[k];

	if (!b->started) {
		cpu_set_t saved, all;
		/* The caller may be pinned by now (compare runs transports in
		 * turn): the broker it starts must not inherit that cpu. */
		sched_getaffinity(0, sizeof(saved), &saved);
		CPU_ZERO(&all);
		for (int i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, &all);
		sched_setaffinity(0, sizeof(all), &all);
		b->started = 1;
		b->failed = k == AMQP_BROKER_HBUS ? gw_start() : rmq_start();
		sched_setaffinity(0, sizeof(saved), &saved);
		if (b->failed == -ENOPKG)
			fprintf(stderr, "hbus-bench: rabbitmq-server is not installed: the rabbitmq "
				"row is skipped (apt-get install rabbitmq-server)\n");
		else if (b->failed)
			fprintf(stderr, "hbus-bench: broker %s did not start: %s\n",
				amqp_broker_name(k), strerror(-b->failed));
	}
	*port = b->port;
	return b->failed;
}

amqp_connection_state_t amqp_bench_connect(int port)
{
	amqp_connection_state_t conn = amqp_new_connection();
	amqp_socket_t *s = conn ? amqp_tcp_socket_new(conn) : NULL;

	if (!s || amqp_socket_open(s, "127.0.0.1", port) ||
	    amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
		    AMQP_RESPONSE_NORMAL ||
	    (amqp_channel_open(conn, 1), amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)) {
		if (conn)
			amqp_destroy_connection(conn);
		return NULL;
	}
	return conn;
}

void amqp_bench_close(amqp_connection_state_t c)
{
	if (!c)
		return;
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}
#endif
