#!/usr/bin/env bash
# A NAT test bed in network namespaces, as root:
#
#   testbed.sh up PREFIX      build it (PREFIX: 1 to 6 lowercase letters and digits)
#   testbed.sh down PREFIX    remove it (also what is left of a failed up)
#
# The "internet" (namespace PREFIXnet) routes three public networks, all
# in the IPv4 documentation ranges, and nothing else:
#
#   203.0.113.0/24   PREFIXrelay  203.0.113.10: the rendezvous node
#   198.51.100.0/24  three homes behind endpoint-independent NATs ("full cone"): the host
#                    has the home's public address, 1:1, any port, from anyone (SNAT + DNAT)
#                      PREFIXconea 198.51.100.11  ->  PREFIXc1 10.1.1.10
#                      PREFIXconeb 198.51.100.21  ->  PREFIXc2 10.2.1.10
#                      PREFIXconec 198.51.100.31  ->  PREFIXc3 10.3.1.10
#   192.0.2.0/24     two homes behind address-and-port-dependent NATs ("symmetric"): a random
#                    public port for every new destination, and from outside answers only
#                      PREFIXsyma  192.0.2.11     ->  PREFIXs1 10.4.1.10
#                      PREFIXsymb  192.0.2.21     ->  PREFIXs2 10.5.1.10
#
# A host reaches the internet through its home's router and nothing else;
# the internet
# has no route to 10.0.0.0/8. Nothing here touches an address outside these
# namespaces. libp2p counts the documentation ranges unroutable: run the
# binaries with KITH_TESTBED_DOCNETS_PUBLIC=1.
set -euo pipefail

cmd="${1:-}"
P="${2:-}"
if [[ ! "$P" =~ ^[a-z0-9]{1,6}$ ]]; then
	echo "usage: $0 up|down PREFIX (1 to 6 lowercase letters and digits)" >&2
	exit 2
fi

NS=(net relay conea coneb conec syma symb c1 c2 c3 s1 s2)

nx() { local ns="$1"; shift; ip netns exec "$P$ns" "$@"; }

# link A IFA ADDRA B IFB ADDRB: a veth pair between namespaces A and B
# (an empty address leaves that end without one).
link() {
	local a="$1" ifa="$2" addra="$3" b="$4" ifb="$5" addrb="$6"
	local tmpa="$P-$RANDOM" tmpb="$P-$RANDOM"
	ip link add "$tmpa" type veth peer name "$tmpb"
	ip link set "$tmpa" netns "$P$a"
	ip link set "$tmpb" netns "$P$b"
	nx "$a" ip link set "$tmpa" name "$ifa"
	nx "$b" ip link set "$tmpb" name "$ifb"
	[ -z "$addra" ] || nx "$a" ip addr add "$addra" dev "$ifa"
	[ -z "$addrb" ] || nx "$b" ip addr add "$addrb" dev "$ifb"
	nx "$a" ip link set "$ifa" up
	nx "$b" ip link set "$ifb" up
}

# bridge NAME ADDR: a switch in the internet, with the internet's address on it.
bridge() {
	nx net ip link add "$1" type bridge
	nx net ip addr add "$2" dev "$1"
	nx net ip link set "$1" up
}

# router HOME BRIDGE GATEWAY WANADDR...: a home router on an internet switch.
router() {
	local home="$1" br="$2" gw="$3"
	shift 3
	link net "$home" "" "$home" wan "$1/24"
	nx net ip link set "$home" master "$br"
	shift
	for extra in "$@"; do nx "$home" ip addr add "$extra/24" dev wan; done
	nx "$home" ip route add default via "$gw"
	nx "$home" sysctl -qw net.ipv4.ip_forward=1
}

# host HOME HOST LAN: a computer at home, on LAN x.y.z.0/24 (.1 the router, .10 the host).
host() {
	local home="$1" h="$2" lan="$3"
	link "$home" "$h" "$lan.1/24" "$h" eth0 "$lan.10/24"
	nx "$h" ip route add default via "$lan.1"
}

# cone HOME PUBLIC LANHOST...: 1:1 NAT of each LAN host to its own public address.
cone() {
	local home="$1"
	shift
	local pre="" post=""
	while [ $# -gt 0 ]; do
		pre+="iifname \"wan\" ip daddr $1 dnat to $2"$'\n'
		post+="oifname \"wan\" ip saddr $2 snat to $1"$'\n'
		shift 2
	done
	nx "$home" nft -f - <<-NFT
		table ip nat {
			chain pre { type nat hook prerouting priority dstnat; policy accept;
				$pre
			}
			chain post { type nat hook postrouting priority srcnat; policy accept;
				$post
			}
		}
	NFT
}

# symmetric HOME: a random public port per new flow; from outside, answers only.
symmetric() {
	nx "$1" nft -f - <<-NFT
		table ip nat {
			chain post { type nat hook postrouting priority srcnat; policy accept;
				oifname "wan" masquerade random
			}
		}
		table ip filter {
			chain forward { type filter hook forward priority filter; policy accept;
				iifname "wan" ct state established,related accept
				iifname "wan" drop
			}
		}
	NFT
}

down() {
	for ns in "${NS[@]}"; do
		ip netns del "$P$ns" 2>/dev/null || true
	done
}

up() {
	down
	for ns in "${NS[@]}"; do
		ip netns add "$P$ns"
		nx "$ns" ip link set lo up
	done
	nx net sysctl -qw net.ipv4.ip_forward=1

	link net relay 203.0.113.1/24 relay wan 203.0.113.10/24
	nx relay ip route add default via 203.0.113.1
	bridge cone 198.51.100.1/24
	bridge sym 192.0.2.1/24

	router conea cone 198.51.100.1 198.51.100.11
	host conea c1 10.1.1
	cone conea 198.51.100.11 10.1.1.10

	router coneb cone 198.51.100.1 198.51.100.21
	host coneb c2 10.2.1
	cone coneb 198.51.100.21 10.2.1.10

	router conec cone 198.51.100.1 198.51.100.31
	host conec c3 10.3.1
	cone conec 198.51.100.31 10.3.1.10

	router syma sym 192.0.2.1 192.0.2.11
	host syma s1 10.4.1
	symmetric syma

	router symb sym 192.0.2.1 192.0.2.21
	host symb s2 10.5.1
	symmetric symb
}

case "$cmd" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down PREFIX" >&2; exit 2 ;;
esac
