/* lr_schedule.c - learning-rate schedules and their specs (lr_schedule.h).
 *
 * Does not: step an optimizer (src/train/train_optim.c). */
#include "lr_schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define PI 3.14159265358979323846

static const char *const sched_names[] = {"cosine", "constant", "wsd"};

const char *qid_sched_name(qid_sched_kind k) { return (unsigned)k < 3 ? sched_names[k] : "?"; }

int qid_sched_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, sched_names[i]) == 0) return i;
    return -1;
}

int64_t qid_train_wsd_stable_end(const qid_train_sched *s)
{
    int64_t n = (int64_t)llround(s->decay_frac * (double)s->steps);
    if (n < 1) n = 1;
    if (n > s->steps - s->warmup) n = s->steps - s->warmup;
    return s->steps - n;
}

double qid_train_lr(const qid_train_sched *s, int64_t step)
{
    if (step <= s->warmup) return s->warmup > 0 ? s->lr * (double)step / (double)s->warmup : s->lr;
    switch (s->kind) {
    case QID_SCHED_CONSTANT: return s->lr;
    case QID_SCHED_COSINE: {
        const double p = (double)(step - s->warmup) / (double)(s->steps - s->warmup);
        return s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(PI * (p < 1.0 ? p : 1.0)));
    }
    case QID_SCHED_WSD: {
        const int64_t e = qid_train_wsd_stable_end(s);
        if (step <= e) return s->lr;
        const double p = (double)(step - e) / (double)(s->steps - e);
        return s->lr + (s->min_lr - s->lr) * (p < 1.0 ? p : 1.0);
    }
    }
    return s->lr;
}

/* ---- specs ------------------------------------------------------------------------ */

static const struct {
    const char *name, *spec;
} presets[] = {
    {"pythia", "cosine,steps=143000,warmup=1%,min=0.1"},
};

#define SPEC_MAX 256

int qid_sched_spec_parse(const char *spec, qid_train_sched *s, qid_error *err)
{
    const char *text = spec ? spec : "";
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(text, presets[i].name) == 0) text = presets[i].spec;
    if (strlen(text) >= SPEC_MAX)
        return qid_error_set(err, QID_E_INVALID, "schedule '%.40s...': longer than %d characters", text, SPEC_MAX - 1);
    char buf[SPEC_MAX];
    snprintf(buf, sizeof buf, "%s", text);
    memset(s, 0, sizeof *s);
    s->lr = 1.0;
    s->min_lr = 0.1;
    s->decay_frac = 0.2;
    char *save = NULL, *part = strtok_r(buf, ",", &save);
    int kind = part ? qid_sched_parse(part) : -1;
    if (kind < 0)
        return qid_error_set(err, QID_E_INVALID,
                             "schedule '%s': the first part must be cosine, constant or wsd, or the whole spec the "
                             "preset pythia",
                             text);
    s->kind = (qid_sched_kind)kind;
    double warm_pct = -1;
    int have_warm = 0, have_steps = 0;
    while ((part = strtok_r(NULL, ",", &save))) {
        char *eq = strchr(part, '=');
        if (!eq)
            return qid_error_set(err, QID_E_INVALID,
                                 "schedule '%s': '%s' is not key=value (keys steps, warmup, min, decay)", text, part);
        *eq = '\0';
        const char *key = part, *val = eq + 1;
        int64_t iv = 0;
        double dv = 0;
        size_t n = strlen(val);
        if (strcmp(key, "steps") == 0 && qid_parse_int(val, 1, INT64_MAX / 2, &iv) == 0) {
            s->steps = iv;
            have_steps = 1;
        } else if (strcmp(key, "warmup") == 0 && n > 1 && val[n - 1] == '%') {
            char pct[64];
            snprintf(pct, sizeof pct, "%.*s", (int)(n - 1), val);
            if (n - 1 >= sizeof pct || qid_parse_real(pct, &dv) || !(dv >= 0 && dv <= 100))
                return qid_error_set(err, QID_E_INVALID, "schedule '%s': warmup=%s is not a percentage in [0, 100]",
                                     text, val);
            warm_pct = dv;
            have_warm = 1;
        } else if (strcmp(key, "warmup") == 0 && qid_parse_int(val, 0, INT64_MAX / 2, &iv) == 0) {
            s->warmup = iv;
            have_warm = 1;
        } else if (strcmp(key, "min") == 0 && qid_parse_real(val, &dv) == 0 && dv >= 0 && dv <= 1) {
            s->min_lr = dv;
        } else if (strcmp(key, "decay") == 0 && qid_parse_real(val, &dv) == 0 && dv > 0 && dv <= 1) {
            s->decay_frac = dv;
        } else if (strcmp(key, "steps") && strcmp(key, "warmup") && strcmp(key, "min") && strcmp(key, "decay")) {
            return qid_error_set(err, QID_E_INVALID, "schedule '%s': unknown key '%s' (keys steps, warmup, min, decay)",
                                 text, key);
        } else {
            return qid_error_set(err, QID_E_INVALID,
                                 "schedule '%s': bad %s=%s (steps: a whole number >= 1; warmup: steps or a "
                                 "percentage; min: in [0, 1]; decay: in (0, 1])",
                                 text, key, val);
        }
    }
    if (!have_steps && s->kind != QID_SCHED_CONSTANT)
        return qid_error_set(err, QID_E_INVALID, "schedule '%s': %s needs steps=S, the total number of updates", text,
                             qid_sched_name(s->kind));
    if (!have_steps) s->steps = INT64_MAX / 2;
    if (warm_pct >= 0) {
        if (!have_steps)
            return qid_error_set(err, QID_E_INVALID, "schedule '%s': a warm-up percentage needs steps=S", text);
        s->warmup = (int64_t)llround(warm_pct / 100.0 * (double)s->steps);
    }
    (void)have_warm;
    if (s->warmup > s->steps)
        return qid_error_set(err, QID_E_INVALID, "schedule '%s': warmup %lld is longer than steps %lld", text,
                             (long long)s->warmup, (long long)s->steps);
    return QID_OK;
}

void qid_sched_spec_format(const qid_train_sched *s, char *buf, size_t len)
{
    char min[32], decay[32];
    qid_format_real(s->lr > 0 ? s->min_lr / s->lr : s->min_lr, min, sizeof min);
    qid_format_real(s->decay_frac, decay, sizeof decay);
    switch (s->kind) {
    case QID_SCHED_CONSTANT: snprintf(buf, len, "constant,warmup=%lld", (long long)s->warmup); break;
    case QID_SCHED_WSD:
        snprintf(buf, len, "wsd,steps=%lld,warmup=%lld,min=%s,decay=%s", (long long)s->steps, (long long)s->warmup, min,
                 decay);
        break;
    default:
        snprintf(buf, len, "%s,steps=%lld,warmup=%lld,min=%s", qid_sched_name(s->kind), (long long)s->steps,
                 (long long)s->warmup, min);
    }
}
