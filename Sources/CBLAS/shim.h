#ifndef TUNEDKERNELS_CBLAS_SHIM_H
#define TUNEDKERNELS_CBLAS_SHIM_H
#include <cblas.h>
#endif
