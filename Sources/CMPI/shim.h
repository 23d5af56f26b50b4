// The only place that includes mpi.h. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM,
// MPI_IN_PLACE, ...) are macros over addresses of global structs, which Swift cannot import,
// so each one is exposed as a static inline function.
#ifndef XBM_CMPI_SHIM_H
#define XBM_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm xbm_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm xbm_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype xbm_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype xbm_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype xbm_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype xbm_mpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype xbm_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Op xbm_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op xbm_mpi_max(void) { return MPI_MAX; }
static inline void *xbm_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler xbm_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int xbm_mpi_success(void) { return MPI_SUCCESS; }
static inline int xbm_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int xbm_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info xbm_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Request xbm_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *xbm_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }

#endif
