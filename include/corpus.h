/* corpus.h - the library of `qid corpus` (cmd_corpus.c): training,
 * evaluation and calibration token sets (hdf5-schema/tokens.md) from a
 * seeded synthetic language whose entropy rate is known exactly (corpus.c),
 * or from the bytes of a text file, written all three or none
 * (corpus_write.c).
 *
 * The synthetic source ("markov-zipf", version 1) is an interpolated order-k
 * Markov chain over a vocabulary of V tokens, built from a seed:
 *
 *   P(x | c) = w_0 P_0(x) + sum_{j=1..k} w_j P_j(x | last j tokens of c)
 *
 * - P_0, the unigram "popularity" distribution: Zipf(s) over a seeded random
 *   permutation of the ids, P_0(x) = rank(x)^-s / sum_{r=1..V} r^-s.
 * - P_j (j = 1..k), sparse: every j-gram context c has b successors drawn
 *   without replacement with probabilities proportional to P_0 (popular
 *   tokens are popular successors); the r-th drawn gets weight
 *   r^-s / sum_{q=1..b} q^-s. The successor sets of different orders are
 *   drawn independently, so the order-j tables hold knowledge that the
 *   lower orders do not: a learner meets the unigram, then the V bigram
 *   contexts, then the V^k top-order contexts, each in order of frequency.
 * - w_0..w_k: --mix weights (normalised to sum 1). With w_0 > 0 every token
 *   follows every context with positive probability, so the chain over the
 *   V^k contexts is irreducible and aperiodic by construction; with w_0 = 0
 *   both are checked on the graph and a chain failing either is refused.
 *
 * The stationary distribution pi over contexts is computed by power
 * iteration on the sparse structure until it stops changing (pi P = pi to
 * about 1e-15 in L1), and the entropy rate exactly, as a finite sum:
 * H = sum_c pi(c) H(P(. | c)). Also exact: the conditional entropies
 * h_i = H(X_t | i previous tokens) for i = 0..k (h_0 what the best unigram
 * model scores, h_1 the best bigram model, h_k = H), from the marginals of
 * pi over the last i + 1 tokens.
 *
 * Streams: stream s (1 train, 2 eval, 3 calibration) draws from its own
 * generator (rng.h: seed, stream), starts with k tokens drawn from pi (so
 * every position of the stream is stationary), then samples each token
 * from P(. | last k tokens) with two uniforms: the component j by the
 * cumulative mix weights, then the rank (or, for j = 0, the token) by
 * binary search in a cumulative table.
 *
 * Writing: the streams (or the byte ranges of the text file) are staged as
 * raw files in DIR/.corpus.tmp.<pid>/ and imported there with the token-set
 * writer (qid_tokens_import), the corpus attributes are added, and only when
 * all three files are complete are they renamed into DIR. On any error no
 * output and nothing staged remain.
 *
 * Does not: model long-range structure beyond k tokens, tokenize text (the
 * text mode is byte-level, vocabulary 256), shuffle, or write files with
 * the MPI-IO driver. Nothing here is collective. */
#ifndef QID_CORPUS_H
#define QID_CORPUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "rng.h"

#define QID_CORPUS_GENERATOR      "markov-zipf"
#define QID_CORPUS_GENERATOR_TEXT "text-bytes"
#define QID_CORPUS_VERSION        1
#define QID_CORPUS_MAX_ORDER      4
#define QID_CORPUS_MAX_VOCAB      65536
/* Largest number of top-order contexts V^k (pi is V^k doubles). */
#define QID_CORPUS_MAX_CONTEXTS ((size_t)1 << 22)
/* Largest number of successor entries b * (V + V^2 + ... + V^k) (uint16 each). */
#define QID_CORPUS_MAX_ENTRIES ((size_t)1 << 26)
#define QID_CORPUS_MAX_ZIPF    8.0

/* Stream ids, one per output part. */
enum { QID_CORPUS_TRAIN = 1, QID_CORPUS_EVAL = 2, QID_CORPUS_CALIB = 3 };

/* The parameters of the synthetic source. mix[0..order] are the weights as
 * given (non-negative, not all zero); the source normalises them. */
typedef struct qid_corpus_params {
    int64_t vocab;     /* V, 2..QID_CORPUS_MAX_VOCAB */
    int order;         /* k, 1..QID_CORPUS_MAX_ORDER */
    int64_t branching; /* b, 1..V */
    double zipf;       /* s, 0..QID_CORPUS_MAX_ZIPF */
    double mix[QID_CORPUS_MAX_ORDER + 1];
    uint64_t seed; /* 0..INT64_MAX (stored as an int64 attribute) */
} qid_corpus_params;

/* The demo's defaults: V 128, k 2, b 8, s 1, mix 0.05,0.55,0.4, seed 1. */
void qid_corpus_params_default(qid_corpus_params *p);

/* The default mix for an order k: w_0 = 0.05, w_k = 0.4 and 0.55 shared
 * equally by orders 1..k-1 (k = 1: 0.05, 0.95). */
void qid_corpus_default_mix(int order, double mix[QID_CORPUS_MAX_ORDER + 1]);

/* Checks ranges and sizes (V^k contexts, successor entries). QID_OK, or
 * QID_E_INVALID with one line naming the option and the limit. */
int qid_corpus_params_check(const qid_corpus_params *p, qid_error *err);

/* The parameters as the options that rebuild the source, e.g.
 * "--vocab 128 --order 2 --branching 8 --zipf 1 --mix 0.05,0.55,0.4 --seed 1"
 * (doubles as qid_format_real writes them: the shortest text that reads
 * back, 100 not 1e+02). Truncated to len. */
void qid_corpus_params_format(const qid_corpus_params *p, char *buf, size_t len);

/* A built source. Read-only after qid_corpus_source_build; any number of
 * streams may draw from it. */
typedef struct qid_corpus_source {
    qid_corpus_params p;
    size_t V, b;
    int k;
    size_t n_ctx;                             /* V^k */
    size_t pow[QID_CORPUS_MAX_ORDER + 1];     /* pow[j] = V^j */
    double w[QID_CORPUS_MAX_ORDER + 1];       /* normalised mix */
    double w_cdf[QID_CORPUS_MAX_ORDER + 1];   /* cumulative w, w_cdf[k] = 1 */
    double *p0;                               /* [V] unigram component */
    double *p0_cdf;                           /* [V] cumulative p0 */
    double *rank_w;                           /* [b] Zipf weights of successor ranks */
    double *rank_cdf;                         /* [b] cumulative rank_w */
    uint16_t *succ[QID_CORPUS_MAX_ORDER + 1]; /* succ[j]: [V^j][b] successor ids, j = 1..k */
    double *pi;                               /* [V^k] stationary distribution over contexts */
    double *pi_cdf;                           /* [V^k] cumulative pi (initial contexts) */
    int iterations;                           /* of the power iteration */
    double residual;                          /* |pi P - pi|_1 at the end */
    double h[QID_CORPUS_MAX_ORDER + 1];       /* h[i] = H(X_t | i previous tokens), nats */
    double entropy_rate;                      /* h[k], nats per token */
} qid_corpus_source;

/* Builds the tables, the stationary distribution and the entropies. Time
 * O(iterations * V^k * k * b), memory about 16 V^k + 2 b (V + ... + V^k)
 * bytes. Returns QID_OK, or QID_E_INVALID (bad parameters; a chain that is
 * not irreducible or not aperiodic, which needs w_0 = 0) or QID_E_NUMERIC
 * (the power iteration did not converge), with src left freeable. */
int qid_corpus_source_build(const qid_corpus_params *p, qid_corpus_source *src, qid_error *err);

void qid_corpus_source_free(qid_corpus_source *src);

/* The exact probability P(x | ctx) (ctx in [0, V^k), most recent token the
 * last digit in base V: ctx = sum_i x_{t-k+i} V^(k-i)). */
double qid_corpus_prob(const qid_corpus_source *src, size_t ctx, uint32_t x);

/* The context after ctx when x follows: (ctx * V + x) mod V^k. */
size_t qid_corpus_next_ctx(const qid_corpus_source *src, size_t ctx, uint32_t x);

/* The expected loss of a perfect model on windows of seq_len tokens scored
 * as qid eval scores them (every predicted token: token i from the i before
 * it, i = 1..seq_len-1): mean of h[min(i, k)]. seq_len >= 2. */
double qid_corpus_loss_floor(const qid_corpus_source *src, int64_t seq_len);

/* One stream of tokens. */
typedef struct qid_corpus_stream {
    const qid_corpus_source *src;
    qid_rng rng;
    size_t ctx;     /* the last k tokens */
    size_t pending; /* tokens of the initial context not yet emitted */
} qid_corpus_stream;

/* Seeds stream `stream` of src (rng.h: the source's seed, this stream id;
 * stream 0 is the one the tables were drawn from) and draws its initial
 * context from pi. */
void qid_corpus_stream_init(qid_corpus_stream *s, const qid_corpus_source *src, uint64_t stream);

/* Writes the next n tokens of the stream to out (ids < V). The first k
 * tokens of a stream are its initial context. */
void qid_corpus_generate(qid_corpus_stream *s, uint16_t *out, size_t n);

/* ---- writing token sets ------------------------------------------------- */

typedef struct qid_corpus_write_opts {
    const char *outdir; /* created when missing (one level) */
    int64_t seq_len;    /* window length, 2..QID_TOKENS_MAX_SEQ_LEN */
    int force;          /* replace existing train/eval/calib.h5 */
    /* synthetic: tokens per part, rounded up to whole windows (>= 1) */
    int64_t tokens[4]; /* indexed by QID_CORPUS_TRAIN .. QID_CORPUS_CALIB */
    /* text: the file and the fractions of its windows for eval and calib */
    const char *text;
    double eval_frac, calib_frac;
} qid_corpus_write_opts;

/* What was written, per part (index QID_CORPUS_TRAIN .. QID_CORPUS_CALIB). */
typedef struct qid_corpus_written {
    char path[4][1100];
    int64_t windows[4];
    int64_t offset[4], bytes[4]; /* text: the byte range of the file */
    double generate_seconds;     /* synthetic: time spent sampling */
} qid_corpus_written;

/* Names of the parts: "train", "eval", "calib". */
const char *qid_corpus_part_name(int part);

/* Splits a text of n bytes into windows of seq_len: W = n / seq_len windows,
 * eval round(eval_frac W), calib round(calib_frac W), train the rest; the
 * parts are the contiguous byte ranges train | eval | calib, the last one
 * running to the end of the file (its tail shorter than a window is dropped
 * by the token-set writer). offset/bytes are indexed by part. QID_OK, or
 * QID_E_INVALID when a part would get no window. */
int qid_corpus_split_text(uint64_t n, int64_t seq_len, double eval_frac, double calib_frac, int64_t offset[4],
                          int64_t bytes[4], qid_error *err);

/* Writes DIR/train.h5, DIR/eval.h5 and DIR/calib.h5 from streams 1, 2, 3 of
 * src, with the corpus attributes (hdf5-schema/tokens.md). All three appear
 * or none: on error nothing is left in DIR (a DIR created here is removed)
 * and existing files are untouched. Errors: QID_E_INVALID (options, an
 * existing output without force), QID_E_IO, QID_E_HDF5. */
int qid_corpus_write_synthetic(const qid_corpus_source *src, const qid_corpus_write_opts *o, qid_corpus_written *w,
                               qid_error *err);

/* The same for o->text split by qid_corpus_split_text, byte-level
 * (vocabulary 256, tokenizer "bytes"). */
int qid_corpus_write_text(const qid_corpus_write_opts *o, qid_corpus_written *w, qid_error *err);

/* The corpus attributes of a token set written by qid corpus
 * (hdf5-schema/tokens.md), for `qid inspect`. */
typedef struct qid_corpus_info {
    int present;        /* 0: the set has no corpus attributes (the rest is zero) */
    int synthetic;      /* 1: QID_CORPUS_GENERATOR's stream; 0: a text file's part */
    char generator[64]; /* corpus_generator */
    char part[16];      /* train, eval or calib */
    char params[256];   /* synthetic: the source's parameters as options */
    int64_t version;    /* corpus_version */
    int64_t stream;     /* synthetic: the stream index */
    int64_t seq_len;    /* synthetic: the windows' length */
    double entropy_rate, unigram_entropy, bigram_entropy, loss_floor; /* synthetic, nats/token */
    int64_t source_offset, source_length; /* text: the part's byte range (0, 0 when not stored) */
} qid_corpus_info;

/* Reads the corpus attributes of the token set at path into info
 * (info->present 0 when it has none). Errors: QID_E_HDF5 / QID_E_FORMAT
 * naming the file and attribute. */
int qid_corpus_info_read(const char *path, qid_corpus_info *info, qid_error *err);

#endif
