# tests/lib/netns.sh - network namespaces, veth pairs and cleanup for the
# tests that need real peers (sourced by bash scripts; root only).
#
#   . tests/lib/netns.sh
#   netns_require_root                 # exit 77 (meson: skipped) unless root
#   netns_init                         # names unique to this run, trap cleanup on EXIT
#   netns_create 10.99.0.2/24          # namespace + veth pair, peer end addressed
#   netns_exec CMD...                  # run inside the namespace
#   netns_track_pid PID                # killed at exit (TERM, then KILL)
#   netns_track_dir DIR                # removed at exit
#   netns_dpdk_prefix NAME             # NETNS_PREFIX=a unique --file-prefix; its
#                                      # /var/run/dpdk dir is removed at exit
#
# After netns_create: NETNS_NAME, NETNS_HOST_IF (host end: give it to
# net_af_packet / net_af_xdp), NETNS_PEER_IF (inside the namespace),
# NETNS_PEER_MAC, NETNS_HOST_MAC.  The host end has no address: only the
# process bound to it (the dataplane) answers for its IP.

NETNS_PIDS=()
NETNS_DIRS=()
NETNS_PREFIXES=()
NETNS_NAME=
NETNS_HOST_IF=
NETNS_PEER_IF=

netns_require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "SKIP: needs root (network namespaces, DPDK)" >&2
		exit 77
	fi
	local t
	for t in ip ethtool python3; do
		command -v "$t" >/dev/null 2>&1 || { echo "SKIP: needs $t" >&2; exit 77; }
	done
}

netns_init() {
	# Interface names have at most 15 characters: 3 + 6 hex digits.
	local tag
	tag=$(printf '%06x' $(( ($$ * 2654435761 + RANDOM) % 16777216 )))
	NETNS_NAME="hbus-t$tag"
	NETNS_HOST_IF="hbh$tag"
	NETNS_PEER_IF="hbp$tag"
	trap netns_cleanup EXIT
	trap 'exit 1' INT TERM
}

netns_track_pid() { NETNS_PIDS+=("$1"); }
netns_track_dir() { NETNS_DIRS+=("$1"); }

# Not in $(...): the record of the prefix must survive in this shell.
netns_dpdk_prefix() { # netns_dpdk_prefix NAME: sets NETNS_PREFIX
	NETNS_PREFIX="$1-${NETNS_HOST_IF#hbh}-$$"
	NETNS_PREFIXES+=("$NETNS_PREFIX")
}

netns_exec() { ip netns exec "$NETNS_NAME" "$@"; }

netns_create() { # netns_create PEER_ADDR/PREFIX
	ip netns add "$NETNS_NAME" || return 1
	ip link add "$NETNS_HOST_IF" type veth peer name "$NETNS_PEER_IF" || return 1
	ip link set "$NETNS_PEER_IF" netns "$NETNS_NAME" || return 1
	# No IPv6 chatter (router solicitations, MLD) on the link under test:
	# every frame the dataplane counts is one the test sent.
	sysctl -qw "net.ipv6.conf.$NETNS_HOST_IF.disable_ipv6=1" 2>/dev/null
	netns_exec sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null
	netns_exec sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null
	netns_exec ip link set lo up
	netns_exec ip addr add "$1" dev "$NETNS_PEER_IF" || return 1
	# A veth leaves UDP checksums to an offload that never happens
	# (CHECKSUM_PARTIAL): a packet socket on the other end would see
	# unfinished sums.  Real NICs finish them; make the veth do it too.
	netns_exec ethtool -K "$NETNS_PEER_IF" tx off >/dev/null 2>&1
	netns_exec ip link set "$NETNS_PEER_IF" up || return 1
	ip link set "$NETNS_HOST_IF" up || return 1
	# Multicast from the namespace leaves through the veth.
	netns_exec ip route add 224.0.0.0/4 dev "$NETNS_PEER_IF" 2>/dev/null
	NETNS_PEER_MAC=$(netns_exec cat "/sys/class/net/$NETNS_PEER_IF/address")
	NETNS_HOST_MAC=$(cat "/sys/class/net/$NETNS_HOST_IF/address")
}

netns_cleanup() {
	local p i
	for p in "${NETNS_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	# Give graceful stops a moment, then insist.
	for i in $(seq 30); do
		local alive=0
		for p in "${NETNS_PIDS[@]}"; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for p in "${NETNS_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	if [ -n "$NETNS_NAME" ]; then
		# Processes left inside the namespace would keep it alive.
		for p in $(ip netns pids "$NETNS_NAME" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null
		done
		ip netns del "$NETNS_NAME" 2>/dev/null
		ip link del "$NETNS_HOST_IF" 2>/dev/null
	fi
	for p in "${NETNS_PREFIXES[@]}"; do
		rm -rf "/var/run/dpdk/$p"
	done
	for p in "${NETNS_DIRS[@]}"; do
		rm -rf "$p"
	done
	return 0
}

# wait_for SECONDS CMD...: poll CMD with a backoff (two cores: never spin).
wait_for() {
	local deadline=$((SECONDS + $1)) d=0.01
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep $d
		d=$(awk -v d=$d 'BEGIN { d *= 2; if (d > 0.2) d = 0.2; print d }')
	done
}
