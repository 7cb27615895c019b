/*
 * rdmarig's hot loops in C: post, poll and stamp without returning to Python per work request.
 *
 * Loaded with ctypes by rig/rdma/native.py (plain C functions, no Python API). Python creates
 * every verbs object through pyverbs and hands over pointers this file finds in them: the ibv_qp
 * behind a pyverbs QP, and the ibv_send_wr / ibv_recv_wr structs embedded in pyverbs' SendWR /
 * RecvWR objects (already chained through their `next` fields). Nothing here creates or
 * destroys a verbs object.
 *
 * A loop runs until it is done, or until Python must act: a progress tick is due, a stamp array
 * is full, a completion failed, the time limit passed. The loop's state lives in its handle, so
 * calling it again resumes where it returned. Stamps are raw clock readings (the TSC on x86-64:
 * ~30 ns here, ~130 ns in the TCG guest, where clock_gettime costs ~2.7 us on its HPET clock);
 * Python converts them to perf_counter_ns after the run.
 *
 * The structs shared with Python (struct rr_run) are mirrored in native.py; rr_abi() returns
 * their sizes so the loader refuses a mismatched build.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <infiniband/verbs.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#define RR_ABI_VERSION 3

enum rr_status {
    RR_DONE = 0,          /* the loop finished */
    RR_TICK = 1,          /* a progress tick is due: Python calls on_tick and resumes */
    RR_FULL = 2,          /* a stamp array is (nearly) full: Python hands a fresh one and resumes */
    RR_WC_ERROR = 3,      /* a completion with an error status: wc_* and where say which */
    RR_TIMEOUT = 4,       /* nothing completed within timeout_clk: where says what waited */
    RR_POST_FAILED = 5,   /* ibv_post_send / ibv_post_recv returned err */
    RR_POLL_FAILED = 6,   /* ibv_poll_cq returned < 0 */
};

/* where a failure happened */
enum rr_where { RR_SEND_CQ = 0, RR_RECV_CQ = 1, RR_POST_SEND = 2, RR_POST_RECV = 3, RR_WAIT_TARGET = 4 };

/* One run's exchange with Python (mirrored in native.py: class Run). Clock values are raw. */
struct rr_run {
    int64_t *post;            /* one stamp per ibv_post_send call */
    int64_t post_cap, n_post;
    int64_t *comp;            /* one stamp per signaled completion (or per answer: latency) */
    int64_t comp_cap, n_comp;
    int64_t start;            /* clock at the start of the timed loop (set by Python) */
    int64_t timeout_clk;      /* no completion for this long -> RR_TIMEOUT */
    int64_t deadline;         /* clock at which a duration run stops posting; 0 = none */
    int64_t next_tick;        /* clock at which to return RR_TICK; INT64_MAX = never */
    int64_t now;              /* clock at the return */
    int64_t completed;        /* WRs completed (bandwidth) or iterations done (latency) */
    int64_t in_flight;        /* WRs posted and not completed, at the return */
    int64_t received;         /* receives serviced (SEND target) */
    uint64_t wc_wr_id;        /* the failed completion */
    uint32_t wc_status, wc_vendor_err, wc_qp_num;
    int32_t err;              /* errno-style code of a failed call */
    int32_t where;            /* enum rr_where; + 8 * end for ping-pong */
    int32_t seq;              /* ping-pong: the sequence number in flight (1..255) */
};

/* ---- clock ------------------------------------------------------------------------------- */

static inline int64_t rr_now(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return (int64_t)__rdtsc();
#elif defined(__aarch64__)
    int64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
#endif
}

int64_t rr_clock(void) { return rr_now(); }

/* 1: the TSC / counter (Python calibrates it against CLOCK_MONOTONIC), 0: nanoseconds already */
int rr_clock_is_counter(void)
{
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

void rr_abi(int64_t *out)
{
    out[0] = RR_ABI_VERSION;
    out[1] = (int64_t)sizeof(struct rr_run);
    out[2] = (int64_t)sizeof(struct ibv_send_wr);
    out[3] = (int64_t)sizeof(struct ibv_recv_wr);
}

/* ---- finding the verbs structs inside pyverbs objects --------------------------------------- */

/* 1 when n bytes at p can be read: the kernel copies them into a pipe or says EFAULT. */
static int readable(const void *p, size_t n)
{
    int fds[2], ok = 0;
    char sink[512];
    if (!p || n > sizeof(sink) || pipe(fds))
        return 0;
    if (write(fds[1], p, n) == (ssize_t)n)
        ok = read(fds[0], sink, n) == (ssize_t)n;
    close(fds[0]);
    close(fds[1]);
    return ok;
}

/* The ibv_qp a pyverbs QP object points to: the one pointer among the object's words whose
 * target is an RC QP with this number, on a context its send CQ shares. NULL if none. */
void *rr_find_qp(const void *obj, int64_t obj_size, uint32_t qp_num)
{
    const char *base = obj;
    for (int64_t off = 16; off + 8 <= obj_size; off += 8) {
        struct ibv_qp *qp;
        memcpy(&qp, base + off, sizeof(qp));
        if (!qp || ((uintptr_t)qp & 7) || !readable(qp, sizeof(*qp)))
            continue;
        if (qp->qp_num != qp_num || qp->qp_type != IBV_QPT_RC || !qp->context || !qp->send_cq)
            continue;
        if (!readable(qp->context, sizeof(*qp->context)) || !readable(qp->send_cq, sizeof(*qp->send_cq)))
            continue;
        if (qp->send_cq->context == qp->context)
            return qp;
    }
    return NULL;
}

void rr_qp_parts(const struct ibv_qp *qp, void **out)
{
    out[0] = qp->context;
    out[1] = qp->send_cq;
    out[2] = qp->recv_cq;
    out[3] = qp->pd;
}

/* 1 when one of the object's pointer-sized words equals ptr (a pyverbs CQ holds its ibv_cq). */
int rr_holds(const void *obj, int64_t obj_size, const void *ptr)
{
    const char *base = obj;
    for (int64_t off = 16; off + 8 <= obj_size; off += 8) {
        const void *w;
        memcpy(&w, base + off, sizeof(w));
        if (w == ptr)
            return 1;
    }
    return 0;
}

/* Offset of the ibv_send_wr embedded in a pyverbs SendWR object: where wr_id, num_sge, opcode
 * and send_flags all read as given and sg_list points to readable SGEs. -1 if nowhere. */
int64_t rr_find_send_wr(const void *obj, int64_t obj_size, uint64_t wr_id, int32_t num_sge, int32_t opcode,
                        uint32_t send_flags)
{
    const char *base = obj;
    for (int64_t off = 16; off + (int64_t)sizeof(struct ibv_send_wr) <= obj_size; off += 8) {
        struct ibv_send_wr wr;
        memcpy(&wr, base + off, sizeof(wr));
        if (wr.wr_id == wr_id && wr.num_sge == num_sge && (int32_t)wr.opcode == opcode &&
            wr.send_flags == send_flags && num_sge > 0 &&
            readable(wr.sg_list, sizeof(struct ibv_sge) * (size_t)num_sge))
            return off;
    }
    return -1;
}

int64_t rr_find_recv_wr(const void *obj, int64_t obj_size, uint64_t wr_id, int32_t num_sge)
{
    const char *base = obj;
    for (int64_t off = 16; off + (int64_t)sizeof(struct ibv_recv_wr) <= obj_size; off += 8) {
        struct ibv_recv_wr wr;
        memcpy(&wr, base + off, sizeof(wr));
        if (wr.wr_id == wr_id && wr.num_sge == num_sge && num_sge > 0 &&
            readable(wr.sg_list, sizeof(struct ibv_sge) * (size_t)num_sge))
            return off;
    }
    return -1;
}

/* The next WR of a chain (a check that the chain Python built is the one found). */
const void *rr_send_wr_next(const struct ibv_send_wr *wr) { return wr->next; }

/* ---- shared pieces ------------------------------------------------------------------------ */

static int fail_wc(struct rr_run *r, const struct ibv_wc *wc, int where)
{
    r->wc_wr_id = wc->wr_id;
    r->wc_status = wc->status;
    r->wc_vendor_err = wc->vendor_err;
    r->wc_qp_num = wc->qp_num;
    r->where = where;
    return RR_WC_ERROR;
}

static int fail_call(struct rr_run *r, int err, int where)
{
    r->err = err < 0 ? -err : err;
    r->where = where;
    return where == RR_SEND_CQ || where == RR_RECV_CQ ? RR_POLL_FAILED : RR_POST_FAILED;
}

/* A SEND target's receives: poll its CQ, repost each consumed receive on its QP (wr_id >> 32 is
 * the QP index, as rig.rdma.traffic.Receiver numbers them). Returns 0 or a status. */
struct rr_rx {
    struct ibv_qp **qps;
    struct ibv_cq *cq;
    struct ibv_recv_wr **wrs;   /* one per QP */
    int nq;
};

static int rx_service(const struct rr_rx *rx, struct rr_run *r)
{
    struct ibv_wc wc[64];
    struct ibv_recv_wr *bad;
    int n = ibv_poll_cq(rx->cq, 64, wc);
    if (n < 0)
        return fail_call(r, n, RR_RECV_CQ);
    for (int i = 0; i < n; i++) {
        uint64_t q = wc[i].wr_id >> 32;
        if (wc[i].status != IBV_WC_SUCCESS)
            return fail_wc(r, &wc[i], RR_RECV_CQ);
        if (q >= (uint64_t)rx->nq)
            return fail_wc(r, &wc[i], RR_RECV_CQ);
        r->received++;
        int err = ibv_post_recv(rx->qps[q], rx->wrs[q], &bad);
        if (err)
            return fail_call(r, err, RR_POST_RECV);
    }
    return 0;
}

static int rx_init(struct rr_rx *rx, int nq, struct ibv_qp **qps, struct ibv_cq *cq, struct ibv_recv_wr **wrs)
{
    memset(rx, 0, sizeof(*rx));
    if (!cq)
        return 0;
    rx->qps = malloc((size_t)nq * sizeof(void *));
    rx->wrs = malloc((size_t)nq * sizeof(void *));
    if (!rx->qps || !rx->wrs) {
        free(rx->qps);
        free(rx->wrs);
        return -1;
    }
    memcpy(rx->qps, qps, (size_t)nq * sizeof(void *));
    memcpy(rx->wrs, wrs, (size_t)nq * sizeof(void *));
    rx->nq = nq;
    rx->cq = cq;
    return 0;
}

static void rx_free(struct rr_rx *rx)
{
    free(rx->qps);
    free(rx->wrs);
}

/* A SEND target's busy-poll between two looks at its conversation: service the receives for
 * spin_clk clock units. Called through ctypes, which lets go of the interpreter meanwhile, so the
 * other sessions of one `rdmarig serve` process (threads) run while this one spins. */
int rr_rx_spin(int nq, struct ibv_qp **qps, struct ibv_cq *cq, struct ibv_recv_wr **wrs, int64_t spin_clk,
               struct rr_run *r)
{
    const struct rr_rx rx = {qps, cq, wrs, nq};
    int64_t until = rr_now() + spin_clk;
    do {
        int status = rx_service(&rx, r);
        if (status)
            return status;
    } while (rr_now() < until);
    return 0;
}

/* ---- bandwidth loop --------------------------------------------------------------------------
 * As rig.rdma.traffic._bw_loop: per QP, post chains of post_list WRs while fewer than tx_depth are
 * in flight (every chains_per_signal-th chain is the signaled one), stamp each post call; poll
 * the send CQ in batches, stamp each poll that returned completions (one stamp per completion);
 * every empty_check-th empty poll read the clock for the time limit; at the deadline stop each
 * QP at its next signaled WR. A SEND target's receives are reposted by a thread of its own. */

#define POLL_MAX 256

struct rr_bw {
    int nq, post_list, mod, depth, batch, empty_check;
    struct ibv_qp **qps;
    struct ibv_cq *cq;
    struct ibv_send_wr **plain, **sig;      /* chain heads per QP (structs inside pyverbs SendWRs) */
    struct rr_rx rx;                         /* rx.cq NULL: no SEND target to service */
    int64_t *posted, *target, *chains, *outstanding;
    int64_t last_progress, empty;
    int begun, finished;
    /* A SEND target's receives are serviced by a thread of their own, as ib_send_bw's server
     * is a process of its own (inline, in this loop, when the thread cannot start). */
    pthread_t rx_tid;
    int rx_threaded, rx_nap;                 /* rx_nap: deep receive queue, nap on an empty poll */
    atomic_int rx_stop, rx_status;           /* rx_status: the thread's failure, details in rx_run */
    struct rr_run rx_run;                    /* the thread's own: received count, failure fields */
};

#define RX_NAP_NS 20000          /* a receiver with >= RX_NAP_DEPTH receives posted naps this long */
#define RX_NAP_DEPTH 64          /* when its CQ is empty (64 x ~25 us per 64 B SEND under TCG) */

static void *bw_receiver(void *arg)
{
    struct rr_bw *h = arg;
    const struct timespec nap = {0, RX_NAP_NS};
    while (!atomic_load_explicit(&h->rx_stop, memory_order_relaxed)) {
        int64_t before = h->rx_run.received;
        int status = rx_service(&h->rx, &h->rx_run);
        if (status) {
            atomic_store_explicit(&h->rx_status, status, memory_order_release);
            break;
        }
        if (h->rx_nap && h->rx_run.received == before)
            nanosleep(&nap, NULL);
    }
    return NULL;
}

/* Stop and join the receiver thread, then reap what it left (counts final, receives reposted). */
static int bw_receiver_stop(struct rr_bw *h)
{
    if (h->rx_threaded) {
        atomic_store_explicit(&h->rx_stop, 1, memory_order_relaxed);
        pthread_join(h->rx_tid, NULL);
        h->rx_threaded = 0;
        int status = atomic_load_explicit(&h->rx_status, memory_order_acquire);
        if (status)
            return status;
    }
    if (!h->rx.cq)
        return 0;
    for (;;) {
        int64_t before = h->rx_run.received;
        int status = rx_service(&h->rx, &h->rx_run);
        if (status || h->rx_run.received == before)
            return status;
    }
}

/* The receiver's failure as this run's return. */
static int bw_receiver_failed(struct rr_bw *h, struct rr_run *r, int status)
{
    r->wc_wr_id = h->rx_run.wc_wr_id;
    r->wc_status = h->rx_run.wc_status;
    r->wc_vendor_err = h->rx_run.wc_vendor_err;
    r->wc_qp_num = h->rx_run.wc_qp_num;
    r->err = h->rx_run.err;
    r->where = h->rx_run.where;
    r->received = h->rx_run.received;
    return status;
}

void rr_bw_free(struct rr_bw *h)
{
    if (!h)
        return;
    bw_receiver_stop(h);
    free(h->qps); free(h->plain); free(h->sig); free(h->posted); free(h->target); free(h->chains);
    free(h->outstanding); rx_free(&h->rx); free(h);
}

void *rr_bw_new(int nq, int post_list, int mod, int depth, int batch, int empty_check, int64_t per_qp,
                struct ibv_qp **qps, struct ibv_cq *cq, struct ibv_send_wr **plain, struct ibv_send_wr **sig,
                struct ibv_qp **rx_qps, struct ibv_cq *rx_cq, struct ibv_recv_wr **rx_wrs, int rx_depth)
{
    if (nq < 1 || post_list < 1 || mod < post_list || batch < 1 || batch > POLL_MAX)
        return NULL;
    struct rr_bw *h = calloc(1, sizeof(*h));
    size_t ptrs = (size_t)nq * sizeof(void *);
    if (!h)
        return NULL;
    h->nq = nq; h->post_list = post_list; h->mod = mod; h->depth = depth; h->batch = batch;
    h->empty_check = empty_check > 0 ? empty_check : 1;
    h->cq = cq;
    h->qps = malloc(ptrs); h->plain = malloc(ptrs); h->sig = malloc(ptrs);
    h->posted = calloc(nq, sizeof(int64_t)); h->target = calloc(nq, sizeof(int64_t));
    h->chains = calloc(nq, sizeof(int64_t)); h->outstanding = calloc(nq, sizeof(int64_t));
    if (!h->qps || !h->plain || !h->sig || !h->posted || !h->target || !h->chains || !h->outstanding ||
        rx_init(&h->rx, nq, rx_qps, rx_cq, rx_wrs)) {
        rr_bw_free(h);
        return NULL;
    }
    memcpy(h->qps, qps, ptrs);
    memcpy(h->plain, plain, ptrs);
    memcpy(h->sig, sig, ptrs);
    for (int q = 0; q < nq; q++)
        h->target[q] = per_qp;
    h->rx_nap = rx_depth >= RX_NAP_DEPTH;
    return h;
}

static int64_t bw_in_flight(const struct rr_bw *h)
{
    int64_t n = 0;
    for (int q = 0; q < h->nq; q++)
        n += h->outstanding[q];
    return n;
}

static int bw_done(const struct rr_bw *h)
{
    for (int q = 0; q < h->nq; q++)
        if (h->posted[q] != h->target[q] || h->outstanding[q])
            return 0;
    return 1;
}

/* Room for every stamp the rest of the run can write in this round (near the end of an
 * iterations run, less than the general bound). */
static int bw_room(const struct rr_bw *h, const struct rr_run *r)
{
    int64_t posts = 0, comps = 0;
    for (int q = 0; q < h->nq; q++) {
        int64_t left = h->target[q] - h->posted[q];
        int64_t can = (h->depth - h->outstanding[q]) / h->post_list;
        posts += left / h->post_list < can ? left / h->post_list : can;
        comps += (left + h->outstanding[q]) / h->mod + 1;
    }
    return r->post_cap - r->n_post >= posts && r->comp_cap - r->n_comp >= (comps < h->batch ? comps : h->batch);
}

int rr_bw_run(struct rr_bw *h, struct rr_run *r)
{
    struct ibv_wc wc[POLL_MAX];
    struct ibv_send_wr *bad;
    const int pl = h->post_list, mod = h->mod, depth = h->depth, cps = mod / pl;
    const int64_t most_posts = (int64_t)h->nq * (depth / pl + 1);
    int status;

    if (!h->begun) {
        h->begun = 1;
        h->last_progress = r->start;
        h->rx_threaded = h->rx.cq && pthread_create(&h->rx_tid, NULL, bw_receiver, h) == 0;
    }
    if (h->finished) {
        r->in_flight = 0;
        if ((status = bw_receiver_stop(h)))
            return bw_receiver_failed(h, r, status);
        r->received = h->rx_run.received;
        return RR_DONE;
    }
    for (;;) {
        int64_t t;
        if ((r->post_cap - r->n_post < most_posts || r->comp_cap - r->n_comp < h->batch) && !bw_room(h, r)) {
            r->in_flight = bw_in_flight(h);
            return RR_FULL;
        }
        for (int q = 0; q < h->nq; q++) {
            struct ibv_qp *qp = h->qps[q];
            while (h->posted[q] < h->target[q] && h->outstanding[q] + pl <= depth) {
                int64_t c = h->chains[q] + 1;
                struct ibv_send_wr *wr = c % cps == 0 ? h->sig[q] : h->plain[q];
                int err;
                r->post[r->n_post++] = rr_now();
                err = ibv_post_send(qp, wr, &bad);
                if (err) {
                    r->in_flight = bw_in_flight(h);
                    return fail_call(r, err, RR_POST_SEND);
                }
                h->chains[q] = c;
                h->posted[q] += pl;
                h->outstanding[q] += pl;
            }
        }
        int n = ibv_poll_cq(h->cq, h->batch, wc);
        if (n < 0)
            return fail_call(r, n, RR_SEND_CQ);
        if (h->rx_threaded) {
            if ((status = atomic_load_explicit(&h->rx_status, memory_order_acquire))) {
                r->in_flight = bw_in_flight(h);
                bw_receiver_stop(h);
                return bw_receiver_failed(h, r, status);
            }
        } else if (h->rx.cq && (status = rx_service(&h->rx, &h->rx_run))) {
            r->in_flight = bw_in_flight(h);
            return bw_receiver_failed(h, r, status);
        }
        if (n) {
            t = rr_now();
            for (int i = 0; i < n; i++) {
                uint64_t q = wc[i].wr_id >> 32;
                if (wc[i].status != IBV_WC_SUCCESS || q >= (uint64_t)h->nq) {
                    r->in_flight = bw_in_flight(h);
                    return fail_wc(r, &wc[i], RR_SEND_CQ);
                }
                h->outstanding[q] -= mod;
                r->comp[r->n_comp++] = t;
            }
            r->completed += (int64_t)n * mod;
            h->last_progress = t;
            h->empty = 0;
        } else {
            if (++h->empty < h->empty_check)
                continue;
            h->empty = 0;
            t = rr_now();
            if (t - h->last_progress > r->timeout_clk) {
                r->now = t;
                r->in_flight = bw_in_flight(h);
                r->where = RR_SEND_CQ;
                return RR_TIMEOUT;
            }
        }
        if (r->deadline && t >= r->deadline) {
            r->deadline = 0;
            /* stop at the next signaled WR of every QP, so every posted WR is accounted for */
            for (int q = 0; q < h->nq; q++)
                h->target[q] = (h->posted[q] + mod - 1) / mod * mod;
        }
        int done = bw_done(h);
        if (t >= r->next_tick) {
            r->now = t;
            r->in_flight = bw_in_flight(h);
            h->finished = done;
            return RR_TICK;
        }
        if (done) {
            r->in_flight = 0;
            h->finished = 1;
            if ((status = bw_receiver_stop(h)))
                return bw_receiver_failed(h, r, status);
            r->received = h->rx_run.received;
            return RR_DONE;
        }
    }
}

/* ---- latency: one signaled WR in flight, post to completion ------------------------------------
 * As rig.rdma.traffic._latency_loop: stamp, post, busy-poll one completion (every 1024 empty
 * polls: time limit and tick), stamp; service a SEND target's receive outside the timed span. */

struct rr_lat {
    struct ibv_qp *qp;
    struct ibv_cq *cq;
    struct ibv_send_wr *wr;
    struct rr_rx rx;
    int64_t t0;
    int waiting;
};

void rr_lat_free(struct rr_lat *h)
{
    if (h)
        rx_free(&h->rx);
    free(h);
}

void *rr_lat_new(struct ibv_qp *qp, struct ibv_cq *cq, struct ibv_send_wr *wr, int rx_nq, struct ibv_qp **rx_qps,
                 struct ibv_cq *rx_cq, struct ibv_recv_wr **rx_wrs)
{
    struct rr_lat *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->qp = qp; h->cq = cq; h->wr = wr;
    if (rx_init(&h->rx, rx_nq, rx_qps, rx_cq, rx_wrs)) {
        free(h);
        return NULL;
    }
    return h;
}

int rr_lat_run(struct rr_lat *h, struct rr_run *r)
{
    struct ibv_wc wc;
    struct ibv_send_wr *bad;
    int status;
    while (r->n_post < r->post_cap) {
        int64_t spins = 0, t1;
        int n;
        if (!h->waiting) {
            h->t0 = rr_now();
            int err = ibv_post_send(h->qp, h->wr, &bad);
            if (err)
                return fail_call(r, err, RR_POST_SEND);
            h->waiting = 1;
        }
        for (;;) {
            n = ibv_poll_cq(h->cq, 1, &wc);
            if (n)
                break;
            if (!(++spins & 1023)) {
                int64_t t = rr_now();
                if (t - h->t0 > r->timeout_clk) {
                    r->now = t;
                    r->where = RR_SEND_CQ;
                    return RR_TIMEOUT;
                }
                if (t >= r->next_tick) {      /* resumes inside this wait */
                    r->now = t;
                    return RR_TICK;
                }
            }
        }
        if (n < 0)
            return fail_call(r, n, RR_SEND_CQ);
        t1 = rr_now();
        h->waiting = 0;
        if (wc.status != IBV_WC_SUCCESS)
            return fail_wc(r, &wc, RR_SEND_CQ);
        r->post[r->n_post++] = h->t0;
        r->comp[r->n_comp++] = t1;
        r->completed++;
        if (h->rx.cq && (status = rx_service(&h->rx, r)))
            return status;
        if (r->deadline && t1 >= r->deadline)
            return RR_DONE;
        if (t1 >= r->next_tick && r->n_post < r->post_cap) {
            r->now = t1;
            return RR_TICK;
        }
    }
    return RR_DONE;
}

/* ---- ping-pong: two ends, each in its own thread ------------------------------------------------
 * As rig.flows.pingpong.PingPong.loop, with B (the responder) in a thread of its own, as
 * ib_write_lat / ib_send_lat run each end in its own process: A stamps, posts its message and
 * waits for the answer, stamps; B waits for each message and answers at once. WRITE: the
 * message's last byte carries the sequence number 1..255 and the receiver spins on its target's
 * last byte. SEND: the receiver polls its receive CQ and reposts the receive at once. Every WR is
 * signaled; each end reaps its own send completions after each message and every 1024 spins while
 * it waits (where a failed send shows up). A failure in B stops B; A returns it as its own. */

struct rr_pp_end {
    struct ibv_qp *qp;
    struct ibv_cq *send_cq, *recv_cq;
    struct ibv_send_wr *wr;
    struct ibv_recv_wr *rwr;        /* SEND: the one receive */
    volatile uint8_t *seq_src, *seq_dst;
    int64_t in_flight, depth;
};

struct rr_pp {
    struct rr_pp_end end[2];
    int sends;
    pthread_t responder;
    int running;                    /* the responder thread exists (joined when it stops) */
    atomic_int stop;                /* A -> B: no more messages */
    atomic_int b_status;            /* B -> A: B's failure status (its details in b_run) */
    struct rr_run b_run;
    uint8_t b_seq;                  /* the last sequence number B answered */
};

/* reap an end's send completions once (16 at most) */
static int pp_reap(struct rr_pp_end *e, int k, struct rr_run *r)
{
    struct ibv_wc wc[16];
    int n = ibv_poll_cq(e->send_cq, 16, wc);
    if (n < 0)
        return fail_call(r, n, RR_SEND_CQ + 8 * k);
    for (int i = 0; i < n; i++)
        if (wc[i].status != IBV_WC_SUCCESS)
            return fail_wc(r, &wc[i], RR_SEND_CQ + 8 * k);
    e->in_flight -= n;
    return 0;
}

static int pp_post(struct rr_pp *h, int k, struct rr_run *r)
{
    struct rr_pp_end *e = &h->end[k];
    struct ibv_send_wr *bad;
    int status;
    if (e->in_flight >= e->depth) {       /* the send queue is full: wait for one completion */
        int64_t t0 = rr_now();
        while (e->in_flight >= e->depth) {
            if ((status = pp_reap(e, k, r)))
                return status;
            if (rr_now() - t0 > r->timeout_clk) {
                r->where = RR_SEND_CQ + 8 * k;
                return RR_TIMEOUT;
            }
        }
    }
    int err = ibv_post_send(e->qp, e->wr, &bad);
    if (err)
        return fail_call(r, err, RR_POST_SEND + 8 * k);
    e->in_flight++;
    return 0;
}

/* 1 when end k's message `seq` arrived (SEND: its receive is posted again), 0 when not yet,
 * or a status (< 0 never; statuses are > 1 here) */
static int pp_arrived(struct rr_pp *h, int k, uint8_t seq, struct rr_run *r)
{
    struct rr_pp_end *e = &h->end[k];
    if (!h->sends)
        return *e->seq_dst == seq;
    struct ibv_wc wc;
    struct ibv_recv_wr *bad;
    int n = ibv_poll_cq(e->recv_cq, 1, &wc);
    if (n < 0)
        return fail_call(r, n, RR_RECV_CQ + 8 * k);
    if (!n)
        return 0;
    if (wc.status != IBV_WC_SUCCESS)
        return fail_wc(r, &wc, RR_RECV_CQ + 8 * k);
    int err = ibv_post_recv(e->qp, e->rwr, &bad);
    return err ? fail_call(r, err, RR_POST_RECV + 8 * k) : 1;
}

#define ARRIVED 1
#define STOPPED (-1)

static void *pp_responder(void *arg)
{
    struct rr_pp *h = arg;
    struct rr_run *r = &h->b_run;
    int status = 0;
    uint8_t seq = h->b_seq;
    while (!status) {
        int64_t spins = 0;
        seq = (uint8_t)(seq % 255 + 1);
        for (;;) {
            int got = pp_arrived(h, 1, seq, r);
            if (got == ARRIVED)
                break;
            if (got) {
                status = got;
                break;
            }
            if (atomic_load_explicit(&h->stop, memory_order_relaxed)) {
                status = STOPPED;
                break;
            }
            if (!(++spins & 1023) && (status = pp_reap(&h->end[1], 1, r)))
                break;
        }
        if (status)
            break;
        *h->end[1].seq_src = seq;
        if ((status = pp_post(h, 1, r)) || (status = pp_reap(&h->end[1], 1, r)))
            break;
        h->b_seq = seq;
    }
    if (status != STOPPED)
        atomic_store(&h->b_status, status);
    return NULL;
}

static void pp_stop(struct rr_pp *h)
{
    if (!h->running)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->responder, NULL);
    h->running = 0;
}

/* B's failure, when there is one, as A's return (B stopped first) */
static int pp_b_failed(struct rr_pp *h, struct rr_run *r)
{
    if (!atomic_load(&h->b_status))
        return 0;
    pp_stop(h);
    r->wc_wr_id = h->b_run.wc_wr_id;
    r->wc_status = h->b_run.wc_status;
    r->wc_vendor_err = h->b_run.wc_vendor_err;
    r->wc_qp_num = h->b_run.wc_qp_num;
    r->err = h->b_run.err;
    r->where = h->b_run.where;
    return atomic_load(&h->b_status);
}

void rr_pp_free(struct rr_pp *h)
{
    if (h)
        pp_stop(h);
    free(h);
}

void *rr_pp_new(int sends, struct ibv_qp **qps, struct ibv_send_wr **wrs, struct ibv_recv_wr **rwrs,
                uint8_t **seq_src, uint8_t **seq_dst, int64_t *in_flight, int64_t *depth)
{
    struct rr_pp *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->sends = sends;
    for (int k = 0; k < 2; k++) {
        struct rr_pp_end *e = &h->end[k];
        e->qp = qps[k];
        e->send_cq = qps[k]->send_cq;
        e->recv_cq = qps[k]->recv_cq;
        e->wr = wrs[k];
        e->rwr = rwrs ? rwrs[k] : NULL;
        e->seq_src = seq_src[k];
        e->seq_dst = seq_dst[k];
        e->in_flight = in_flight[k];
        e->depth = depth[k];
    }
    return h;
}

/* the ends' in-flight counts (stops the responder first, so they are final) */
void rr_pp_in_flight(struct rr_pp *h, int64_t *out)
{
    pp_stop(h);
    out[0] = h->end[0].in_flight;
    out[1] = h->end[1].in_flight;
}

/* A stops here (except for a tick): B is stopped and joined; when A finished or timed out while
 * B had failed, B's failure is the one to report. */
static int pp_finish(struct rr_pp *h, struct rr_run *r, int status)
{
    if (status == RR_TICK)
        return status;
    pp_stop(h);
    if (status == RR_DONE || status == RR_TIMEOUT) {
        int b = pp_b_failed(h, r);
        if (b)
            return b;
    }
    return status;
}

int rr_pp_run(struct rr_pp *h, struct rr_run *r)
{
    int status;
    if (!h->running) {
        h->b_seq = (uint8_t)r->seq;
        h->b_run.timeout_clk = r->timeout_clk;
        atomic_store(&h->stop, 0);
        atomic_store(&h->b_status, 0);
        int err = pthread_create(&h->responder, NULL, pp_responder, h);
        if (err)
            return fail_call(r, err, RR_POST_SEND + 8);
        h->running = 1;
    }
    while (r->n_post < r->post_cap) {
        uint8_t seq = (uint8_t)(r->seq % 255 + 1);     /* 1..255: never the zeroed target's 0 */
        int64_t spins = 0, waited = 0;
        r->seq = seq;
        *h->end[0].seq_src = seq;
        int64_t t0 = rr_now();
        if ((status = pp_post(h, 0, r)))
            return pp_finish(h, r, status);
        for (;;) {
            int got = pp_arrived(h, 0, seq, r);
            if (got == ARRIVED)
                break;
            if (got)
                return pp_finish(h, r, got);
            if (!(++spins & 1023)) {
                if ((status = pp_reap(&h->end[0], 0, r)) || (status = pp_b_failed(h, r)))
                    return pp_finish(h, r, status);
                int64_t t = rr_now();
                waited = waited ? waited : t;
                if (t - waited > r->timeout_clk) {
                    r->where = (h->sends ? RR_RECV_CQ : RR_WAIT_TARGET);
                    return pp_finish(h, r, RR_TIMEOUT);
                }
            }
        }
        int64_t t1 = rr_now();
        r->post[r->n_post++] = t0;
        r->comp[r->n_comp++] = t1;
        r->completed++;
        if ((status = pp_reap(&h->end[0], 0, r)))
            return pp_finish(h, r, status);
        if (r->deadline && t1 >= r->deadline)
            break;
        if (t1 >= r->next_tick && r->n_post < r->post_cap) {
            r->now = t1;
            return RR_TICK;
        }
    }
    return pp_finish(h, r, RR_DONE);
}

/* ---- the loop's own cost: a device that does nothing ---------------------------------------------
 * A context whose post_send only notes each signaled WR and whose poll_cq hands those back at
 * once, with a QP and CQ on it: rr_bw_run over it costs what the loop itself costs per WR (post
 * call, stamps, poll call, bookkeeping) with no device work. */

#define NULL_QPS 64

struct null_dev {
    struct ibv_context ctx;
    struct ibv_cq cq;
    struct ibv_qp qp[NULL_QPS];
    struct ibv_send_wr *wrs;      /* per QP: a plain chain, then a signaled one, post_list WRs each */
    struct ibv_sge sge;
    int post_list;
    uint64_t *ring;          /* signaled wr_ids not polled yet */
    uint32_t *ring_qpn;
    int64_t head, tail, size;
};

static struct null_dev *null_of(struct ibv_context *ctx) { return (struct null_dev *)ctx; }

void rr_null_free(struct null_dev *d)
{
    if (!d)
        return;
    free(d->ring);
    free(d->ring_qpn);
    free(d->wrs);
    free(d);
}

static int null_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
    struct null_dev *d = null_of(qp->context);
    for (; wr; wr = wr->next) {
        if (!(wr->send_flags & IBV_SEND_SIGNALED))
            continue;
        if (d->tail - d->head >= d->size) {
            *bad = wr;
            return ENOMEM;
        }
        d->ring[d->tail % d->size] = wr->wr_id;
        d->ring_qpn[d->tail % d->size] = qp->qp_num;
        d->tail++;
    }
    return 0;
}

static int null_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
    struct null_dev *d = null_of(cq->context);
    int i = 0;
    for (; i < n && d->head < d->tail; i++, d->head++) {
        memset(&wc[i], 0, sizeof(wc[i]));
        wc[i].wr_id = d->ring[d->head % d->size];
        wc[i].qp_num = d->ring_qpn[d->head % d->size];
        wc[i].status = IBV_WC_SUCCESS;
    }
    return i;
}

void *rr_null_new(int nq, int post_list, int64_t ring)
{
    struct null_dev *d = calloc(1, sizeof(*d));
    if (!d || nq < 1 || nq > NULL_QPS || post_list < 1)
        goto fail;
    d->size = ring;
    d->post_list = post_list;
    d->ring = calloc(ring, sizeof(uint64_t));
    d->ring_qpn = calloc(ring, sizeof(uint32_t));
    d->wrs = calloc((size_t)nq * 2 * post_list, sizeof(struct ibv_send_wr));
    if (!d->ring || !d->ring_qpn || !d->wrs)
        goto fail;
    for (int q = 0; q < nq; q++)
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < post_list; i++) {
                struct ibv_send_wr *wr = &d->wrs[((size_t)q * 2 + s) * post_list + i];
                wr->wr_id = (uint64_t)q << 32 | (uint64_t)i;
                wr->next = i + 1 < post_list ? wr + 1 : NULL;
                wr->sg_list = &d->sge;
                wr->num_sge = 1;
                wr->opcode = IBV_WR_RDMA_WRITE;
                wr->send_flags = s && i + 1 == post_list ? IBV_SEND_SIGNALED : 0;
            }
    d->ctx.ops.post_send = null_post_send;
    d->ctx.ops.poll_cq = null_poll_cq;
    d->cq.context = &d->ctx;
    for (int q = 0; q < nq; q++) {
        d->qp[q].context = &d->ctx;
        d->qp[q].send_cq = d->qp[q].recv_cq = &d->cq;
        d->qp[q].qp_num = 0x100 + q;
        d->qp[q].qp_type = IBV_QPT_RC;
    }
    return d;
fail:
    rr_null_free(d);
    return NULL;
}

void *rr_null_qp(struct null_dev *d, int q) { return &d->qp[q]; }
void *rr_null_cq(struct null_dev *d) { return &d->cq; }
void *rr_null_chain(struct null_dev *d, int q, int signaled)
{
    return &d->wrs[((size_t)q * 2 + (signaled ? 1 : 0)) * d->post_list];
}
