//! Every metric family the appliance exports (name, type, help), in one table: the
//! encoder in [`super::metrics`] refuses a sample of an undeclared family.

use super::metrics::{Family, Kind};

pub(crate) const fn fam(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, kind, help }
}

use Kind::{Counter as C, Gauge as G};

/// Every family the appliance exports. The SIP driver families (`portcullis_sip_transport_*`)
/// mirror `NetCountersSnapshot::for_each` names one to one.
pub const FAMILIES: &[Family] = &[
    fam("portcullis_build_info", G, "Build information (value 1)."),
    fam(
        "portcullis_config_generation",
        G,
        "Configuration generation: 1 at start, +1 per successful reload.",
    ),
    fam(
        "portcullis_calls_started_total",
        C,
        "Call attempts seen by the call engine.",
    ),
    fam("portcullis_calls_active", G, "Live calls."),
    fam(
        "portcullis_calls_per_second",
        G,
        "Call attempts per second over the last 10 seconds.",
    ),
    fam(
        "portcullis_trunk_calls_active",
        G,
        "Live calls touching the trunk (inbound or outbound).",
    ),
    fam(
        "portcullis_trunk_calls_total",
        C,
        "Calls from (inbound) or attempts toward (outbound) the trunk.",
    ),
    fam(
        "portcullis_trunk_call_outcomes_total",
        C,
        "Outcomes of calls that arrived from the trunk.",
    ),
    fam(
        "portcullis_sip_requests_total",
        C,
        "SIP requests by method and direction.",
    ),
    fam(
        "portcullis_sip_responses_total",
        C,
        "SIP responses by status class and direction.",
    ),
    fam(
        "portcullis_sip_transaction_timeouts_total",
        C,
        "Client transactions that timed out (RFC 3261 Timers B, F; RFC 6026 Timer L).",
    ),
    fam(
        "portcullis_sip_parse_errors_total",
        C,
        "Malformed SIP messages (answered 400 when possible).",
    ),
    fam(
        "portcullis_policy_rejects_total",
        C,
        "Requests refused by policy (ACL, rate limit, authentication).",
    ),
    fam(
        "portcullis_sip_auth_replays_total",
        C,
        "Digest credentials refused as replays (nonce count not increasing, nonce reused).",
    ),
    fam(
        "portcullis_codec_rejects_total",
        C,
        "Offers refused 488 because the trunks' codec policies left no codec.",
    ),
    fam(
        "portcullis_header_rules_applied_total",
        C,
        "Trunk header rules ([[trunk.headers]]) that changed a relayed message.",
    ),
    fam(
        "portcullis_delayed_offer_reoffers_total",
        C,
        "re-INVITEs that carried a delayed-offer answer to the side that answered our offer.",
    ),
    fam(
        "portcullis_policy_bans_total",
        C,
        "Sources banned by the rate limiter.",
    ),
    fam(
        "portcullis_policy_dropped_total",
        C,
        "Requests dropped silently (unknown source in drop mode, banned source).",
    ),
    // Admission under flood.
    fam(
        "portcullis_sip_rejected_total",
        C,
        "Requests refused before a call existed, by status and reason phrase \
         (unknown source, drain, limits, unknown dialog).",
    ),
    fam(
        "portcullis_sip_limit_rejects_total",
        C,
        "New requests answered 503 with Retry-After by a load limit \
         (transactions, transactions_per_source, calls).",
    ),
    fam(
        "portcullis_sip_options_unavailable_total",
        C,
        "OPTIONS answered 503 so a load balancer sends new calls elsewhere \
         (draining, overload).",
    ),
    fam(
        "portcullis_sip_transactions",
        G,
        "Live SIP transactions (bounded by sip.limits.max_transactions).",
    ),
    fam(
        "portcullis_policy_bans_active",
        G,
        "Bans in force, hosts and widened prefixes.",
    ),
    fam(
        "portcullis_sip_transport_messages_in_total",
        C,
        "SIP messages received by the transport drivers.",
    ),
    fam(
        "portcullis_sip_transport_messages_out_total",
        C,
        "SIP messages sent by the transport drivers.",
    ),
    fam(
        "portcullis_sip_transport_bytes_in_total",
        C,
        "SIP bytes received by the transport drivers.",
    ),
    fam(
        "portcullis_sip_transport_bytes_out_total",
        C,
        "SIP bytes sent by the transport drivers.",
    ),
    fam(
        "portcullis_sip_transport_connections_open",
        G,
        "Open TCP/TLS connections.",
    ),
    fam(
        "portcullis_sip_transport_connections_total",
        C,
        "TCP/TLS connections opened.",
    ),
    fam(
        "portcullis_sip_transport_connections_refused_total",
        C,
        "TCP/TLS connections refused (limits, banned sources).",
    ),
    fam(
        "portcullis_sip_transport_idle_closes_total",
        C,
        "Connections closed for idleness.",
    ),
    fam(
        "portcullis_sip_transport_oversize_drops_total",
        C,
        "Messages dropped for exceeding the size limit.",
    ),
    fam(
        "portcullis_sip_transport_framing_errors_total",
        C,
        "Stream framing errors (bad Content-Length).",
    ),
    fam(
        "portcullis_sip_transport_tls_handshake_failures_total",
        C,
        "Failed TLS handshakes.",
    ),
    fam(
        "portcullis_sip_transport_tls_name_rejections_total",
        C,
        "TLS peers refused for their certificate names.",
    ),
    fam(
        "portcullis_sip_transport_keepalives_total",
        C,
        "CRLF keep-alives answered (RFC 5626 section 4.4.1) and UDP keep-alives absorbed.",
    ),
    fam(
        "portcullis_sip_transport_event_queue_drops_total",
        C,
        "Inbound UDP messages dropped because their engine queue (trunks, or other sources) was full.",
    ),
    fam(
        "portcullis_sip_transport_trunk_queue_drops_total",
        C,
        "Of those, UDP messages from configured trunks (their own queue was full).",
    ),
    fam(
        "portcullis_sip_transport_send_failures_total",
        C,
        "Sends that failed.",
    ),
    // Transport edge guards ([sip.limits]).
    fam(
        "portcullis_sip_transport_banned_drops_total",
        C,
        "UDP datagrams from sources banned by the policy, dropped before the engine queue.",
    ),
    fam(
        "portcullis_sip_transport_source_rate_drops_total",
        C,
        "UDP datagrams from non-trunk sources over sip.limits.unknown_source_rate, dropped before the engine queue.",
    ),
    fam(
        "portcullis_sip_transport_rate_limited_total",
        C,
        "TCP/TLS messages over sip.limits.per_connection_rate (requests answered 503), not passed to the engine.",
    ),
    fam(
        "portcullis_sip_transport_buffer_closes_total",
        C,
        "TCP/TLS connections closed because a pending message outgrew sip.limits.per_connection_buffer.",
    ),
    fam(
        "portcullis_sip_transport_slow_closes_total",
        C,
        "TCP/TLS connections closed because a message missed sip.limits.header_timeout or min_receive_rate.",
    ),
    fam(
        "portcullis_sip_transport_reserve_refusals_total",
        C,
        "TCP/TLS connections from non-trunk sources refused because only sip.limits.trunk_connection_reserve was left.",
    ),
    fam(
        "portcullis_dataplane_info",
        G,
        "Data plane I/O backend in use (value 1).",
    ),
    fam(
        "portcullis_dataplane_packets_total",
        C,
        "Media packets per worker and direction.",
    ),
    fam(
        "portcullis_dataplane_bytes_total",
        C,
        "Media bytes per worker and direction.",
    ),
    fam(
        "portcullis_dataplane_drops_total",
        C,
        "Media packets dropped per worker and reason.",
    ),
    fam(
        "portcullis_dataplane_rtp_source_rejected_total",
        C,
        "Media packets refused for their source per worker: not from the leg's peer and not \
         taken by endpoint learning (spoofed or stray streams; also in drops_total).",
    ),
    fam(
        "portcullis_dataplane_srtp_failures_total",
        C,
        "SRTP/SRTCP failures (authentication, replay, other) per worker.",
    ),
    fam(
        "portcullis_dataplane_active_pairs",
        G,
        "Armed stream pairs per worker.",
    ),
    fam(
        "portcullis_dataplane_commands_total",
        C,
        "Ring commands applied per worker.",
    ),
    fam(
        "portcullis_dataplane_stale_commands_total",
        C,
        "Ring commands ignored for a stale generation per worker.",
    ),
    fam(
        "portcullis_dataplane_connected_sockets",
        G,
        "Connected send sockets in use (one per forwarding leg; io_uring backend).",
    ),
    fam(
        "portcullis_dataplane_send_only_sockets",
        G,
        "Connected send sockets never read, each beside a receive socket for the same peer.",
    ),
    fam(
        "portcullis_dataplane_connect_failures_total",
        C,
        "Connected send sockets that could not be made (the leg sends unconnected).",
    ),
    fam(
        "portcullis_dataplane_uring_rearms_total",
        C,
        "io_uring multishot receives re-armed after the kernel ended them (io_uring backend).",
    ),
    fam(
        "portcullis_dataplane_uring_enobufs_total",
        C,
        "io_uring receives that found no free packet buffer (a burst beyond the buffer pool; \
         the datagram waits in the socket until re-armed).",
    ),
    fam(
        "portcullis_dataplane_event_ring_overflows_total",
        C,
        "Events a worker lost because its event ring was full.",
    ),
    fam(
        "portcullis_dataplane_command_ring_overflows_total",
        C,
        "Commands refused because the worker's command ring was full (the call got 503).",
    ),
    fam(
        "portcullis_dataplane_ring_depth",
        G,
        "Messages waiting in a worker's command or event ring.",
    ),
    fam(
        "portcullis_dataplane_ring_capacity",
        G,
        "Capacity of each of a worker's rings.",
    ),
    fam(
        "portcullis_media_events_lost_total",
        C,
        "Data plane events the control plane saw lost to full rings.",
    ),
    fam(
        "portcullis_media_errors_total",
        C,
        "Calls refused for media reasons (no capacity, full command ring).",
    ),
    fam(
        "portcullis_media_bypassed_total",
        C,
        "Calls set up with media bypass: SDP relayed unchanged, no data plane ports.",
    ),
    fam(
        "portcullis_teams_proxy_up",
        G,
        "Teams SIP proxy health: 1 up (answers OPTIONS), 0 down.",
    ),
    fam(
        "portcullis_teams_proxy_selected",
        G,
        "1 for the Teams proxy new calls go to now.",
    ),
    fam(
        "portcullis_teams_proxy_held_off",
        G,
        "1 while a 503 Retry-After keeps the Teams proxy out of the failover order.",
    ),
    fam(
        "portcullis_teams_options_sent_total",
        C,
        "OPTIONS pings sent to the Teams proxy.",
    ),
    fam(
        "portcullis_teams_options_answered_total",
        C,
        "Final answers to OPTIONS pings from the Teams proxy.",
    ),
    fam(
        "portcullis_teams_options_misses_total",
        C,
        "OPTIONS pings to the Teams proxy left unanswered (timeout or broken connection).",
    ),
    fam(
        "portcullis_teams_failovers_total",
        C,
        "Times new calls toward Teams were moved to another proxy.",
    ),
    // Trunk targets (rendered by `trunk_metrics`).
    fam(
        "portcullis_trunk_target_up",
        G,
        "Trunk target health: 1 up (answers OPTIONS, or not pinged), 0 down.",
    ),
    fam(
        "portcullis_trunk_target_usable",
        G,
        "1 when new calls may use the trunk target (up and not held off by a 503 Retry-After).",
    ),
    fam(
        "portcullis_trunk_target_calls",
        G,
        "Calls in progress on the trunk target.",
    ),
    fam(
        "portcullis_trunk_target_attempts_total",
        C,
        "Call attempts (INVITEs) sent to the trunk target.",
    ),
    fam(
        "portcullis_trunk_pings_sent_total",
        C,
        "OPTIONS pings sent to the trunk target.",
    ),
    fam(
        "portcullis_trunk_pings_answered_total",
        C,
        "Final answers to OPTIONS pings from the trunk target.",
    ),
    fam(
        "portcullis_trunk_pings_missed_total",
        C,
        "OPTIONS pings to the trunk target left unanswered.",
    ),
    fam(
        "portcullis_trunk_failovers_total",
        C,
        "Call attempts that moved on from one of the trunk's targets (408, 5xx, timeout).",
    ),
    fam(
        "portcullis_trunk_unavailable_total",
        C,
        "Calls that found no usable target on the trunk.",
    ),
    fam(
        "portcullis_trunk_resolved",
        G,
        "1 when the trunk's name resolved at the last lookup (always 1 for IP targets), 0 pending or failed.",
    ),
    fam(
        "portcullis_trunk_targets",
        G,
        "Targets the trunk has now (configured or resolved).",
    ),
    fam("portcullis_cdr_written_total", C, "CDR lines written."),
    fam(
        "portcullis_cdr_errors_total",
        C,
        "CDR write or sync failures.",
    ),
    fam(
        "portcullis_capture_sent_total",
        C,
        "SIP messages sent to the HEP collector ([capture] hep).",
    ),
    fam(
        "portcullis_capture_dropped_total",
        C,
        "SIP messages not captured: the collector's socket could not take them at once, or too large for HEP.",
    ),
    // rtpengine ng control protocol ([ng], media nodes).
    fam(
        "portcullis_ng_commands_total",
        C,
        "ng requests answered, by command and result (ok, error, load_limit).",
    ),
    fam(
        "portcullis_ng_errors_total",
        C,
        "ng requests refused and datagrams dropped, by reason.",
    ),
    fam("portcullis_ng_sessions_active", G, "Live ng sessions (calls)."),
    fam(
        "portcullis_ng_sessions_timed_out_total",
        C,
        "ng sessions deleted after ng.timeout (ng.silent_timeout on hold) without media or command.",
    ),
    fam(
        "portcullis_ng_retransmissions_total",
        C,
        "Retransmitted ng requests answered from the reply cache.",
    ),
    fam(
        "portcullis_cdr_queue_depth",
        G,
        "CDR records and journal entries waiting for the writer.",
    ),
    fam(
        "portcullis_cdr_backpressure",
        G,
        "1 while new calls are refused (503) because the CDR writer is behind.",
    ),
    fam(
        "portcullis_cdr_backpressure_rejects_total",
        C,
        "New calls refused with 503 because the CDR writer was behind.",
    ),
    fam(
        "portcullis_cdr_recovered_total",
        C,
        "Records written at start, ended by restart, for calls the last stop cut.",
    ),
    fam(
        "portcullis_log_lines_dropped_total",
        C,
        "Log lines dropped because the log output (stderr) was behind.",
    ),
    fam(
        "portcullis_log_filter_info",
        G,
        "Log filter in force (value 1); changed by PUT /api/v1/log-level or a reload.",
    ),
];
