/* cmd_run.c - `qid run JOB`: its usage, its options (cli_parse), MPI's
 * start and end for the process (the only command that initializes MPI),
 * and the one-line error when the run cannot start.
 *
 * --dry-run expands the job on rank 0 and prints its grid (run_grid.c)
 * without opening the store.
 *
 * Does not: schedule or run tasks (sweep.h). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "error.h"
#include "jobfile.h"
#include "parse.h"
#include "sweep.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: mpirun -np N qid run [--dry-run] [--progress-every S] [--threads T] [--mem-limit SIZE] JOB\n"
                 "\n"
                 "Runs every task of a job file (jobs/README.md): the 16-bit baseline and each quantizer\n"
                 "setting of every checkpoint, and appends one row per task to the job's results store.\n"
                 "Tasks already in the store are skipped, so rerunning a killed job finishes it.\n"
                 "Rank 0 schedules and writes the store; the other ranks evaluate (one rank runs all).\n"
                 "\n"
                 "  --dry-run            print the task grid and its estimated cost, run nothing\n"
                 "  --progress-every S   seconds between progress lines when stderr is not a terminal (30)\n"
                 "  --threads T          threads per rank for evaluation (1); results depend on it\n"
                 "  --mem-limit SIZE     memory per rank (e.g. 16GiB): a task predicted to need more fails\n"
                 "                       up front (over the job's mem_limit)\n"
                 "  -h, --help           this text\n"
                 "\n"
                 "Exit status: 0 all tasks OK, 1 some task failed (recorded) or the run could not start, 2 usage.\n");
}

/* The task grid of job_file with its estimated cost, on stdout. 0, or 1
 * after one error line. */
static int dry_run(const char *job_file, double mem_limit)
{
    qid_job job;
    qid_task *tasks = NULL;
    size_t n = 0;
    qid_error err;
    qid_error_clear(&err);
    int rc = qid_job_load(job_file, &job, &err);
    if (rc == QID_OK) {
        if (mem_limit > 0) job.mem_limit = mem_limit;
        rc = qid_job_tasks(&job, &tasks, &n, &err);
        if (rc == QID_OK) cli_print_job_grid(&job, tasks, n, stdout);
        qid_job_tasks_free(tasks, n);
        qid_job_free(&job);
    }
    fflush(stdout);
    return rc ? cli_fail("run", "%s", err.msg) : 0;
}

static int take_bytes(const char *value, void *dest) { return qid_parse_bytes(value, dest); }

/* `qid run [--dry-run] [--progress-every S] [--threads T] JOB` (options
 * before or after JOB). Collective over MPI_COMM_WORLD: calls MPI_Init and
 * MPI_Finalize. Returns 0 when every task of this run finished OK (or
 * nothing was left to do), 1 when some task failed (the rest still ran and
 * the failures are in the store) or the run could not start (a bad job, a
 * store locked by another run: one "qid run: error: ..." line on rank 0),
 * 2 on bad usage. */
int qid_run_main(int argc, char **argv)
{
    qid_sweep_opts o = {.progress_every = QID_SWEEP_PROGRESS_EVERY, .threads = 1};
    int dry = 0;
    const cli_opt opts[] = {
        CLI_OPT_FLAG("dry-run", &dry),
        CLI_OPT_REAL("progress-every", &o.progress_every, 0, 1e6, CLI_LO_OPEN, "seconds > 0"),
        CLI_OPT_INT("threads", &o.threads, 1, 4096, "a count 1..4096"),
        CLI_OPT_FN("mem-limit", &o.mem_limit, take_bytes, "a byte count (e.g. 16GiB, 512MiB)"),
    };
    const cli_spec spec = {"run", usage, opts, sizeof opts / sizeof opts[0], 1, 1, "no job file given"};
    int n_args = 0, rc = cli_parse(&spec, argc, argv, &n_args);
    char **args = argv + 1; /* the positional arguments */
    o.job_file = n_args > 0 ? args[0] : NULL;
    if (rc != CLI_OK) return rc == CLI_HELP ? 0 : rc;

    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return cli_fail("run", "MPI_Init failed");
    QID_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int rank = 0;
    QID_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    qid_log_set_rank(rank);
    if (dry) {
        rc = rank == 0 ? dry_run(o.job_file, o.mem_limit) : 0;
        MPI_Finalize();
        return rc;
    }

    qid_error err;
    qid_error_clear(&err);
    qid_sweep_summary sum;
    rc = qid_sweep_run(&o, &sum, &err);
    if (rc && err.msg[0]) cli_fail("run", "%s", err.msg);
    MPI_Finalize();
    return rc || sum.failed ? 1 : 0;
}
