//! Sans-IO SIP transactions, dialogs, B2BUA call logic, routing and policy.
//!
//! Nothing in this crate touches a socket or a clock: every input carries
//! `now: Timestamp` ([`time::Timestamp`], virtual milliseconds), every output
//! is pulled. Drivers (`portcullis-net`) move bytes; this crate decides.
//!
//! # API overview
//!
//! ## Transactions ([`transaction`], RFC 3261 §17 + RFC 6026)
//!
//! | need | use |
//! |---|---|
//! | create the layer | `TransactionLayer::new(TxConfig { timers: TimerConfig { t1, t2, t4, timer_d }, timer_budget, max_server_transactions }, entropy: impl Entropy)` (identifiers from `entropy`; the TU draws from it through `entropy()`) |
//! | bytes arrived | `handle_datagram(now, from: PeerAddr { transport, addr, conn }, &[u8])` (parses with `portcullis-sip`, answers malformed requests statelessly) or `handle_message(now, from, SipMsg)` |
//! | a timer is due | `handle_timeout(now)`; ask when with `poll_timeout() -> Option<Timestamp>` |
//! | the driver could not send | `handle_transport_error(now, TxId)` (every `Transmit` names its `tx`); a connection died: `handle_connection_lost(now, ConnId)` |
//! | what to send | `poll_transmit() -> Option<Transmit { dest, transport, conn, tx, bytes }>` |
//! | what happened | `poll_event() -> Option<TxEvent>`: `Request { tx, from, request, cancels }`, `Response { tx, response }`, `Ack { tx, .. }` (2xx ACK), `StrayAck { .. }`, `Timeout { tx, timer }` (B, F, H, L), `TransportError { tx }` |
//! | start a client transaction | `new_branch() -> String`, then `send_request(now, dest: PeerAddr, SipMsg) -> Result<TxId, TxError>` |
//! | cancel an INVITE (§9.1) | `send_cancel(now, invite_tx) -> Result<TxId, TxError>` |
//! | ACK a 2xx (built by the dialog) | `send_ack(Some(invite_tx), dest, &ack)` (re-sent automatically on 2xx retransmissions) |
//! | answer a server transaction | `make_response(&request, status, reason, to_tag)` then `respond(now, tx, &response)` |
//! | inspect | `state(tx) -> Option<TxState>`, `request(tx)`, `len()`, `stats() -> &TxStats` |
//! | messages | `SipMsg` wraps `portcullis_sip::OwnedMessage` (`as_owned`, `into_owned`, `from_owned`); `parse_message(&[u8])` |
//!
//! At `max_server_transactions` live server transactions, new inbound requests
//! (not CANCEL) get a stateless `503` + `Retry-After` (`TxStats::overload_rejects`).
//!
//! Server transactions stamp `received`/`rport` into the top Via of every
//! request (RFC 3261 §18.2.1, RFC 3581) and send responses per §18.2.2
//! (`transaction::response_target`). The INVITE server transaction sends
//! `100 Trying` at once and retransmits a 2xx until its ACK (RFC 6026
//! Accepted state). Matching uses the magic-cookie branch, or the RFC 2543
//! key when the branch lacks the cookie (or is only the cookie).
//!
//! ## Dialogs ([`dialog`], RFC 3261 §12)
//!
//! | need | use |
//! |---|---|
//! | UAC dialog from a 1xx-with-tag / 2xx | `Dialog::from_uac(&invite, &response)`; later `on_response(&method, &response)` |
//! | UAS dialog from our 1xx/2xx | `Dialog::from_uas(&request, local_tag, local_contact, confirmed)`; `confirm()` |
//! | incoming in-dialog request | `on_request(&req)` (500 on lower CSeq: `DialogError::status()`), `accept_target_refresh(&req)` on 2xx |
//! | build BYE / re-INVITE / UPDATE / INFO | `request(method, &via) -> Result<SipMsg, DialogError>` |
//! | ACK for a 2xx | `ack(invite_cseq, &via)` |
//! | where to send | `Dialog::next_hop(&request)` (top Route, else Request-URI) |
//! | find dialogs | `DialogTable::{insert, for_request, for_response, remove, purge_terminated}` |
//!
//! ## Routing (`routing`)
//!
//! | need | use |
//! |---|---|
//! | build (per config generation) | `Router::new(&EngineConfig) -> Result<Router, RoutingError>` (engine `RouteConfig`: prefix, strip, prepend), or `Router::with_rules(&trunks, &[RouteRule])` for the full rule language: `NumberMatch::{Any, Prefix, Regex}` (anchored) on called and calling numbers, `TranslationRule::{StripDigits, StripPrefix, AddPrefix, Replace { pattern, replacement }, E164 { country_code, trunk_prefix, international_prefix }}` for both numbers, per-target called translations, `reject: Some(status)` rules |
//! | which trunk sent this | `classify_source(src, transport, tls_peer_names: Option<&[String]>) -> Option<TrunkId>` (ACL/address + transport; TLS trunks with `tls_server_name` by certificate SAN, wildcards per RFC 6125: `tls_name_matches`) |
//! | route a call | `route(inbound, called, calling) -> Result<RouteDecision { route, targets: Vec<RouteTarget { trunk, called }>, called, calling, redirect }, RouteReject>`; `RouteReject::status()` = 404 / 484 / rule status |
//! | trunk targets | `TargetTable`: `sync(trunks, now)`, `set_resolved(name, TargetUpdate, now)`, `select(name, now, exclude, draw) -> Option<SocketAddr>` by `Strategy` (priority / weighted / least_calls); each target's `Probe` (OPTIONS up/down with `HealthPolicy { interval, miss_threshold, recovery_count }`, `503` + Retry-After hold-off capped at `MAX_HOLD_OFF`) |
//! | E.164 | `to_e164(number, cc, trunk_prefix, intl_prefix) -> Option<String>` |
//!
//! ## Policy (`policy`)
//!
//! | need | use |
//! |---|---|
//! | admit a request | `Policy::new(&PolicyConfig)` (or `with_settings(unknown, Some(RateLimitSettings { per_second, burst, ban, capacity, ipv6_prefix, exempt_trunks }))`); `check_request(now, src_ip, trunk: Option<TrunkId>) -> PolicyVerdict::{Allow, Reject403, Drop, RateLimited { until, new_ban }}` |
//! | inspect / reload | `bans()`, `banned_until(now, ip)`, `tracked_sources()`, `stats() -> &PolicyStats`, `set_config(&PolicyConfig)` (bans survive) |
//! | concurrent calls per trunk | `TrunkLimits::new()`, by trunk name (a call keeps its own config generation): `try_acquire(&TrunkConfig) -> bool` against its `max_calls`, `release(name)`, `active(name)`, `rejected(name)` |
//!
//! The rate table is a token bucket per source (IPv6 per /64) in a bounded
//! LRU table (64k entries by default); exceeding the rate bans the source.
//!
//! ## Digest authentication (`digest`, RFC 3261 §22.4, RFC 7616, RFC 8760)
//!
//! | need | use |
//! |---|---|
//! | challenge a request (we are UAS → 401 `WWW-Authenticate`; proxy → 407 `Proxy-Authenticate`) | `DigestServer::new(realm, secret: [u8; 32], nonce_lifetime)`, `.bound_to(client_ip)` to bind its nonces to the client's address; `challenges(now, salt: u64, stale) -> Vec<String>` (one value per algorithm, SHA-256 then MD5); header name from `ChallengeKind::{Www, Proxy}.challenge_header()` |
//! | check `Authorization` / `Proxy-Authorization` | `verify(now, &Auth, method, Some(request_uri), username, password) -> Result<Verified { algorithm, nc, issued_at, nonce_id, expires_at }, DigestError>`; `Err(DigestError::Stale)` → re-challenge with `stale = true`; other errors → re-challenge or 403 |
//! | refuse replays (RFC 7616 §3.4) | `NonceCountGuard::new(NONCE_GUARD_CAPACITY).accept(now, &verified)`: `nc` strictly increasing per nonce, a nonce without qop single-use; `Err(Replay)`, or `Err(Stale)` for a nonce forgotten to keep the bound (at most `capacity` nonces) |
//! | answer a 401/407 (outbound) | `answer_best(ChallengeKind::from_status(status)?, &challenge_values, &ClientRequest { method, uri, username, password, cnonce: &cnonce(random), nc: 1 }) -> Result<String, DigestError>` (picks SHA-512-256 > SHA-256 > MD5); put it in `kind.credentials_header()` |
//!
//! Nonces are stateless (issue time + salt + HMAC-SHA-256 under the secret and
//! the bound client address); only nonces that carried valid credentials are
//! remembered, by the replay guard.
//!
//! ## Randomness ([`entropy`])
//!
//! | need | use |
//! |---|---|
//! | inject a source | trait `Entropy: Debug + Send { fill_secret(&mut [u8]), fill_id(&mut [u8]) }`: secrets (keys, salts, ICE credentials, nonce secrets) and wire identifiers (branches, tags, Call-IDs) are separate draws; the appliance passes its OS CSPRNG source |
//! | simulate, test, bench | `SeededEntropy::new(seed: u64)`: two ChaCha12 streams, the same seed replays the same run (never in production) |
//! | helpers | `id_u64`, `secret::<N>`, `srtp_key` (16-byte key + 14-byte salt), `ice_credentials` (64-bit ufrag, 128-bit pwd) |
//! | Teams monitor | `teams::ProxyHealth::new(cfg, proxies, now, entropy: impl Entropy)` |
//!
//! ## CDR (`cdr`)
//!
//! `CdrRecord { call_id, a_leg: LegRecord { call_id, from, to, trunk, remote }, b_leg, calling: NumberRecord { original, translated }, called, route, setup_at_ms, answer_at_ms, end_at_ms, end_reason: EndReason, final_status, media: Option<MediaRecord { a, b: MediaSideRecord { rx/tx packets/bytes, lost, jitter_us, rtp_source_rejected } }>, takeover: Option<TakeoverRecord { origin_call_id, count, at_ms }> }` (`takeover` only on a call carried on by a standby, `ha`);
//! `to_json_line()` (one line, `\n`-terminated, fixed field order), `from_json_line`, `duration_ms()`, `setup_ms()`.
//! Timestamps are wall-clock ms since the UNIX epoch, passed in by the caller.
//!
//! ## B2BUA ([`b2bua`], [`media`], [`config`])
//!
//! | need | use |
//! |---|---|
//! | create | `B2bua::new(Arc<EngineConfig>, media: impl MediaControl, entropy: impl Entropy) -> Result<_, ConfigError>` (SDES keys and salts, ICE-lite credentials and the digest nonce secret from `entropy.fill_secret`, drawn per use; tags, Call-IDs, branches, nonce salts from `entropy.fill_id`); reload `set_config(Arc<EngineConfig>)` (new calls only); CDR wall clock `set_epoch_offset_ms(ms)` |
//! | inputs | `handle_datagram(now, PeerAddr, &[u8])` (`handle_datagram_with_names` for TLS peer names), `handle_timeout(now)`, `handle_tx_error(now, TxId)` (a `Transmit` could not be sent), `handle_connection_lost(now, ConnId)` / `handle_transport_error(now, PeerAddr)`, `handle_media_event(now, MediaEvent)` |
//! | outputs | `poll_transmit() -> Option<b2bua::Transmit { dest: PeerAddr, bytes, tls_server_name, tx }>`, `poll_timeout()`, `poll_event() -> Option<CallEvent>` (`CallStarted`, `CallRouted`, `AttemptStarted`, `AttemptFailed`, `CallAnswered`, `CallEnded { cdr: Box<CdrRecord> }` exactly once per call, `Rejected`, `PolicyBan`) |
//! | registrations (`registration`, RFC 3261 §10) | `EngineConfig::registrations: Vec<RegistrationConfig { trunk, registrar, transport, registrar_uri, aor, contact_user, expires, credentials, retry_min, retry_max, .. }>`; `registrations(now) -> Vec<RegistrationStatus { state: RegState, bound_until, next_attempt, last_status, last_error, stats }>`, `unregister_all(now)` (shutdown: `Expires: 0`), `registrations_pending()`; `CallEvent::RegistrationChanged` on each state change; requests to a registered Contact from the registrar or the trunk's sources are that trunk's |
//! | admin | `calls() -> Vec<CallSummary>`, `terminate(now, call)`, `start_drain()` (new INVITEs and OPTIONS: 503 + Retry-After), `availability() -> Availability::{Open, Overloaded, Draining}` (what OPTIONS answer: 200, or 503 at `policy.overload_calls` live calls or when draining; every answer carries `X-Portcullis-Load: calls=N[;max=M][;overload=O]`), `release_all(now)` (BYE/CANCEL everything, end reason Shutdown), `set_cdr_backpressure(bool)` (the CDR writer is behind: new INVITEs 503 + Retry-After), `open_record(now, call)` (an answered call's record to journal, end reason Restart), `active_calls()`, `held_calls()`, `stats() -> &EngineStats`, `tx_stats()` |
//! | media plane | trait `media::MediaControl { allocate, update(id, &MediaLegParams, &MediaLegParams), release, stats }`; `media()` / `media_mut()` reach the implementation |
//! | config | `config::EngineConfig { node, listeners, trunks, routes, policy, timers, teams }`, `validate()`, `trunk(TrunkId)`, `trunk_by_name`, `listener(transport)` |
//! | active/standby pair ([`ha`]) | `set_ha(true)` marks answered calls dirty on every durable change; `poll_ha_dirty() -> Option<u64>`; `export_call(call) -> Option<ha::CallSnapshot>` (serde; answered, nothing in progress); `restore_call(now, &CallSnapshot) -> Result<u64, ha::RestoreError>` (every stream's pair re-created through `MediaControl::restore(realms, ports, &a, &b)`); `ha_key(call)`, `media_of(call)` (first stream), `media_streams_of(call)` (every stream, line order); a restored call's CDR carries `takeover` |
//!
//! What the engine does (RFC 3261 B2BUA): independent A/B legs (own Call-ID,
//! tags, CSeq, Via, Contact) with topology hiding (only display name + user of
//! From/To, a header whitelist, our User-Agent); 100 Trying locally; 18x/2xx
//! relayed with SDP rewritten for media anchoring (`c=`/`o=`, ports, rtcp-mux,
//! SDES-SRTP per trunk mode with fresh `AES_CM_128_HMAC_SHA1_80` keys); ACKs
//! per leg; CANCEL (a 2xx racing it is ACKed and BYE'd); BYE from either side;
//! re-INVITE/UPDATE/INFO/MESSAGE relayed in dialog (glare 491, re-INVITE
//! without SDP answered through the deferred ACK); PRACK end to end with RSeq
//! /RAck mapping (RFC 3262); session timers per leg (RFC 4028, UPDATE refresh,
//! 422 both ways, expiry → BYE both); OPTIONS answered locally with the
//! load (503 when draining or overloaded, for a load balancer); failover on
//! 408/5xx/Timer B (503 Retry-After skips the trunk, 6xx and other 4xx
//! relayed); 3xx followed or relayed per route; forked 2xx (first wins, others
//! ACK + BYE); per-trunk concurrent-call limits; no-answer timeout (480); digest
//! challenge of inbound trunks and answers to 401/407 from outbound trunks;
//! delayed offer from the caller replaced by our own offer toward B; media
//! inactivity → BYE both. Transfer (`b2bua/refer/`, RFC 3515/3891): a
//! REFER on either leg of an answered call gets 202, the Refer-To user is
//! routed from the referrer's trunk (408/5xx: next target; trunk slots
//! taken by the new leg, given back by the leg that leaves), the new leg is offered the remaining
//! party's last SDP (`sendrecv`) on the same media allocation (its answer
//! reprograms the referrer side's peer; the remaining party is re-INVITEd
//! only to take it off hold), NOTIFY `message/sipfrag` 100 then the final
//! status go to the referrer, the referrer is BYE'd on success (a failure
//! keeps the call and restores its media state); a segment CDR with
//! `EndReason::Transferred` is emitted at the transfer and the continuing
//! call emits its own at the end. A Refer-To Replaces naming a dialog that is
//! not ours goes to the target as a `Replaces` header; one naming a leg of
//! another call of ours (Teams consult transfer) joins the two remaining
//! parties locally: the other call's remaining party is re-INVITEd onto our
//! port of the referrer's side, both released legs get BYE, the other call
//! ends (`Transferred`). An INVITE with Replaces naming one of our legs takes
//! that leg's place (its offer re-INVITEs the party on the other side);
//! unknown dialogs get `481`, malformed Replaces `400`. Teams trunks
//! (`EngineConfig::is_teams_trunk`: `teams` settings present and the trunk's
//! `tls_server_name` contains `pstnhub.`) get our FQDN with our listener's port in Contact
//! and Via (`fqdn_contact`, else `teams.sbc_fqdn`; `b2bua/identity.rs`), the proxy's
//! configured port in the Request-URI and To of a new leg, `X-MS-SBC: Portcullis/<version>`
//! on every request we send them and every response we build for theirs, History-Info copied into the B INVITE, the
//! relayed in-dialog requests and transfer INVITEs when any leg is Teams,
//! never a delayed offer (a re-INVITE without SDP gets our offer built from
//! the sender's last SDP, the sender answers our 2xx in its ACK), `a=rtcp-mux` in every offer (and in answers when
//! Teams offered it) and SDES keys with the `|2^31` lifetime; with
//! `teams.media_bypass` (`EngineConfig::is_teams_bypass`) also ICE-lite in
//! every SDP we send them (session `a=ice-lite`, `a=ice-ufrag`/`a=ice-pwd`
//! stable for the call, one host candidate per component on the advertised
//! IP and our port) with `MediaLegParams::ice_lite` set so the data plane
//! answers STUN checks; without it no ICE attribute at all. Every datagram
//! is classified (exact trunk address, else [`routing::Router`]) and checked
//! by [`policy::Policy`] (unknown source 403/drop, rate limit and bans)
//! before it is parsed; calls are routed by the router (404/484/reject
//! statuses relayed with a CDR).
//!
//! ## Simulation (`sim`, hidden)
//!
//! `sim::{Sim, Network, NetConfig, SimNode}`: an in-memory network with loss,
//! duplication and random delay, virtual time and a seeded RNG, driving any
//! [`sim::SimNode`]; `sim::ua::SimUa` is a scripted UAC/UAS over the layers
//! above. B2BUA tests implement `SimNode` for their own engine.
#![forbid(unsafe_code)]

pub mod b2bua;
pub mod cdr;
pub mod config;
pub mod dialog;
pub mod digest;
pub mod entropy;
pub mod ha;
pub mod media;
pub mod policy;
pub mod registration;
pub mod routing;
pub mod teams;
pub mod time;
pub mod transaction;
pub mod trunk_policy;

#[doc(hidden)]
pub mod sim;
