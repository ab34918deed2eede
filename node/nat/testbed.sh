#!/usr/bin/env bash
# A NAT test bed in network namespaces, as root:
#
#   testbed.sh up PREFIX      build it (PREFIX: at most 6 letters and digits)
#   testbed.sh down PREFIX    remove it (also what is left of a failed up)
#
# The "internet" (namespace PREFIXnet) routes three public networks, all
# from the documentation ranges, and nothing else:
#
#   PREFIXrelay  203.0.113.10       the rendezvous node, public
#   PREFIXcone   198.51.100.11/.12  a home router with an endpoint-independent NAT ("full cone"):
#                                    each host behind it has a public address of its own, 1:1,
#                                    any port, from anyone (SNAT + DNAT)
#     PREFIXc1   10.1.1.10          behind it (as 198.51.100.11)
#     PREFIXc2   10.1.2.10          behind it (as 198.51.100.12)
#   PREFIXsym    192.0.2.10          a home router with an address-and-port-dependent NAT
#                                    ("symmetric"): a random public port for every new
#                                    destination, and only answers come back
#     PREFIXs1   10.2.1.10          behind it
#     PREFIXs2   10.2.2.10          behind it
#
# Hosts behind a router reach the internet through it and nothing else;
# the internet has no route to 10.0.0.0/8. Nothing here touches an address
# outside these namespaces.
set -euo pipefail

cmd="${1:-}"
P="${2:-}"
if [[ ! "$P" =~ ^[a-z0-9]{1,6}$ ]]; then
	echo "usage: $0 up|down PREFIX (1 to 6 lowercase letters and digits)" >&2
	exit 2
fi

NS=(net relay cone sym c1 c2 s1 s2)

nx() { local ns="$1"; shift; ip netns exec "$P$ns" "$@"; }

# link A IFA ADDRA B IFB ADDRB: a veth pair between namespaces A and B.
link() {
	local a="$1" ifa="$2" addra="$3" b="$4" ifb="$5" addrb="$6"
	local tmpa="$P-$RANDOM" tmpb="$P-$RANDOM"
	ip link add "$tmpa" type veth peer name "$tmpb"
	ip link set "$tmpa" netns "$P$a"
	ip link set "$tmpb" netns "$P$b"
	nx "$a" ip link set "$tmpa" name "$ifa"
	nx "$b" ip link set "$tmpb" name "$ifb"
	nx "$a" ip addr add "$addra" dev "$ifa"
	nx "$b" ip addr add "$addrb" dev "$ifb"
	nx "$a" ip link set "$ifa" up
	nx "$b" ip link set "$ifb" up
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
	for ns in net cone sym; do
		nx "$ns" sysctl -qw net.ipv4.ip_forward=1
	done

	# The internet and what is on it.
	link net relay 203.0.113.1/24 relay wan 203.0.113.10/24
	link net cone 198.51.100.1/24 cone wan 198.51.100.11/24
	nx cone ip addr add 198.51.100.12/24 dev wan
	link net sym 192.0.2.1/24 sym wan 192.0.2.10/24
	nx relay ip route add default via 203.0.113.1
	nx cone ip route add default via 198.51.100.1
	nx sym ip route add default via 192.0.2.1

	# Homes.
	link cone c1 10.1.1.1/24 c1 eth0 10.1.1.10/24
	link cone c2 10.1.2.1/24 c2 eth0 10.1.2.10/24
	link sym s1 10.2.1.1/24 s1 eth0 10.2.1.10/24
	link sym s2 10.2.2.1/24 s2 eth0 10.2.2.10/24
	nx c1 ip route add default via 10.1.1.1
	nx c2 ip route add default via 10.1.2.1
	nx s1 ip route add default via 10.2.1.1
	nx s2 ip route add default via 10.2.2.1

	# Full cone: one public address per host, 1:1 both ways.
	nx cone nft -f - <<-NFT
		table ip nat {
			chain pre { type nat hook prerouting priority dstnat; policy accept;
				iifname "wan" ip daddr 198.51.100.11 dnat to 10.1.1.10
				iifname "wan" ip daddr 198.51.100.12 dnat to 10.1.2.10
			}
			chain post { type nat hook postrouting priority srcnat; policy accept;
				oifname "wan" ip saddr 10.1.1.10 snat to 198.51.100.11
				oifname "wan" ip saddr 10.1.2.10 snat to 198.51.100.12
			}
		}
	NFT
	# Symmetric: a random port per new flow; from outside, answers only.
	nx sym nft -f - <<-NFT
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

case "$cmd" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down PREFIX" >&2; exit 2 ;;
esac
