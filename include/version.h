/* version.h - what built this qid: version, git revision, compiler, flags and
 * library versions. Printed by `qid --version` and stored in every results
 * file's /provenance.
 *
 * Does not: initialise MPI (MPI_Get_library_version works before MPI_Init). */
#ifndef QID_VERSION_H
#define QID_VERSION_H

#include <stddef.h>

const char *qid_version(void);  /* "0.1.0" */
const char *qid_git_rev(void);  /* short hash at build time or "unknown" */
const char *qid_compiler(void); /* "gcc 12.2.0" */
const char *qid_build_flags(void);
/* "HDF5 1.10.8; Open MPI v4.1.4; OpenBLAS 0.3.21 ...; cJSON 1.7.15" */
void qid_library_versions(char *buf, size_t len);

#endif
