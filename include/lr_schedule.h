/* lr_schedule.h - learning-rate schedules: the ones `qid train` runs and the
 * ones `qid import --schedule` describes, so that every checkpoint can say
 * where in its schedule it was saved (the lr_frac attribute,
 * hdf5-schema/checkpoint.md; the lr_frac column of the results store).
 *
 * Update s (1-based) of S uses lr(s) = lr * s / warmup for s <= warmup, then
 *   cosine:   min_lr + (lr - min_lr) (1 + cos(pi (s - warmup) / (S - warmup))) / 2
 *             (GPT-NeoX's AnnealingLR: lr right after the warm-up, min_lr at S;
 *             steps past S stay at min_lr);
 *   constant: lr;
 *   wsd:      lr until S - D, then linearly down to min_lr at S, with
 *             D = round(decay_frac * S) (at least 1, at most S - warmup).
 *
 * A schedule spec (`qid import --schedule`) is KIND[,key=value...] with keys
 * steps=S (required but for constant), warmup=W (steps, or a percentage of
 * S such as 1%), min=F (min_lr / lr, default 0.1), decay=F (wsd's
 * decay_frac, default 0.2); or the name of a preset:
 *   pythia   cosine,steps=143000,warmup=1%,min=0.1  (the Pythia suite: linear
 *            warm-up over 1% of 143,000 steps, cosine to 0.1x the peak)
 * Numbers use the commands' syntax (parse.h: 143e3 is 143000).
 *
 * Does not: step an optimizer (train_optim.h). Pure functions, no state. */
#ifndef QID_LR_SCHEDULE_H
#define QID_LR_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum qid_sched_kind {
    QID_SCHED_COSINE = 0,   /* warm-up, cosine decay to min_lr at the last step (Pythia) */
    QID_SCHED_CONSTANT = 1, /* warm-up, then lr */
    QID_SCHED_WSD = 2,      /* warm-up, stable lr, linear decay to min_lr over the last decay_frac */
} qid_sched_kind;

/* "cosine", "constant", "wsd"; parse returns -1 when unknown. */
const char *qid_sched_name(qid_sched_kind k);
int qid_sched_parse(const char *name);

typedef struct qid_train_sched {
    qid_sched_kind kind;
    double lr, min_lr;
    int64_t warmup;    /* steps, 0 .. steps */
    int64_t steps;     /* total updates */
    double decay_frac; /* wsd: fraction of steps that decay, (0, 1] */
} qid_train_sched;

/* The learning rate of update step (1 .. steps), as above; step 0 has lr 0
 * when there is a warm-up. */
double qid_train_lr(const qid_train_sched *s, int64_t step);
/* First step of wsd's decay phase minus one: decay covers steps
 * (wsd_stable_end, steps]. */
int64_t qid_train_wsd_stable_end(const qid_train_sched *s);

/* Parses a schedule spec (above) into s with lr 1, so that qid_train_lr
 * gives the fraction of the peak. QID_E_INVALID with a one-line message
 * naming the part that is wrong. */
int qid_sched_spec_parse(const char *spec, qid_train_sched *s, qid_error *err);

/* The canonical spec of s ("cosine,steps=143000,warmup=1430,min=0.1") into
 * buf. */
void qid_sched_spec_format(const qid_train_sched *s, char *buf, size_t len);

#endif
