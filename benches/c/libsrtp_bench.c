/*
 * libsrtp2 baseline for benches/benches/srtp.rs: times srtp_protect and
 * srtp_unprotect on a 172-byte RTP packet (12-byte header + 160-byte payload),
 * the same workload as the Rust side, and prints ns/packet.
 *
 * usage: libsrtp_bench 80|32 ITERATIONS
 * output: libsrtp suite=80 protect_ns=... unprotect_ns=...
 */
#include <srtp2/srtp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PKT_LEN 172
#define SLOT (PKT_LEN + SRTP_MAX_TRAILER_LEN + 4)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void make_packet(uint8_t *p, uint32_t i)
{
    uint16_t seq = (uint16_t)i;
    uint32_t ts = i * 160u;
    p[0] = 0x80;
    p[1] = 0x00;
    p[2] = (uint8_t)(seq >> 8);
    p[3] = (uint8_t)seq;
    p[4] = (uint8_t)(ts >> 24);
    p[5] = (uint8_t)(ts >> 16);
    p[6] = (uint8_t)(ts >> 8);
    p[7] = (uint8_t)ts;
    p[8] = 0xca;
    p[9] = 0xfe;
    p[10] = 0xba;
    p[11] = 0xbe;
    for (int k = 12; k < PKT_LEN; k++)
        p[k] = (uint8_t)(k * 7);
}

static srtp_t make_session(int suite, srtp_ssrc_type_t dir, uint8_t *key)
{
    srtp_policy_t policy;
    memset(&policy, 0, sizeof(policy));
    if (suite == 32)
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&policy.rtp);
    else
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
    policy.ssrc.type = dir;
    policy.key = key;
    policy.window_size = 128;
    policy.next = NULL;
    srtp_t s;
    if (srtp_create(&s, &policy) != srtp_err_status_ok) {
        fprintf(stderr, "srtp_create failed\n");
        exit(1);
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s 80|32 ITERATIONS\n", argv[0]);
        return 2;
    }
    int suite = atoi(argv[1]);
    long n = atol(argv[2]);
    uint8_t key[30];
    for (int i = 0; i < 30; i++)
        key[i] = (uint8_t)(i * 13 + 1);
    if (srtp_init() != srtp_err_status_ok) {
        fprintf(stderr, "srtp_init failed\n");
        return 1;
    }
    srtp_t tx = make_session(suite, ssrc_any_outbound, key);
    srtp_t rx = make_session(suite, ssrc_any_inbound, key);

    uint8_t *wire = malloc((size_t)n * SLOT);
    int *lens = malloc((size_t)n * sizeof(int));
    uint8_t buf[SLOT];
    if (!wire || !lens)
        return 1;

    /* protect: build the packet (header + payload copy), protect it, keep it */
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        make_packet(buf, (uint32_t)i);
        int len = PKT_LEN;
        if (srtp_protect(tx, buf, &len) != srtp_err_status_ok) {
            fprintf(stderr, "srtp_protect failed at %ld\n", i);
            return 1;
        }
        memcpy(wire + i * SLOT, buf, (size_t)len);
        lens[i] = len;
    }
    double t1 = now_ns();

    /* unprotect: copy the stored SRTP packet into the work buffer, unprotect */
    for (long i = 0; i < n; i++) {
        int len = lens[i];
        memcpy(buf, wire + i * SLOT, (size_t)len);
        if (srtp_unprotect(rx, buf, &len) != srtp_err_status_ok || len != PKT_LEN) {
            fprintf(stderr, "srtp_unprotect failed at %ld\n", i);
            return 1;
        }
    }
    double t2 = now_ns();

    printf("libsrtp suite=%d protect_ns=%.1f unprotect_ns=%.1f\n", suite, (t1 - t0) / (double)n,
           (t2 - t1) / (double)n);
    srtp_dealloc(tx);
    srtp_dealloc(rx);
    srtp_shutdown();
    free(wire);
    free(lens);
    return 0;
}
