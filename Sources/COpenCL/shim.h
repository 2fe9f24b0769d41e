#ifndef TUNEDKERNELS_COPENCL_SHIM_H
#define TUNEDKERNELS_COPENCL_SHIM_H
// OpenCL 1.2 host API: what PoCL and every GPU vendor's driver provide.
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#endif
