# tests/amqp/rabbitmq.sh - a private RabbitMQ node for tests and benchmarks.
#
# rmq_start DIR [PLUGINS]: Debian's rabbitmq-server as root without systemd,
#   touching nothing shared: its own node name, AMQP / distribution / epmd
#   ports, mnesia and log directories and HOME (the Erlang cookie).  Sets
#   RMQ_PORT and RMQ_CTL (rabbitmqctl for this node).  rmq_stop shuts it down.
RMQ_SBIN=/usr/lib/rabbitmq/bin

rmq_free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rmq_start() {
	local dir=$1 plugins=${2:-}
	mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
	export HOME="$dir/home"
	export RABBITMQ_NODENAME="hbust$$@localhost"
	RMQ_PORT=$(rmq_free_port)
	export RABBITMQ_NODE_PORT=$RMQ_PORT
	export RABBITMQ_DIST_PORT=$(rmq_free_port)
	export ERL_EPMD_PORT=$(rmq_free_port)
	export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
	export RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins-expand"
	export RABBITMQ_PID_FILE="$dir/rabbit.pid"
	export RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
	export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
	: >"$RABBITMQ_CONF_ENV_FILE"
	echo "listeners.tcp.default = 127.0.0.1:$RMQ_PORT" >"$dir/rabbitmq.conf"
	echo "[${plugins}]." >"$RABBITMQ_ENABLED_PLUGINS_FILE"
	RMQ_CTL="$RMQ_SBIN/rabbitmqctl -n $RABBITMQ_NODENAME"
	"$RMQ_SBIN/rabbitmq-server" >"$dir/server.out" 2>&1 &
	RMQ_SERVER_PID=$!
	local i
	for i in $(seq 1 120); do
		grep -q "Starting broker... completed" "$dir/server.out" 2>/dev/null && return 0
		kill -0 "$RMQ_SERVER_PID" 2>/dev/null || break
		sleep 0.5
	done
	echo "rabbitmq did not start:"; tail -20 "$dir/server.out"
	return 1
}

rmq_stop() {
	[ -n "${RMQ_SERVER_PID:-}" ] || return 0
	$RMQ_CTL shutdown >/dev/null 2>&1 || kill "$RMQ_SERVER_PID" 2>/dev/null
	wait "$RMQ_SERVER_PID" 2>/dev/null
	# The node started its own epmd ("epmd -daemon", its port only in its
	# environment): find it by ERL_EPMD_PORT and stop it too.
	for p in $(pgrep -x epmd); do
		grep -qzx "ERL_EPMD_PORT=$ERL_EPMD_PORT" /proc/$p/environ 2>/dev/null &&
			kill "$p" 2>/dev/null
	done
	RMQ_SERVER_PID=
}
