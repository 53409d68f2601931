# tests/amqp/lib.sh - a private hbusd + hbus-amqp for the gateway tests.
#
# amqp_setup NAME: temp dirs, a permissions file (amqp_perms) with the AMQP
#   user guest/guest (and alice/secret, write and read on alice.* only), hbusd,
#   then the gateway
#   on a free loopback port.  Sets AMQP_PORT, AMQP_BUS, AMQP_DIR, HBUS (the
#   hbus command with --bus/--run-dir), GW_PID.  amqp_cleanup undoes it all
#   (registered on EXIT by amqp_setup).
# gw_start / gw_kill9: (re)start the gateway, kill it hard.
set -u

B=${HBUS_BUILD_DIR:?HBUS_BUILD_DIR is set by meson test}
PY=/usr/bin/python3

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

gw_start() {
	"$B/amqp/hbus-amqp" --bus "$AMQP_BUS" --run-dir "$AMQP_DIR/run" \
		--listen "127.0.0.1:$AMQP_PORT" --heartbeat 10 ${AMQP_GW_ARGS:-} "$@" >>"$AMQP_DIR/gw.log" 2>&1 &
	GW_PID=$!
	for _ in $(seq 1 100); do
		if $PY -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$AMQP_PORT)))" 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "gateway did not start:"; cat "$AMQP_DIR/gw.log"; return 1
}

gw_kill9() {
	kill -9 "$GW_PID" 2>/dev/null
	wait "$GW_PID" 2>/dev/null
	GW_PID=
}

amqp_cleanup() {
	[ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
	if [ -f "$AMQP_DIR/run/$AMQP_BUS.pid" ]; then
		kill "$(cat "$AMQP_DIR/run/$AMQP_BUS.pid")" 2>/dev/null
		sleep 0.2
	fi
	rm -rf "$AMQP_DIR"
}

# amqp_perms FILE: hbusd's permissions file: root may act for AMQP users
# (amqp_gateway), guest/guest may do anything, alice/secret only alice.*.
amqp_perms() {
	local g a
	g=$(echo guest | "$B/amqp/hbus-amqp" --hash-password)
	a=$(echo secret | "$B/amqp/hbus-amqp" --hash-password)
	cat >"$1" <<-EOF
	{"users": {"root": {"configure": ".*", "write": ".*", "read": ".*", "amqp_gateway": true}},
	 "amqp_users": {
	   "guest": {"password_hash": "$g", "configure": ".*", "write": ".*", "read": ".*"},
	   "alice": {"password_hash": "$a", "configure": "^alice\\\\..*|^amq\\\\.gen.*",
	             "write": "^alice\\\\..*|^amq\\\\.gen.*", "read": "^alice\\\\..*|^amq\\\\.gen.*",
	             "max_connections": 2}}}
	EOF
}

amqp_setup() {
	AMQP_BUS="t16$1$$"
	AMQP_DIR=$(mktemp -d /tmp/hbus-amqp-test.XXXXXX)
	mkdir -p "$AMQP_DIR/run" "$AMQP_DIR/shm"
	chmod 700 "$AMQP_DIR/run"
	trap amqp_cleanup EXIT
	amqp_perms "$AMQP_DIR/perms.json"
	"$B/control/hbusd" --bus "$AMQP_BUS" --run-dir "$AMQP_DIR/run" --shm-dir "$AMQP_DIR/shm" \
		--permissions "$AMQP_DIR/perms.json" || return 1
	HBUS="$B/control/hbus --bus $AMQP_BUS --run-dir $AMQP_DIR/run"
	AMQP_PORT=$(free_port)
	gw_start
}
