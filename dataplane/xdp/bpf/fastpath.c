// SPDX-License-Identifier: Apache-2.0
/*
 * Portcullis XDP fast path: forwards the plain RTP/RTCP packets of promoted (locked) legs
 * in the driver and passes everything else up to the io_uring workers unchanged.
 *
 * A packet is forwarded when, and only when:
 *   - it is IPv4 (no options, not a fragment) or IPv6 (UDP as the first next header),
 *   - its UDP destination port and family name a promoted leg (map `legs`), and its
 *     destination address is the leg's local address,
 *   - its source address and port are the leg's locked peer,
 *   - its payload is RTP/RTCP version 2 (STUN, DTLS and anything else go up), and its
 *     payload type is not the leg's user payload type (telephone-event: DTMF detection),
 *   - the next hop's MAC toward the new destination is known (map `peer_macs`, see
 *     below), and the egress interface is the ingress one (XDP_TX) or one of the devmap
 *     `tx_ports` (XDP_REDIRECT).
 * The rewrite sets source = our address/port on the other leg, destination = that leg's
 * locked peer, TTL/hop limit = 64 (as a packet the worker sent), the MACs (ours on the
 * egress interface, the learned next hop), and updates the IPv4 header and UDP checksums
 * incrementally (RFC 1624 eqn. 3). An IPv4 UDP checksum of 0 (none) stays 0; a computed
 * 0 is sent as 0xffff (RFC 768).
 *
 * MACs: every packet of a promoted leg that passes the peer check teaches `peer_macs` the
 * source MAC it arrived with, keyed by the peer's address: the next hop toward that peer
 * (the peer itself on the segment, else the router it came through). Until a packet from
 * the destination peer has been seen on the egress interface, packets go up to the worker,
 * whose send resolves the neighbour the usual way. The kernel's FIB helper is not used:
 * it requires IP forwarding on the interface, which an SBC keeps off.
 *
 * Counters: per CPU and per leg (packets, payload bytes, last-seen time, RFC 3550 A.1
 * sequence and A.8 jitter state), and per CPU for the whole program (`stats`, indexed
 * by `enum pc_stat`). The user side merges CPUs.
 *
 * AF_XDP: a packet that goes up (any pass-up above, or a port not promoted) whose
 * destination address and port are in `xsk_ports` is redirected to the AF_XDP socket of the
 * worker that owns the port (map `xsks`), when it arrived on that socket's interface and
 * queue; otherwise (no such port, another queue, no socket) it goes to the kernel's stack
 * as before (XDP_PASS), where the worker's UDP socket takes it.
 *
 * The struct layouts here are mirrored by `src/maps.rs`; a change is made in both.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PC_FAMILY_V4 4
#define PC_FAMILY_V6 6

/* The leg's port carries RTP: track RFC 3550 sequence and jitter (RTCP ports only count). */
#define PC_LEG_RTP 1

/* TTL / hop limit of a forwarded packet: what the worker's own send carries (Linux default). */
#define PC_TTL 64

/* RFC 3550 A.1 constants (MIN_SEQUENTIAL = 0, as in portcullis-rtp's RtpStats). */
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100
#define RTP_SEQ_MOD (1U << 16)

#define PC_MAX_LEGS 65536
#define PC_MAX_TX_PORTS 64

struct pc_leg_key {
	__u16 port;   /* local UDP port, host order */
	__u8 family;  /* PC_FAMILY_V4 / PC_FAMILY_V6 */
	__u8 pad;
};

struct pc_leg {
	__u32 local_addr[4];   /* our address the leg's packets arrive on (v4: word 0) */
	__u32 peer_addr[4];    /* the locked peer: only its packets are forwarded */
	__u32 out_src_addr[4]; /* our address on the other leg: the new source */
	__u32 out_dst_addr[4]; /* the other leg's locked peer: the new destination */
	__be16 peer_port;
	__be16 out_src_port;
	__be16 out_dst_port;
	__u8 user_pt;          /* RTP payload type always passed up (0..127); >= 128: none */
	__u8 flags;            /* PC_LEG_* */
	__u32 clock_rate;      /* RTP clock rate (Hz) for the A.8 jitter */
	__u32 out_ifindex;     /* interface that holds out_src_addr: where the packet leaves */
	__u8 out_src_mac[6];   /* MAC of out_ifindex */
	__u8 pad[2];
};
_Static_assert(sizeof(struct pc_leg) == 88, "pc_leg layout is shared with src/maps.rs");

/* A peer's address; the key of peer_macs. */
struct pc_peer_key {
	__u32 addr[4];
	__u8 family;
	__u8 pad[3];
};

/* The next hop toward a peer, learned from the peer's own packets. */
struct pc_peer_mac {
	__u8 mac[6];
	__u8 pad[2];
	__u32 ifindex;         /* interface it was learned on */
};

#define PC_MAX_PEERS 65536

struct pc_counters {
	__u64 packets;
	__u64 bytes;          /* UDP payload bytes */
	__u64 last_seen_ns;   /* bpf_ktime_get_ns (CLOCK_MONOTONIC) of the last packet */
	__u64 rtp_received;   /* A.1 received */
	__u64 jitter_q4;      /* A.8 jitter, scaled by 16 */
	__u32 base_seq;
	__u32 cycles;         /* shifted count of sequence cycles */
	__u32 bad_seq;
	__u32 transit;        /* A.8 relative transit of the previous packet */
	__u16 max_seq;
	__u8 started;
	__u8 pad[5];
};
_Static_assert(sizeof(struct pc_counters) == 64, "pc_counters layout is shared with src/maps.rs");

enum pc_stat {
	PC_STAT_TX = 0,          /* forwarded out of the ingress interface (XDP_TX) */
	PC_STAT_REDIRECT,        /* forwarded to another interface (XDP_REDIRECT) */
	PC_STAT_PEER_MISMATCH,   /* leg known, source is not its locked peer: passed up */
	PC_STAT_NOT_RTP,         /* leg known, payload not RTP/RTCP v2 (STUN, ...): passed up */
	PC_STAT_USER_PT,         /* leg known, user payload type (DTMF): passed up */
	PC_STAT_NO_PEER_MAC,     /* next hop toward the destination not learned yet: passed up */
	PC_STAT_NO_TX_PORT,      /* egress interface not in tx_ports: passed up */
	PC_STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PC_MAX_LEGS);
	__type(key, struct pc_leg_key);
	__type(value, struct pc_leg);
} legs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PC_MAX_LEGS);
	__type(key, struct pc_leg_key);
	__type(value, struct pc_counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PC_MAX_PEERS);
	__type(key, struct pc_peer_key);
	__type(value, struct pc_peer_mac);
} peer_macs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PC_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Egress interfaces for XDP_REDIRECT, keyed by ifindex. No BTF types: the loader sizes the
 * value (ifindex, or ifindex + program) to what the kernel supports. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, PC_MAX_TX_PORTS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} tx_ports SEC(".maps");

/* An address and port of a worker's socket: the key of xsk_ports. */
struct pc_xsk_key {
	__u32 addr[4];        /* v4: word 0 */
	__u16 port;           /* host order */
	__u8 family;
	__u8 pad;
};
_Static_assert(sizeof(struct pc_xsk_key) == 20, "pc_xsk_key layout is shared with src/maps.rs");

/* Where a port's packets go up: the AF_XDP socket at `index` in xsks, bound to queue
 * `queue` of interface `ifindex`. */
struct pc_xsk_port {
	__u32 ifindex;
	__u32 queue;
	__u32 index;
};
_Static_assert(sizeof(struct pc_xsk_port) == 12, "pc_xsk_port layout is shared with src/maps.rs");

#define PC_MAX_XSK_PORTS 262144
#define PC_MAX_XSKS 256

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PC_MAX_XSK_PORTS);
	__type(key, struct pc_xsk_key);
	__type(value, struct pc_xsk_port);
} xsk_ports SEC(".maps");

/* The workers' AF_XDP sockets. No BTF types: the kernel wants a 4-byte descriptor value. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, PC_MAX_XSKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} xsks SEC(".maps");

/* Up to the worker owning (daddr, dport): its AF_XDP socket when the packet arrived on that
 * socket's interface and queue, the kernel's stack (its UDP socket) otherwise. */
static __always_inline int up(struct xdp_md *ctx, const __u32 *daddr, __u16 dport, __u8 family)
{
	struct pc_xsk_key k = {};
	struct pc_xsk_port *v;

	k.addr[0] = daddr[0];
	if (family == PC_FAMILY_V6) {
		k.addr[1] = daddr[1];
		k.addr[2] = daddr[2];
		k.addr[3] = daddr[3];
	}
	k.port = dport;
	k.family = family;
	v = bpf_map_lookup_elem(&xsk_ports, &k);
	if (!v || v->ifindex != ctx->ingress_ifindex || v->queue != ctx->rx_queue_index)
		return XDP_PASS;
	return bpf_redirect_map(&xsks, v->index, XDP_PASS);
}

static __always_inline int count(enum pc_stat s, int action)
{
	__u32 key = s;
	__u64 *v = bpf_map_lookup_elem(&stats, &key);

	if (v)
		*v += 1;
	return action;
}

/* RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), accumulated over 16-bit words as they lie in
 * the packet (the one's complement sum does not depend on byte order, RFC 1071). */
static __always_inline __u32 csum_word(__u32 acc, __u16 old, __u16 new)
{
	return acc + (__u16)~old + new;
}

static __always_inline __u32 csum_word32(__u32 acc, __u32 old, __u32 new)
{
	acc = csum_word(acc, (__u16)old, (__u16)new);
	return csum_word(acc, (__u16)(old >> 16), (__u16)(new >> 16));
}

static __always_inline __u16 csum_finish(__u32 acc)
{
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return (__u16)~acc;
}

/* RFC 3550 A.1 update_seq and A.8 jitter; the same steps as portcullis-rtp's RtpStats. */
static __always_inline void rtp_init_seq(struct pc_counters *c, __u16 seq)
{
	c->base_seq = seq;
	c->max_seq = seq;
	c->bad_seq = RTP_SEQ_MOD + 1;
	c->cycles = 0;
	c->rtp_received = 0;
}

static __always_inline void rtp_update(struct pc_counters *c, __u16 seq, __u32 ts, __u32 arrival)
{
	__u32 transit = arrival - ts;
	__u16 udelta;
	__s32 d;
	__u64 ad;

	if (!c->started) {
		c->started = 1;
		rtp_init_seq(c, seq);
		c->rtp_received = 1;
		c->transit = transit;
		return;
	}
	udelta = seq - c->max_seq;
	if (udelta < MAX_DROPOUT) {
		if (seq < c->max_seq)
			c->cycles += RTP_SEQ_MOD;
		c->max_seq = seq;
	} else if (udelta <= (__u16)(RTP_SEQ_MOD - MAX_MISORDER)) {
		if ((__u32)seq == c->bad_seq) {
			rtp_init_seq(c, seq);
		} else {
			c->bad_seq = ((__u32)seq + 1) & (RTP_SEQ_MOD - 1);
			return;
		}
	}
	c->rtp_received += 1;
	d = (__s32)(transit - c->transit);
	c->transit = transit;
	ad = d < 0 ? (__u64)(-(__s64)d) : (__u64)d;
	c->jitter_q4 = c->jitter_q4 + ad - ((c->jitter_q4 + 8) >> 4);
}

/* What the leg check decided about the UDP payload. */
struct pc_payload {
	__u16 seq;
	__u32 ts;
	__u8 is_rtp;  /* RTP (not RTCP) */
};

/* Payload check common to both families: RTP/RTCP v2 and not the user payload type.
 * Returns -1 to forward, or the stat to count before passing up. */
static __always_inline int check_payload(const struct pc_leg *leg, __u8 *p, void *end,
					 struct pc_payload *out)
{
	__u8 pt;

	/* RTCP needs 8 bytes, RTP 12; anything shorter goes up (the worker counts it). */
	if ((void *)(p + 8) > end || (p[0] >> 6) != 2)
		return PC_STAT_NOT_RTP;
	pt = p[1] & 0x7f;
	/* RFC 5761 §4: packet types 192..223 (PT 64..95 with the marker bit) are RTCP. */
	if (pt >= 64 && pt <= 95) {
		out->is_rtp = 0;
		return -1;
	}
	if ((void *)(p + 12) > end)
		return PC_STAT_NOT_RTP;
	if (pt == leg->user_pt)
		return PC_STAT_USER_PT;
	out->is_rtp = 1;
	out->seq = ((__u16)p[2] << 8) | p[3];
	out->ts = ((__u32)p[4] << 24) | ((__u32)p[5] << 16) | ((__u32)p[6] << 8) | p[7];
	return -1;
}

static __always_inline void account(const struct pc_leg_key *key, const struct pc_leg *leg,
				    const struct pc_payload *pl, __u16 payload_len)
{
	struct pc_counters *c = bpf_map_lookup_elem(&counters, key);
	__u64 now = bpf_ktime_get_ns();

	if (!c)
		return;
	c->packets += 1;
	c->bytes += payload_len;
	c->last_seen_ns = now;
	if (pl->is_rtp && (leg->flags & PC_LEG_RTP)) {
		/* The worker's arrival clock: µs × rate / 10^6, truncated to 32 bits. */
		__u32 arrival = (__u32)((now / 1000) * leg->clock_rate / 1000000);

		rtp_update(c, pl->seq, pl->ts, arrival);
	}
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

/* Learns the MAC the locked peer's packet came with (written only when it changed, so
 * the line stays shared across CPUs). */
static __always_inline void learn(struct xdp_md *ctx, const struct ethhdr *eth,
				  const __u32 *peer, __u8 family)
{
	struct pc_peer_key k = {};
	struct pc_peer_mac *m, v = {};

	k.addr[0] = peer[0];
	k.addr[1] = peer[1];
	k.addr[2] = peer[2];
	k.addr[3] = peer[3];
	k.family = family;
	m = bpf_map_lookup_elem(&peer_macs, &k);
	if (m && m->ifindex == ctx->ingress_ifindex &&
	    mac_eq(m->mac, eth->h_source))
		return;
	__builtin_memcpy(v.mac, eth->h_source, ETH_ALEN);
	v.ifindex = ctx->ingress_ifindex;
	bpf_map_update_elem(&peer_macs, &k, &v, BPF_ANY);
}

/* The next hop toward the leg's destination on its egress interface, or NULL (the stat to
 * count is then in *stat). */
static __always_inline struct pc_peer_mac *next_hop(struct xdp_md *ctx, const struct pc_leg *leg,
						    __u8 family, int *stat)
{
	struct pc_peer_key k = {};
	struct pc_peer_mac *m;
	__u32 ifindex = leg->out_ifindex;

	k.addr[0] = leg->out_dst_addr[0];
	k.addr[1] = leg->out_dst_addr[1];
	k.addr[2] = leg->out_dst_addr[2];
	k.addr[3] = leg->out_dst_addr[3];
	k.family = family;
	m = bpf_map_lookup_elem(&peer_macs, &k);
	if (!m || m->ifindex != ifindex) {
		*stat = PC_STAT_NO_PEER_MAC;
		return 0;
	}
	if (ifindex != ctx->ingress_ifindex && !bpf_map_lookup_elem(&tx_ports, &ifindex)) {
		*stat = PC_STAT_NO_TX_PORT;
		return 0;
	}
	return m;
}

/* After the rewrite: new MACs, then out of the ingress interface or through tx_ports. */
static __always_inline int send_out(struct xdp_md *ctx, struct ethhdr *eth,
				    const struct pc_leg *leg, const struct pc_peer_mac *hop)
{
	__builtin_memcpy(eth->h_dest, hop->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, leg->out_src_mac, ETH_ALEN);
	if (leg->out_ifindex == ctx->ingress_ifindex)
		return count(PC_STAT_TX, XDP_TX);
	count(PC_STAT_REDIRECT, 0);
	return bpf_redirect_map(&tx_ports, leg->out_ifindex, 0);
}

/* Pass-up of a packet whose UDP header was read (see up()). */
#define UP_V4 up(ctx, &ip->daddr, key.port, PC_FAMILY_V4)
#define UP_V6 up(ctx, ip->daddr.in6_u.u6_addr32, key.port, PC_FAMILY_V6)

static __always_inline int forward_v4(struct xdp_md *ctx, struct ethhdr *eth, void *end)
{
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;
	struct pc_leg_key key = {};
	struct pc_leg *leg;
	struct pc_payload pl = {};
	struct pc_peer_mac *hop;
	__u16 udp_len;
	__u32 acc;
	int rc;

	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(0x3fff)) /* MF or an offset: a fragment */
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_PASS;
	udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp) || bpf_ntohs(ip->tot_len) < sizeof(*ip) + udp_len)
		return XDP_PASS;

	key.port = bpf_ntohs(udp->dest);
	key.family = PC_FAMILY_V4;
	leg = bpf_map_lookup_elem(&legs, &key);
	if (!leg || ip->daddr != leg->local_addr[0])
		return UP_V4;
	if (ip->saddr != leg->peer_addr[0] || udp->source != leg->peer_port)
		return count(PC_STAT_PEER_MISMATCH, UP_V4);
	learn(ctx, eth, leg->peer_addr, PC_FAMILY_V4);
	rc = check_payload(leg, (__u8 *)(udp + 1), end, &pl);
	if (rc >= 0)
		return count(rc, UP_V4);
	hop = next_hop(ctx, leg, PC_FAMILY_V4, &rc);
	if (!hop)
		return count(rc, UP_V4);

	account(&key, leg, &pl, udp_len - sizeof(*udp));

	/* UDP: pseudo-header addresses and both ports; 0 means "no checksum" and stays. */
	if (udp->check) {
		acc = (__u16)~udp->check;
		acc = csum_word32(acc, ip->saddr, leg->out_src_addr[0]);
		acc = csum_word32(acc, ip->daddr, leg->out_dst_addr[0]);
		acc = csum_word(acc, udp->source, leg->out_src_port);
		acc = csum_word(acc, udp->dest, leg->out_dst_port);
		udp->check = csum_finish(acc);
		if (!udp->check)
			udp->check = 0xffff;
	}
	udp->source = leg->out_src_port;
	udp->dest = leg->out_dst_port;

	/* IPv4 header: both addresses and the TTL/protocol word. */
	acc = (__u16)~ip->check;
	acc = csum_word32(acc, ip->saddr, leg->out_src_addr[0]);
	acc = csum_word32(acc, ip->daddr, leg->out_dst_addr[0]);
	acc = csum_word(acc, bpf_htons((__u16)(ip->ttl << 8 | ip->protocol)),
			bpf_htons((__u16)(PC_TTL << 8 | ip->protocol)));
	ip->check = csum_finish(acc);
	ip->saddr = leg->out_src_addr[0];
	ip->daddr = leg->out_dst_addr[0];
	ip->ttl = PC_TTL;

	return send_out(ctx, eth, leg, hop);
}

static __always_inline int addr6_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int forward_v6(struct xdp_md *ctx, struct ethhdr *eth, void *end)
{
	struct ipv6hdr *ip = (void *)(eth + 1);
	struct udphdr *udp;
	struct pc_leg_key key = {};
	struct pc_leg *leg;
	struct pc_payload pl = {};
	struct pc_peer_mac *hop;
	__u16 udp_len;
	__u32 acc;
	int rc, i;

	if ((void *)(ip + 1) > end || ip->nexthdr != IPPROTO_UDP)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_PASS;
	udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp) || bpf_ntohs(ip->payload_len) < udp_len)
		return XDP_PASS;

	key.port = bpf_ntohs(udp->dest);
	key.family = PC_FAMILY_V6;
	leg = bpf_map_lookup_elem(&legs, &key);
	if (!leg || !addr6_eq(ip->daddr.in6_u.u6_addr32, leg->local_addr))
		return UP_V6;
	if (!addr6_eq(ip->saddr.in6_u.u6_addr32, leg->peer_addr) ||
	    udp->source != leg->peer_port)
		return count(PC_STAT_PEER_MISMATCH, UP_V6);
	/* RFC 8200 §8.1: a zero UDP checksum is invalid over IPv6; the stack decides. */
	if (!udp->check)
		return count(PC_STAT_NOT_RTP, UP_V6);
	learn(ctx, eth, leg->peer_addr, PC_FAMILY_V6);
	rc = check_payload(leg, (__u8 *)(udp + 1), end, &pl);
	if (rc >= 0)
		return count(rc, UP_V6);
	hop = next_hop(ctx, leg, PC_FAMILY_V6, &rc);
	if (!hop)
		return count(rc, UP_V6);

	account(&key, leg, &pl, udp_len - sizeof(*udp));

	acc = (__u16)~udp->check;
	for (i = 0; i < 4; i++) {
		acc = csum_word32(acc, ip->saddr.in6_u.u6_addr32[i], leg->out_src_addr[i]);
		acc = csum_word32(acc, ip->daddr.in6_u.u6_addr32[i], leg->out_dst_addr[i]);
	}
	acc = csum_word(acc, udp->source, leg->out_src_port);
	acc = csum_word(acc, udp->dest, leg->out_dst_port);
	udp->check = csum_finish(acc);
	if (!udp->check)
		udp->check = 0xffff;
	udp->source = leg->out_src_port;
	udp->dest = leg->out_dst_port;
	for (i = 0; i < 4; i++) {
		ip->saddr.in6_u.u6_addr32[i] = leg->out_src_addr[i];
		ip->daddr.in6_u.u6_addr32[i] = leg->out_dst_addr[i];
	}
	ip->hop_limit = PC_TTL;

	return send_out(ctx, eth, leg, hop);
}

SEC("xdp")
int portcullis_fastpath(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return forward_v4(ctx, eth, end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return forward_v6(ctx, eth, end);
	return XDP_PASS;
}

/* Only helpers open to every licence are used (map access, ktime, redirect_map). */
char LICENSE[] SEC("license") = "Apache-2.0";
