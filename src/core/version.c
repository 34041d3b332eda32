/* version.c - build and library identification for --version and provenance. */
#include "version.h"

#include <cJSON.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#ifndef QID_VERSION
#define QID_VERSION "0.0.0"
#endif
#ifndef QID_GIT_REV
#define QID_GIT_REV "unknown"
#endif
#ifndef QID_CFLAGS
#define QID_CFLAGS ""
#endif

char *openblas_get_config(void);

const char *qid_version(void) { return QID_VERSION; }
const char *qid_git_rev(void) { return QID_GIT_REV; }
const char *qid_build_flags(void) { return "-std=c17 -O2 -fno-fast-math -fopenmp " QID_CFLAGS; }

const char *qid_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown compiler";
#endif
}

void qid_library_versions(char *buf, size_t len)
{
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int mlen = 0;
    MPI_Get_library_version(mpi, &mlen);
    char *nl = strchr(mpi, ',');
    if (nl) *nl = '\0';
    snprintf(buf, len, "HDF5 %u.%u.%u; %s; %s; cJSON %s", maj, min, rel, mpi, openblas_get_config(), cJSON_Version());
}
