/* cmd_import.c - `qid import`: its usage, options and the line it prints.
 * `qid import --from safetensors DIR -o OUT.h5` imports a Hugging Face
 * checkpoint directory with qid_import_safetensors (import.h); --step,
 * --tokens and --tokens-per-step (D = S * T) record where in training the
 * checkpoint is, as integers in parse.h's syntax (3e11 is one); --schedule
 * records its learning-rate fraction (lr_schedule.h).
 *
 * Exit status: 0 on success and for --help; 2 for a bad command line (one
 * "qid import: error: ..." line); 1 when the import fails (one line naming
 * the file and tensor; nothing left at OUT).
 *
 * Does not: import anything itself. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "error.h"
#include "import.h"
#include "lr_schedule.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qid import --from safetensors DIR -o OUT.h5 [options]\n"
                 "\n"
                 "Imports a Hugging Face checkpoint directory (config.json and model.safetensors,\n"
                 "or shards with model.safetensors.index.json) into one qid checkpoint file.\n"
                 "Architectures: gpt_neox (Pythia), llama, mistral, qwen2. Tensors keep their\n"
                 "precision (F32, F16, BF16) bit for bit.\n"
                 "\n"
                 "options:\n"
                 "  --from FORMAT          source format; only 'safetensors'\n"
                 "  -o, --output OUT       checkpoint file to write (appears only when complete)\n"
                 "  --step S               training step of this checkpoint\n"
                 "  --tokens D             training tokens seen (D)\n"
                 "  --tokens-per-step T    D = S * T (Pythia: 2097152)\n"
                 "  --schedule SPEC        the run's learning-rate schedule, to record the checkpoint's\n"
                 "                         lr_frac (lr at S over its peak; needs --step): pythia, or\n"
                 "                         cosine|constant|wsd,steps=S,warmup=W|P%%,min=F[,decay=F]\n"
                 "  --model NAME           model name used to group checkpoints (default: config\n"
                 "                         _name_or_path, else the directory name)\n"
                 "  --force                replace OUT if it exists\n"
                 "  -h, --help             this help\n"
                 "\n"
                 "example (Pythia-160M at step 143000):\n"
                 "  qid import --from safetensors pythia-160m-step143000/ --step 143000 \\\n"
                 "             --tokens-per-step 2097152 --schedule pythia --model pythia-160m \\\n"
                 "             -o pythia-160m-143000.h5\n");
}

int qid_import_main(int argc, char **argv)
{
    qid_import_opts o = {.step = -1, .tokens = -1};
    const char *from = NULL;
    int64_t per_step = -1;
    const cli_opt opts[] = {
        CLI_OPT_STR("from", &from),
        {"output", 'o', CLI_STR, &o.out, 0, 0, 0, NULL, NULL},
        CLI_OPT_I64("step", &o.step, 0, 9e18, "a non-negative integer"),
        CLI_OPT_I64("tokens", &o.tokens, 0, 9e18, "a non-negative integer"),
        CLI_OPT_I64("tokens-per-step", &per_step, 0, 9e18, "a non-negative integer"),
        CLI_OPT_STR("schedule", &o.schedule),
        CLI_OPT_STR("model", &o.model),
        CLI_OPT_FLAG("force", &o.force),
    };
    const cli_spec spec = {"import", usage, opts, sizeof opts / sizeof opts[0], 0, -1, NULL};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    if (n_args > 0) o.dir = args[0];
    if (rc == CLI_HELP) return 0;
    if (rc != CLI_OK) return rc;
    const char *why = !from                              ? "--from safetensors is required"
                      : strcmp(from, "safetensors") != 0 ? "only --from safetensors is supported"
                      : !o.dir                           ? "no checkpoint directory given"
                      : !o.out                           ? "no output given (-o OUT.h5)"
                      : n_args > 1                       ? "too many arguments"
                                                         : NULL;
    if (why) return cli_usage_error("import", "%s", why);
    if (per_step >= 0) {
        if (o.step < 0 || o.tokens >= 0)
            return cli_usage_error("import", "--tokens-per-step needs --step and excludes --tokens");
        if (per_step && o.step > INT64_MAX / per_step)
            return cli_usage_error("import", "step * tokens-per-step overflows");
        o.tokens = o.step * per_step;
    }
    if (o.schedule) {
        qid_train_sched sched;
        qid_error serr;
        if (qid_sched_spec_parse(o.schedule, &sched, &serr)) return cli_usage_error("import", "%s", serr.msg);
        if (o.step < 0)
            return cli_usage_error("import", "--schedule needs --step (where in the schedule the checkpoint is)");
    }
    if (o.tokens < 0) qid_warn("import: no --tokens or --tokens-per-step: tokens seen (D) recorded as unknown");
    qid_error err;
    qid_error_clear(&err);
    if (qid_import_safetensors(&o, &err)) return cli_fail("import", "%s", err.msg);
    qid_ckpt ck;
    if (qid_ckpt_open(o.out, &ck, &err) == QID_OK) {
        printf("imported %s: %s, %s, N = %" PRId64 ", step %" PRId64 ", D = %" PRId64, o.out,
               qid_arch_name(ck.cfg.arch), qid_dtype_name(ck.meta.dtype), ck.meta.params_nonembedding, ck.meta.step,
               ck.meta.tokens_seen);
        if (!isnan(ck.meta.lr_frac)) printf(", lr %.4g of peak", ck.meta.lr_frac);
        printf("\n");
        qid_ckpt_close(&ck);
    }
    return 0;
}
