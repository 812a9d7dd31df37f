/*
 * A fake libnvidia-ml.so for the GPU collector tests: the NVML C functions the
 * collector reaches through pynvml, with the struct layouts, struct versions,
 * return codes and size-query protocols of nvml.h (NVML API 13, as vendored by
 * NVIDIA/go-nvml), and nothing of pynvml's own definitions.
 *
 * Strictness (what a wrong caller runs into):
 *   - a device handle that is not one this library handed out, or a MIG handle
 *     whose instance was destroyed, is NVML_ERROR_INVALID_ARGUMENT;
 *   - versioned structs must carry sizeof(struct) | version << 24, else
 *     NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
 *   - a temperature sensor, clock type or PCIe counter out of range, a field
 *     scope a field does not take, a GPU instance that does not exist:
 *     NVML_ERROR_INVALID_ARGUMENT;
 *   - nvmlFieldValue_t.value is filled with 0xA5 bytes before the member named
 *     by valueType is written (the rest of the union is undefined in nvml.h);
 *   - two GPM samples of different devices, the same sample twice or samples
 *     out of order: NVML_ERROR_INVALID_ARGUMENT; samples under 100 ms apart
 *     give zeros (as stale counters would) and count as "gpm_short_pair";
 *   - process and process-utilisation queries follow the two-call protocol:
 *     too small a buffer (or none) is NVML_ERROR_INSUFFICIENT_SIZE with the
 *     count needed.
 *
 * The test harness (nvml_fake.py) drives it through the fk_* functions: values
 * per device, per-call failures, lost GPUs, MIG layouts, processes, XID events,
 * GPM values and a settable clock; fk_calls() counts every NVML call per GPU.
 * One mutex guards the state: NVML is thread-safe and so is this.
 */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_TIMEOUT = 10,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

#define STRUCT_VERSION(type, ver) ((unsigned int)(sizeof(type) | ((ver) << 24U)))
#define MAXG 16
#define MAXMIG 256
#define MAXFV 4096
#define MAXRULES 128
#define MAXNAMES 160
#define MAXPROC 128
#define MAXPUTIL 128
#define MAXEV 256
#define MAXSETS 8
#define MAXSAMPLES 256
#define MAXGPMV 512
#define MIG_SLOTS 7
#define MAGIC 0x4e564d4cU

/* ---- nvml.h layouts ---------------------------------------------------- */

typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
    unsigned int version;
    int sensorType;
    int temperature;
} nvmlTemperature_v1_t;
typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;
typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    signed int siVal;
    unsigned short usVal;
} nvmlValue_t;
typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;
typedef struct {  /* nvmlProcessInfo_v2_t == nvmlProcessInfo_t: 24 bytes */
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;
typedef struct {  /* what drivers 535.43-535.86 wrote from the _v3 calls: 32 bytes */
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
    unsigned long long usedGpuCcProtectedMemory;
} nvmlProcessInfo_535_t;
typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;
typedef struct fk_dev fk_dev;
typedef struct {
    fk_dev *device;
    unsigned long long eventType, eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
typedef struct { unsigned int version, isSupportedDevice; } nvmlGpmSupport_t;
typedef struct fk_sample fk_sample;
typedef struct {
    unsigned int metricId;
    nvmlReturn_t nvmlReturn;
    double value;
    struct { char *shortName, *longName, *unit; } metricInfo;
} nvmlGpmMetric_t;
typedef struct {
    unsigned int version, numMetrics;
    fk_sample *sample1, *sample2;
    nvmlGpmMetric_t metrics[1]; /* NVML_GPM_METRIC_MAX in nvml.h; only numMetrics are touched */
} nvmlGpmMetricsGet_t;

/* ---- state -------------------------------------------------------------- */

struct fk_dev { unsigned int magic; int gpu; int mig; /* -1: the GPU itself */ };

enum {
    K_UTIL_GPU, K_UTIL_MEM, K_FB_TOTAL, K_FB_RESERVED, K_FB_USED, K_TEMP_GPU,
    K_CLK_GRAPHICS, K_CLK_SM, K_CLK_MEM, K_CLK_VIDEO, K_ENC, K_ENC_PERIOD, K_DEC,
    K_DEC_PERIOD, K_POWER_USAGE, K_POWER_LIMIT, K_PSTATE, K_FAN, K_CLOCK_REASONS,
    K_PCIE_TX, K_PCIE_RX, K_ENERGY, K_ARCH, K_PCI_DEVID, K_MIG_CAPABLE, K_GPM,
    K_EVENTS_SUPPORTED, K_COUNT
};
static const char *KNOB_NAMES[K_COUNT] = {
    "util_gpu", "util_mem", "fb_total", "fb_reserved", "fb_used", "temp_gpu",
    "clk_graphics", "clk_sm", "clk_mem", "clk_video", "enc", "enc_period", "dec",
    "dec_period", "power_usage", "power_limit", "pstate", "fan", "clock_reasons",
    "pcie_tx", "pcie_rx", "energy", "arch", "pci_devid", "mig_capable", "gpm",
    "events_supported",
};

typedef struct {
    int lost; /* 0 or the code every call to it returns */
    int mig_on;
    double knob[K_COUNT];
    char name[96], uuid[96], busid[32];
    fk_dev h;
} fk_gpu;

typedef struct {
    int alive, gpu, slot;
    unsigned int gi, ci;
    unsigned long long mem_total, mem_used, mem_reserved;
    char name[96], uuid[96];
    fk_dev h;
} fk_mig;

typedef struct {
    int gpu;
    unsigned int fid, scope;
    int ret, vtype;
    unsigned long long bits;
    long long latency;
} fk_field_t;

typedef struct { char fn[64]; int gpu, gi, code, remaining; } fk_rule;
typedef struct {
    int gpu, graphics;
    unsigned int gi, ci, pid;
    unsigned long long mem;
} fk_proc;
typedef struct {
    int gpu;
    unsigned int pid, sm, mem, enc, dec;
    unsigned long long ts;
} fk_putil;
typedef struct { int gpu; unsigned long long type, data; unsigned int gi, ci; } fk_event_t;
typedef struct { int alive; unsigned long long reg[MAXG]; } fk_set_t;
struct fk_sample { unsigned int magic; int alive, filled, gpu, gi; long long t_ns; };
typedef struct { int gpu, gi; unsigned int metric; int ret; double value; } fk_gpmv;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int initialized, init_ret, device_count, cuda_version, root;
static int proc_struct_v3 = 24, fi_max = 308, fi_unknown_ret = NVML_ERROR_INVALID_ARGUMENT;
static int pcie_delay_us; /* what nvmlDeviceGetPcieThroughput blocks (the driver counts for 20 ms) */
static long long clock_ns = -1;
static char driver[96];
static fk_gpu gpus[MAXG];
static fk_mig migs[MAXMIG];
static int nmig;
static fk_field_t fields[MAXFV];
static int nfields;
static fk_rule rules[MAXRULES];
static int nrules;
static fk_proc procs[MAXPROC];
static int nprocs;
static fk_putil putils[MAXPUTIL];
static int nputils;
static fk_event_t events[MAXEV];
static int nevents;
static fk_set_t sets[MAXSETS];
static fk_sample samples[MAXSAMPLES];
static fk_gpmv gpmvs[MAXGPMV];
static int ngpmv;
static char names[MAXNAMES][64];
static unsigned long calls[MAXNAMES][MAXG + 1];
static int nnames;

static long long now_ns(void) {
    if (clock_ns >= 0) return clock_ns;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int name_index(const char *fn) {
    for (int i = 0; i < nnames; i++)
        if (strcmp(names[i], fn) == 0) return i;
    if (nnames == MAXNAMES) return -1;
    snprintf(names[nnames], sizeof names[0], "%s", fn);
    return nnames++;
}

static void count(const char *fn, int gpu) {
    int i = name_index(fn);
    if (i >= 0) calls[i][gpu < 0 ? MAXG : gpu]++;
}

/* The code a fail rule gives this call, or 0. gi: -1 the GPU handle, else a MIG device's GI. */
static int rule_code(const char *fn, int gpu, int gi) {
    for (int i = 0; i < nrules; i++) {
        fk_rule *r = &rules[i];
        if (r->remaining == 0 || strcmp(r->fn, fn) != 0) continue;
        if (r->gpu != -1 && r->gpu != gpu) continue;
        if (r->gi == -2 && gi != -1) continue;           /* GPU handles only */
        if (r->gi >= 0 && (unsigned int)r->gi != (unsigned int)gi) continue;
        if (r->remaining > 0) r->remaining--;
        return r->code;
    }
    return 0;
}

static int host_call(const char *fn) {
    count(fn, -1);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    return rule_code(fn, -1, -1);
}

/* Resolve a handle: 0 and *g / *m set, or an error code. */
static int resolve(const char *fn, void *p, fk_gpu **g, fk_mig **m) {
    int gpu = -1, mig = -1;
    for (int i = 0; i < MAXG && gpu < 0; i++)
        if (p == &gpus[i].h) gpu = i;
    for (int k = 0; k < nmig && gpu < 0; k++)
        if (p == &migs[k].h) { gpu = migs[k].gpu; mig = k; }
    count(fn, gpu);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (gpu < 0 || gpu >= device_count || ((fk_dev *)p)->magic != MAGIC)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (mig >= 0 && !migs[mig].alive) return NVML_ERROR_INVALID_ARGUMENT;
    if (gpus[gpu].lost) return gpus[gpu].lost;
    int code = rule_code(fn, gpu, mig >= 0 ? (int)migs[mig].gi : -1);
    if (code) return code;
    *g = &gpus[gpu];
    if (m) *m = mig >= 0 ? &migs[mig] : NULL;
    else if (mig >= 0) return NVML_ERROR_NOT_SUPPORTED; /* a GPU-only query on a MIG device */
    return 0;
}

#define LOCKED(body) do { pthread_mutex_lock(&mu); nvmlReturn_t r_ = (body); pthread_mutex_unlock(&mu); return r_; } while (0)
#define KN(g, k) ((g)->knob[k])
#define SUPPORTED(g, k) (!isnan(KN(g, k)))

static int gpu_index(fk_gpu *g) { return (int)(g - gpus); }

/* ---- control API (tests) --------------------------------------------------- */

void fk_reset(int count_) {
    pthread_mutex_lock(&mu);
    initialized = init_ret = root = 0;
    device_count = count_;
    cuda_version = 12040;
    proc_struct_v3 = 24;
    pcie_delay_us = 0;
    fi_max = 308;
    fi_unknown_ret = NVML_ERROR_INVALID_ARGUMENT;
    clock_ns = -1;
    snprintf(driver, sizeof driver, "550.90.07");
    memset(gpus, 0, sizeof gpus);
    memset(migs, 0, sizeof migs);
    memset(sets, 0, sizeof sets);
    memset(samples, 0, sizeof samples);
    nmig = nfields = nrules = nprocs = nputils = nevents = ngpmv = nnames = 0;
    memset(calls, 0, sizeof calls);
    for (int i = 0; i < MAXG; i++) {
        gpus[i].h.magic = MAGIC;
        gpus[i].h.gpu = i;
        gpus[i].h.mig = -1;
        for (int k = 0; k < K_COUNT; k++) gpus[i].knob[k] = NAN;
    }
    pthread_mutex_unlock(&mu);
}

int fk_set(int gpu, const char *key, double value) {
    pthread_mutex_lock(&mu);
    int ok = -1;
    if (gpu < 0) {
        if (strcmp(key, "device_count") == 0) device_count = (int)value, ok = 0;
        else if (strcmp(key, "init_ret") == 0) init_ret = (int)value, ok = 0;
        else if (strcmp(key, "cuda_version") == 0) cuda_version = (int)value, ok = 0;
        else if (strcmp(key, "root") == 0) root = (int)value, ok = 0;
        else if (strcmp(key, "proc_struct_v3") == 0) proc_struct_v3 = (int)value, ok = 0;
        else if (strcmp(key, "fi_max") == 0) fi_max = (int)value, ok = 0;
        else if (strcmp(key, "fi_unknown_ret") == 0) fi_unknown_ret = (int)value, ok = 0;
        else if (strcmp(key, "clock_ns") == 0) clock_ns = (long long)value, ok = 0;
        else if (strcmp(key, "pcie_delay_us") == 0) pcie_delay_us = (int)value, ok = 0;
    } else if (gpu < MAXG) {
        if (strcmp(key, "lost") == 0) gpus[gpu].lost = (int)value, ok = 0;
        else if (strcmp(key, "mig_on") == 0) gpus[gpu].mig_on = (int)value, ok = 0;
        for (int k = 0; k < K_COUNT && ok; k++)
            if (strcmp(key, KNOB_NAMES[k]) == 0) gpus[gpu].knob[k] = value, ok = 0;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

int fk_set_clock(long long ns) { pthread_mutex_lock(&mu); clock_ns = ns; pthread_mutex_unlock(&mu); return 0; }

int fk_set_str(int gpu, const char *key, const char *value) {
    pthread_mutex_lock(&mu);
    int ok = -1;
    if (gpu < 0 && strcmp(key, "driver") == 0) snprintf(driver, sizeof driver, "%s", value), ok = 0;
    else if (gpu >= 0 && gpu < MAXG) {
        fk_gpu *g = &gpus[gpu];
        if (strcmp(key, "name") == 0) snprintf(g->name, sizeof g->name, "%s", value), ok = 0;
        else if (strcmp(key, "uuid") == 0) snprintf(g->uuid, sizeof g->uuid, "%s", value), ok = 0;
        else if (strcmp(key, "busid") == 0) snprintf(g->busid, sizeof g->busid, "%s", value), ok = 0;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

int fk_field(int gpu, unsigned int fid, unsigned int scope, int ret, int vtype,
             unsigned long long bits, long long latency) {
    pthread_mutex_lock(&mu);
    int i = 0;
    while (i < nfields && !(fields[i].gpu == gpu && fields[i].fid == fid && fields[i].scope == scope)) i++;
    if (i == MAXFV) { pthread_mutex_unlock(&mu); return -1; }
    if (i == nfields) nfields++;
    fields[i] = (fk_field_t){gpu, fid, scope, ret, vtype, bits, latency};
    pthread_mutex_unlock(&mu);
    return 0;
}

/* Fail the next `times` calls (-1: all) of fn on gpu (-1: any) and gi (-1: any handle,
 * -2: GPU handles only, >= 0: that GPU instance's MIG devices) with code. */
int fk_fail(const char *fn, int gpu, int gi, int code, int times) {
    pthread_mutex_lock(&mu);
    int ok = -1;
    if (nrules < MAXRULES) {
        fk_rule *r = &rules[nrules++];
        snprintf(r->fn, sizeof r->fn, "%s", fn);
        r->gpu = gpu, r->gi = gi, r->code = code, r->remaining = times;
        ok = 0;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

int fk_clear_rules(void) { pthread_mutex_lock(&mu); nrules = 0; pthread_mutex_unlock(&mu); return 0; }

/* A MIG device (GPU instance gi, compute instance ci) on gpu, in the lowest free slot. */
int fk_mig_add(int gpu, unsigned int gi, unsigned int ci, const char *name,
               unsigned long long total, unsigned long long used, unsigned long long reserved) {
    pthread_mutex_lock(&mu);
    int slot = -1;
    for (int s = 0; s < MIG_SLOTS && slot < 0; s++) {
        int taken = 0;
        for (int k = 0; k < nmig; k++)
            if (migs[k].alive && migs[k].gpu == gpu && migs[k].slot == s) taken = 1;
        if (!taken) slot = s;
    }
    if (slot < 0 || nmig == MAXMIG) { pthread_mutex_unlock(&mu); return -1; }
    fk_mig *m = &migs[nmig];
    m->alive = 1, m->gpu = gpu, m->slot = slot, m->gi = gi, m->ci = ci;
    m->mem_total = total, m->mem_used = used, m->mem_reserved = reserved;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->uuid, sizeof m->uuid, "MIG-%08x-%04x-%04x-%04x-%012x", (unsigned int)gpu, gi, ci,
             (unsigned int)nmig, 0xabcdU);
    m->h.magic = MAGIC, m->h.gpu = gpu, m->h.mig = nmig;
    nmig++;
    pthread_mutex_unlock(&mu);
    return slot;
}

/* Destroy gpu's MIG devices (gi < 0: all of them); their handles go stale. */
int fk_mig_destroy(int gpu, int gi) {
    pthread_mutex_lock(&mu);
    int n = 0;
    for (int k = 0; k < nmig; k++)
        if (migs[k].alive && migs[k].gpu == gpu && (gi < 0 || migs[k].gi == (unsigned int)gi))
            migs[k].alive = 0, n++;
    pthread_mutex_unlock(&mu);
    return n;
}

int fk_proc_add(int gpu, unsigned int gi, unsigned int ci, unsigned int pid,
                unsigned long long mem, int graphics) {
    pthread_mutex_lock(&mu);
    int ok = -1;
    if (nprocs < MAXPROC) procs[nprocs++] = (fk_proc){gpu, graphics, gi, ci, pid, mem}, ok = 0;
    pthread_mutex_unlock(&mu);
    return ok;
}

int fk_putil_add(int gpu, unsigned int pid, unsigned long long ts, unsigned int sm,
                 unsigned int mem, unsigned int enc, unsigned int dec) {
    pthread_mutex_lock(&mu);
    int ok = -1;
    if (nputils < MAXPUTIL) putils[nputils++] = (fk_putil){gpu, pid, sm, mem, enc, dec, ts}, ok = 0;
    pthread_mutex_unlock(&mu);
    return ok;
}

int fk_event(int gpu, unsigned long long type, unsigned long long data, unsigned int gi, unsigned int ci) {
    pthread_mutex_lock(&mu);
    int ok = -1;
    if (nevents < MAXEV) events[nevents++] = (fk_event_t){gpu, type, data, gi, ci}, ok = 0;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* A GPM metric's value between two samples of gpu (gi -1: the whole GPU). */
int fk_gpm(int gpu, int gi, unsigned int metric, int ret, double value) {
    pthread_mutex_lock(&mu);
    int i = 0;
    while (i < ngpmv && !(gpmvs[i].gpu == gpu && gpmvs[i].gi == gi && gpmvs[i].metric == metric)) i++;
    if (i == MAXGPMV) { pthread_mutex_unlock(&mu); return -1; }
    if (i == ngpmv) ngpmv++;
    gpmvs[i] = (fk_gpmv){gpu, gi, metric, ret, value};
    pthread_mutex_unlock(&mu);
    return 0;
}

/* Calls of fn on gpu (-1: host-level calls, -2: all). */
unsigned long fk_calls(const char *fn, int gpu) {
    pthread_mutex_lock(&mu);
    unsigned long n = 0;
    for (int i = 0; i < nnames; i++) {
        if (fn[0] && strcmp(names[i], fn) != 0) continue;
        if (gpu == -2) for (int g = 0; g <= MAXG; g++) n += calls[i][g];
        else n += calls[i][gpu < 0 ? MAXG : gpu];
    }
    pthread_mutex_unlock(&mu);
    return n;
}

/* The name of the i-th counted function, or NULL. */
const char *fk_call_name(int i) { return i >= 0 && i < nnames ? names[i] : NULL; }

int fk_initialized(void) { return initialized; }

int fk_live_samples(void) {
    int n = 0;
    for (int i = 0; i < MAXSAMPLES; i++) n += samples[i].alive;
    return n;
}

int fk_live_sets(void) {
    int n = 0;
    for (int i = 0; i < MAXSETS; i++) n += sets[i].alive;
    return n;
}

/* ---- library and system ------------------------------------------------------ */

static nvmlReturn_t init_(const char *fn) {
    count(fn, -1);
    if (init_ret) return init_ret;
    initialized++;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; LOCKED(init_("nvmlInitWithFlags")); }
nvmlReturn_t nvmlInit_v2(void) { LOCKED(init_("nvmlInit_v2")); }

static nvmlReturn_t shutdown_(void) {
    count("nvmlShutdown", -1);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    initialized--;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlShutdown(void) { LOCKED(shutdown_()); }

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

static nvmlReturn_t copy_str(char *dst, unsigned int len, const char *src) {
    if (!dst) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(src) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return NVML_SUCCESS;
}

static nvmlReturn_t driver_version_(char *v, unsigned int len) {
    int r = host_call("nvmlSystemGetDriverVersion");
    return r ? r : copy_str(v, len, driver);
}
nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int len) { LOCKED(driver_version_(v, len)); }

static nvmlReturn_t cuda_(const char *fn, int *v) {
    int r = host_call(fn);
    if (r) return r;
    if (!v) return NVML_ERROR_INVALID_ARGUMENT;
    *v = cuda_version;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) { LOCKED(cuda_("nvmlSystemGetCudaDriverVersion", v)); }
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { LOCKED(cuda_("nvmlSystemGetCudaDriverVersion_v2", v)); }

static nvmlReturn_t count_(unsigned int *n) {
    int r = host_call("nvmlDeviceGetCount_v2");
    if (r) return r;
    if (!n) return NVML_ERROR_INVALID_ARGUMENT;
    *n = (unsigned int)device_count;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) { LOCKED(count_(n)); }

static nvmlReturn_t by_index_(unsigned int i, fk_dev **out) {
    count("nvmlDeviceGetHandleByIndex_v2", i < MAXG ? (int)i : -1);
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!out || i >= (unsigned int)device_count) return NVML_ERROR_INVALID_ARGUMENT;
    if (gpus[i].lost) return gpus[i].lost;
    int r = rule_code("nvmlDeviceGetHandleByIndex_v2", (int)i, -1);
    if (r) return r;
    *out = &gpus[i].h;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, fk_dev **out) { LOCKED(by_index_(i, out)); }

/* ---- identity ------------------------------------------------------------------ */

static nvmlReturn_t uuid_(fk_dev *d, char *buf, unsigned int len) {
    fk_gpu *g; fk_mig *m;
    int r = resolve("nvmlDeviceGetUUID", d, &g, &m);
    return r ? r : copy_str(buf, len, m ? m->uuid : g->uuid);
}
nvmlReturn_t nvmlDeviceGetUUID(fk_dev *d, char *buf, unsigned int len) { LOCKED(uuid_(d, buf, len)); }

static nvmlReturn_t name_(fk_dev *d, char *buf, unsigned int len) {
    fk_gpu *g; fk_mig *m;
    int r = resolve("nvmlDeviceGetName", d, &g, &m);
    return r ? r : copy_str(buf, len, m ? m->name : g->name);
}
nvmlReturn_t nvmlDeviceGetName(fk_dev *d, char *buf, unsigned int len) { LOCKED(name_(d, buf, len)); }

static nvmlReturn_t pci_(fk_dev *d, nvmlPciInfo_t *p) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetPciInfo_v3", d, &g, NULL);
    if (r) return r;
    if (!p) return NVML_ERROR_INVALID_ARGUMENT;
    memset(p, 0, sizeof *p);
    snprintf(p->busId, sizeof p->busId, "%s", g->busid);
    p->pciDeviceId = SUPPORTED(g, K_PCI_DEVID) ? (unsigned int)KN(g, K_PCI_DEVID) : 0;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPciInfo_v3(fk_dev *d, nvmlPciInfo_t *p) { LOCKED(pci_(d, p)); }

/* A GPU-handle query returning one unsigned knob. */
static nvmlReturn_t uint_knob(const char *fn, fk_dev *d, int k, unsigned int *out) {
    fk_gpu *g;
    int r = resolve(fn, d, &g, NULL);
    if (r) return r;
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (!SUPPORTED(g, k)) return NVML_ERROR_NOT_SUPPORTED;
    *out = (unsigned int)KN(g, k);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetArchitecture(fk_dev *d, unsigned int *a) { LOCKED(uint_knob("nvmlDeviceGetArchitecture", d, K_ARCH, a)); }

/* ---- the sampled queries ---------------------------------------------------------- */

static nvmlReturn_t fields_(fk_dev *d, int n, nvmlFieldValue_t *v) {
    fk_gpu *g; fk_mig *m;
    int r = resolve("nvmlDeviceGetFieldValues", d, &g, &m);
    if (r) return r;
    if (!v || n <= 0) return NVML_ERROR_INVALID_ARGUMENT;
    int gpu = gpu_index(g);
    long long ts = now_ns() / 1000;
    for (int i = 0; i < n; i++) {
        nvmlFieldValue_t *f = &v[i];
        count("field_value", gpu);
        memset(&f->value, 0xA5, sizeof f->value);
        f->timestamp = ts;
        f->latencyUsec = 0;
        f->valueType = 3;
        if (m) { f->nvmlReturn = NVML_ERROR_NOT_SUPPORTED; continue; }
        if (f->fieldId == 0 || f->fieldId >= (unsigned int)fi_max) { f->nvmlReturn = fi_unknown_ret; continue; }
        fk_field_t *hit = NULL;
        int other_scope = 0;
        for (int j = 0; j < nfields; j++) {
            if (fields[j].gpu != gpu || fields[j].fid != f->fieldId) continue;
            if (fields[j].scope == f->scopeId) hit = &fields[j];
            else other_scope = 1;
        }
        if (!hit) {
            f->nvmlReturn = other_scope ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        f->nvmlReturn = hit->ret;
        f->latencyUsec = hit->latency;
        f->valueType = hit->vtype;
        if (hit->ret != NVML_SUCCESS) continue;
        switch (hit->vtype) {
        case 0: memcpy(&f->value.dVal, &hit->bits, sizeof(double)); break;
        case 1: f->value.uiVal = (unsigned int)hit->bits; break;
        case 2: f->value.ulVal = (unsigned long)hit->bits; break;
        case 3: f->value.ullVal = hit->bits; break;
        case 4: f->value.sllVal = (signed long long)hit->bits; break;
        case 5: f->value.siVal = (signed int)hit->bits; break;
        case 6: f->value.usVal = (unsigned short)hit->bits; break;
        default: break;
        }
    }
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetFieldValues(fk_dev *d, int n, nvmlFieldValue_t *v) { LOCKED(fields_(d, n, v)); }

static nvmlReturn_t mem_(const char *fn, fk_dev *d, nvmlMemory_t *v1, nvmlMemory_v2_t *v2) {
    fk_gpu *g; fk_mig *m;
    int r = resolve(fn, d, &g, &m);
    if (r) return r;
    if (!v1 && !v2) return NVML_ERROR_INVALID_ARGUMENT;
    if (v2 && v2->version != STRUCT_VERSION(nvmlMemory_v2_t, 2)) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (!m && !SUPPORTED(g, K_FB_TOTAL)) return NVML_ERROR_NOT_SUPPORTED;
    unsigned long long total = m ? m->mem_total : (unsigned long long)KN(g, K_FB_TOTAL);
    unsigned long long used = m ? m->mem_used : (unsigned long long)KN(g, K_FB_USED);
    unsigned long long reserved = m ? m->mem_reserved : (unsigned long long)KN(g, K_FB_RESERVED);
    if (v2) {
        v2->total = total, v2->reserved = reserved, v2->used = used;
        v2->free = total - reserved - used;
    } else {  /* v1 counts reserved memory as used */
        v1->total = total, v1->used = used + reserved, v1->free = total - reserved - used;
    }
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(fk_dev *d, nvmlMemory_t *v) { LOCKED(mem_("nvmlDeviceGetMemoryInfo", d, v, NULL)); }
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(fk_dev *d, nvmlMemory_v2_t *v) { LOCKED(mem_("nvmlDeviceGetMemoryInfo_v2", d, NULL, v)); }

static nvmlReturn_t util_(fk_dev *d, nvmlUtilization_t *u) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetUtilizationRates", d, &g, NULL);
    if (r) return r;
    if (!u) return NVML_ERROR_INVALID_ARGUMENT;
    if (g->mig_on || !SUPPORTED(g, K_UTIL_GPU)) return NVML_ERROR_NOT_SUPPORTED;
    u->gpu = (unsigned int)KN(g, K_UTIL_GPU), u->memory = (unsigned int)KN(g, K_UTIL_MEM);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetUtilizationRates(fk_dev *d, nvmlUtilization_t *u) { LOCKED(util_(d, u)); }

static nvmlReturn_t temp_v_(fk_dev *d, nvmlTemperature_v1_t *t) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetTemperatureV", d, &g, NULL);
    if (r) return r;
    if (!t) return NVML_ERROR_INVALID_ARGUMENT;
    if (t->version != STRUCT_VERSION(nvmlTemperature_v1_t, 1)) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (t->sensorType != 0) return NVML_ERROR_INVALID_ARGUMENT;  /* NVML_TEMPERATURE_GPU is the only sensor */
    if (!SUPPORTED(g, K_TEMP_GPU)) return NVML_ERROR_NOT_SUPPORTED;
    t->temperature = (int)KN(g, K_TEMP_GPU);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetTemperatureV(fk_dev *d, nvmlTemperature_v1_t *t) { LOCKED(temp_v_(d, t)); }

static nvmlReturn_t temp_(fk_dev *d, int sensor, unsigned int *t) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetTemperature", d, &g, NULL);
    if (r) return r;
    if (!t || sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    if (!SUPPORTED(g, K_TEMP_GPU)) return NVML_ERROR_NOT_SUPPORTED;
    *t = (unsigned int)KN(g, K_TEMP_GPU);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetTemperature(fk_dev *d, int sensor, unsigned int *t) { LOCKED(temp_(d, sensor, t)); }

static nvmlReturn_t clock_(fk_dev *d, int type, unsigned int *c) {
    static const int keys[] = {K_CLK_GRAPHICS, K_CLK_SM, K_CLK_MEM, K_CLK_VIDEO};
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetClockInfo", d, &g, NULL);
    if (r) return r;
    if (!c || type < 0 || type > 3) return NVML_ERROR_INVALID_ARGUMENT;
    if (!SUPPORTED(g, keys[type])) return NVML_ERROR_NOT_SUPPORTED;
    *c = (unsigned int)KN(g, keys[type]);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetClockInfo(fk_dev *d, int type, unsigned int *c) { LOCKED(clock_(d, type, c)); }

static nvmlReturn_t codec_(const char *fn, fk_dev *d, int k, int kp, unsigned int *u, unsigned int *p) {
    fk_gpu *g;
    int r = resolve(fn, d, &g, NULL);
    if (r) return r;
    if (!u || !p) return NVML_ERROR_INVALID_ARGUMENT;
    if (!SUPPORTED(g, k)) return NVML_ERROR_NOT_SUPPORTED;
    *u = (unsigned int)KN(g, k), *p = (unsigned int)KN(g, kp);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetEncoderUtilization(fk_dev *d, unsigned int *u, unsigned int *p) { LOCKED(codec_("nvmlDeviceGetEncoderUtilization", d, K_ENC, K_ENC_PERIOD, u, p)); }
nvmlReturn_t nvmlDeviceGetDecoderUtilization(fk_dev *d, unsigned int *u, unsigned int *p) { LOCKED(codec_("nvmlDeviceGetDecoderUtilization", d, K_DEC, K_DEC_PERIOD, u, p)); }
nvmlReturn_t nvmlDeviceGetPowerUsage(fk_dev *d, unsigned int *p) { LOCKED(uint_knob("nvmlDeviceGetPowerUsage", d, K_POWER_USAGE, p)); }
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(fk_dev *d, unsigned int *p) { LOCKED(uint_knob("nvmlDeviceGetEnforcedPowerLimit", d, K_POWER_LIMIT, p)); }
nvmlReturn_t nvmlDeviceGetFanSpeed(fk_dev *d, unsigned int *p) { LOCKED(uint_knob("nvmlDeviceGetFanSpeed", d, K_FAN, p)); }
nvmlReturn_t nvmlDeviceGetPerformanceState(fk_dev *d, unsigned int *p) { LOCKED(uint_knob("nvmlDeviceGetPerformanceState", d, K_PSTATE, p)); }

static nvmlReturn_t ull_knob(const char *fn, fk_dev *d, int k, unsigned long long *out) {
    fk_gpu *g;
    int r = resolve(fn, d, &g, NULL);
    if (r) return r;
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (!SUPPORTED(g, k)) return NVML_ERROR_NOT_SUPPORTED;
    *out = (unsigned long long)KN(g, k);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(fk_dev *d, unsigned long long *v) { LOCKED(ull_knob("nvmlDeviceGetCurrentClocksEventReasons", d, K_CLOCK_REASONS, v)); }
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(fk_dev *d, unsigned long long *v) { LOCKED(ull_knob("nvmlDeviceGetCurrentClocksThrottleReasons", d, K_CLOCK_REASONS, v)); }
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(fk_dev *d, unsigned long long *v) { LOCKED(ull_knob("nvmlDeviceGetTotalEnergyConsumption", d, K_ENERGY, v)); }

/* A field's value, for the older per-reading calls (0 when not set). */
static unsigned long long field_bits(int gpu, unsigned int fid, int *ret) {
    for (int j = 0; j < nfields; j++)
        if (fields[j].gpu == gpu && fields[j].fid == fid && fields[j].scope == 0) {
            *ret = fields[j].ret;
            return fields[j].bits;
        }
    *ret = NVML_ERROR_NOT_SUPPORTED;
    return 0;
}

static nvmlReturn_t ecc_(fk_dev *d, int type, int counter, unsigned long long *v) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetTotalEccErrors", d, &g, NULL);
    if (r) return r;
    if (!v || type < 0 || type > 1 || counter < 0 || counter > 1) return NVML_ERROR_INVALID_ARGUMENT;
    int ret;
    /* NVML_FI_DEV_ECC_{SBE,DBE}_{VOL,AGG}_TOTAL: 3, 4, 5, 6 */
    *v = field_bits(gpu_index(g), (unsigned int)(3 + type + 2 * counter), &ret);
    return ret;
}
nvmlReturn_t nvmlDeviceGetTotalEccErrors(fk_dev *d, int type, int counter, unsigned long long *v) { LOCKED(ecc_(d, type, counter, v)); }

static nvmlReturn_t remapped_(fk_dev *d, unsigned int *c, unsigned int *u, unsigned int *p, unsigned int *f) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetRemappedRows", d, &g, NULL);
    if (r) return r;
    if (!c || !u || !p || !f) return NVML_ERROR_INVALID_ARGUMENT;
    int ret, gpu = gpu_index(g);
    *c = (unsigned int)field_bits(gpu, 142, &ret);
    *u = (unsigned int)field_bits(gpu, 143, &ret);
    *p = (unsigned int)field_bits(gpu, 144, &ret);
    *f = (unsigned int)field_bits(gpu, 145, &ret);
    return ret;
}
nvmlReturn_t nvmlDeviceGetRemappedRows(fk_dev *d, unsigned int *c, unsigned int *u, unsigned int *p, unsigned int *f) { LOCKED(remapped_(d, c, u, p, f)); }

static nvmlReturn_t pcie_(fk_dev *d, int counter, unsigned int *v) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetPcieThroughput", d, &g, NULL);
    if (r) return r;
    if (!v || counter < 0 || counter > 1) return NVML_ERROR_INVALID_ARGUMENT;
    int k = counter == 0 ? K_PCIE_TX : K_PCIE_RX;
    if (!SUPPORTED(g, k)) return NVML_ERROR_NOT_SUPPORTED;
    if (pcie_delay_us > 0) {
        struct timespec d = {pcie_delay_us / 1000000, (long)(pcie_delay_us % 1000000) * 1000L};
        nanosleep(&d, NULL);
    }
    *v = (unsigned int)KN(g, k);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPcieThroughput(fk_dev *d, int counter, unsigned int *v) { LOCKED(pcie_(d, counter, v)); }

/* ---- MIG -------------------------------------------------------------------------------- */

static nvmlReturn_t mig_mode_(fk_dev *d, unsigned int *cur, unsigned int *pending) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetMigMode", d, &g, NULL);
    if (r) return r;
    if (!cur || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    if (!SUPPORTED(g, K_MIG_CAPABLE) || !KN(g, K_MIG_CAPABLE)) return NVML_ERROR_NOT_SUPPORTED;
    *cur = *pending = (unsigned int)g->mig_on;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMigMode(fk_dev *d, unsigned int *cur, unsigned int *pending) { LOCKED(mig_mode_(d, cur, pending)); }

static nvmlReturn_t max_mig_(fk_dev *d, unsigned int *n) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetMaxMigDeviceCount", d, &g, NULL);
    if (r) return r;
    if (!n) return NVML_ERROR_INVALID_ARGUMENT;
    *n = g->mig_on ? MIG_SLOTS : 0;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(fk_dev *d, unsigned int *n) { LOCKED(max_mig_(d, n)); }

static nvmlReturn_t mig_by_index_(fk_dev *d, unsigned int slot, fk_dev **out) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetMigDeviceHandleByIndex", d, &g, NULL);
    if (r) return r;
    if (!out || !g->mig_on || slot >= MIG_SLOTS) return NVML_ERROR_INVALID_ARGUMENT;
    for (int k = 0; k < nmig; k++)
        if (migs[k].alive && migs[k].gpu == gpu_index(g) && migs[k].slot == (int)slot) {
            *out = &migs[k].h;
            return NVML_SUCCESS;
        }
    return NVML_ERROR_NOT_FOUND;
}
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(fk_dev *d, unsigned int i, fk_dev **out) { LOCKED(mig_by_index_(d, i, out)); }

static nvmlReturn_t instance_id_(const char *fn, fk_dev *d, unsigned int *id, int compute) {
    fk_gpu *g; fk_mig *m;
    int r = resolve(fn, d, &g, &m);
    if (r) return r;
    if (!id) return NVML_ERROR_INVALID_ARGUMENT;
    if (!m) return NVML_ERROR_NOT_SUPPORTED;  /* not a MIG device handle */
    *id = compute ? m->ci : m->gi;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetGpuInstanceId(fk_dev *d, unsigned int *id) { LOCKED(instance_id_("nvmlDeviceGetGpuInstanceId", d, id, 0)); }
nvmlReturn_t nvmlDeviceGetComputeInstanceId(fk_dev *d, unsigned int *id) { LOCKED(instance_id_("nvmlDeviceGetComputeInstanceId", d, id, 1)); }

/* ---- processes ---------------------------------------------------------------------------- */

static nvmlReturn_t procs_(const char *fn, fk_dev *d, unsigned int *n, void *infos, int graphics, size_t size) {
    fk_gpu *g; fk_mig *m;
    int r = resolve(fn, d, &g, &m);
    if (r) return r;
    if (!n) return NVML_ERROR_INVALID_ARGUMENT;
    if (!m && g->mig_on && !root) return NVML_ERROR_NO_PERMISSION;
    int gpu = gpu_index(g);
    unsigned int have = 0;
    for (int i = 0; i < nprocs; i++) {
        fk_proc *p = &procs[i];
        if (p->gpu != gpu || p->graphics != graphics) continue;
        if (m && (p->gi != m->gi || p->ci != m->ci)) continue;
        have++;
    }
    if (*n < have || (!infos && have)) {
        *n = have;
        count("process_size_query", gpu);
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int k = 0;
    for (int i = 0; i < nprocs && k < have; i++) {
        fk_proc *p = &procs[i];
        if (p->gpu != gpu || p->graphics != graphics) continue;
        if (m && (p->gi != m->gi || p->ci != m->ci)) continue;
        unsigned char *slot = (unsigned char *)infos + k * size;
        if (size == sizeof(nvmlProcessInfo_535_t)) {
            nvmlProcessInfo_535_t *o = (nvmlProcessInfo_535_t *)slot;
            *o = (nvmlProcessInfo_535_t){p->pid, p->mem, g->mig_on ? p->gi : 0xFFFFFFFFU,
                                         g->mig_on ? p->ci : 0xFFFFFFFFU, 0};
        } else {
            nvmlProcessInfo_v2_t *o = (nvmlProcessInfo_v2_t *)slot;
            *o = (nvmlProcessInfo_v2_t){p->pid, p->mem, g->mig_on ? p->gi : 0xFFFFFFFFU,
                                        g->mig_on ? p->ci : 0xFFFFFFFFU};
        }
        k++;
    }
    *n = have;
    return NVML_SUCCESS;
}
#define V3 ((size_t)proc_struct_v3)
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(fk_dev *d, unsigned int *n, void *i) { LOCKED(procs_("nvmlDeviceGetComputeRunningProcesses_v3", d, n, i, 0, V3)); }
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(fk_dev *d, unsigned int *n, void *i) { LOCKED(procs_("nvmlDeviceGetGraphicsRunningProcesses_v3", d, n, i, 1, V3)); }
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(fk_dev *d, unsigned int *n, void *i) { LOCKED(procs_("nvmlDeviceGetComputeRunningProcesses_v2", d, n, i, 0, sizeof(nvmlProcessInfo_v2_t))); }
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(fk_dev *d, unsigned int *n, void *i) { LOCKED(procs_("nvmlDeviceGetGraphicsRunningProcesses_v2", d, n, i, 1, sizeof(nvmlProcessInfo_v2_t))); }

static nvmlReturn_t putil_(fk_dev *d, nvmlProcessUtilizationSample_t *u, unsigned int *n, unsigned long long last) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetProcessUtilization", d, &g, NULL);
    if (r) return r;
    if (!n) return NVML_ERROR_INVALID_ARGUMENT;
    int gpu = gpu_index(g);
    unsigned int have = 0;
    for (int i = 0; i < nputils; i++) have += putils[i].gpu == gpu && putils[i].ts > last;
    if (!have) return NVML_ERROR_NOT_FOUND;
    if (!u || *n < have) {
        *n = have;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int k = 0;
    for (int i = 0; i < nputils; i++) {
        fk_putil *p = &putils[i];
        if (p->gpu != gpu || p->ts <= last) continue;
        u[k++] = (nvmlProcessUtilizationSample_t){p->pid, p->ts, p->sm, p->mem, p->enc, p->dec};
    }
    *n = have;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetProcessUtilization(fk_dev *d, nvmlProcessUtilizationSample_t *u, unsigned int *n, unsigned long long last) { LOCKED(putil_(d, u, n, last)); }

/* ---- events -------------------------------------------------------------------------------- */

static int set_index(void *p) {
    for (int i = 0; i < MAXSETS; i++)
        if (p == &sets[i] && sets[i].alive) return i;
    return -1;
}

static nvmlReturn_t set_create_(fk_set_t **out) {
    int r = host_call("nvmlEventSetCreate");
    if (r) return r;
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < MAXSETS; i++)
        if (!sets[i].alive) {
            memset(&sets[i], 0, sizeof sets[i]);
            sets[i].alive = 1;
            *out = &sets[i];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_UNKNOWN;
}
nvmlReturn_t nvmlEventSetCreate(fk_set_t **out) { LOCKED(set_create_(out)); }

static nvmlReturn_t supported_events_(fk_dev *d, unsigned long long *types) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceGetSupportedEventTypes", d, &g, NULL);
    if (r) return r;
    if (!types) return NVML_ERROR_INVALID_ARGUMENT;
    *types = SUPPORTED(g, K_EVENTS_SUPPORTED) ? (unsigned long long)KN(g, K_EVENTS_SUPPORTED) : 0;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetSupportedEventTypes(fk_dev *d, unsigned long long *t) { LOCKED(supported_events_(d, t)); }

static nvmlReturn_t register_(fk_dev *d, unsigned long long types, fk_set_t *s) {
    fk_gpu *g;
    int r = resolve("nvmlDeviceRegisterEvents", d, &g, NULL);
    if (r) return r;
    int i = set_index(s);
    if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned long long ok = SUPPORTED(g, K_EVENTS_SUPPORTED) ? (unsigned long long)KN(g, K_EVENTS_SUPPORTED) : 0;
    if (types & ~ok) return NVML_ERROR_NOT_SUPPORTED;
    sets[i].reg[gpu_index(g)] |= types;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceRegisterEvents(fk_dev *d, unsigned long long types, fk_set_t *s) { LOCKED(register_(d, types, s)); }

/* Never blocks: an event registered in this set, else NVML_ERROR_TIMEOUT at once. */
static nvmlReturn_t wait_(fk_set_t *s, nvmlEventData_t *data, unsigned int timeout_ms) {
    (void)timeout_ms;
    int r = host_call("nvmlEventSetWait_v2");
    if (r) return r;
    int i = set_index(s);
    if (i < 0 || !data) return NVML_ERROR_INVALID_ARGUMENT;
    for (int e = 0; e < nevents; e++) {
        fk_event_t *ev = &events[e];
        if (ev->gpu < 0 || ev->gpu >= MAXG || !(sets[i].reg[ev->gpu] & ev->type)) continue;
        *data = (nvmlEventData_t){&gpus[ev->gpu].h, ev->type, ev->data, ev->gi, ev->ci};
        memmove(&events[e], &events[e + 1], (size_t)(nevents - e - 1) * sizeof events[0]);
        nevents--;
        return NVML_SUCCESS;
    }
    return NVML_ERROR_TIMEOUT;
}
nvmlReturn_t nvmlEventSetWait_v2(fk_set_t *s, nvmlEventData_t *data, unsigned int t) { LOCKED(wait_(s, data, t)); }

static nvmlReturn_t set_free_(fk_set_t *s) {
    int r = host_call("nvmlEventSetFree");
    if (r) return r;
    int i = set_index(s);
    if (i < 0) return NVML_ERROR_INVALID_ARGUMENT;
    sets[i].alive = 0;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlEventSetFree(fk_set_t *s) { LOCKED(set_free_(s)); }

/* ---- GPM ------------------------------------------------------------------------------------- */

static int sample_ok(fk_sample *s) {
    return s >= samples && s < samples + MAXSAMPLES && s->magic == MAGIC && s->alive;
}

static nvmlReturn_t gpm_support_(fk_dev *d, nvmlGpmSupport_t *s) {
    fk_gpu *g;
    int r = resolve("nvmlGpmQueryDeviceSupport", d, &g, NULL);
    if (r) return r;
    if (!s) return NVML_ERROR_INVALID_ARGUMENT;
    if (s->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    s->isSupportedDevice = SUPPORTED(g, K_GPM) && KN(g, K_GPM) != 0;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpmQueryDeviceSupport(fk_dev *d, nvmlGpmSupport_t *s) { LOCKED(gpm_support_(d, s)); }

static nvmlReturn_t gpm_alloc_(fk_sample **out) {
    int r = host_call("nvmlGpmSampleAlloc");
    if (r) return r;
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < MAXSAMPLES; i++)
        if (!samples[i].alive) {
            samples[i] = (fk_sample){MAGIC, 1, 0, -1, -1, 0};
            *out = &samples[i];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_UNKNOWN;
}
nvmlReturn_t nvmlGpmSampleAlloc(fk_sample **out) { LOCKED(gpm_alloc_(out)); }

static nvmlReturn_t gpm_free_(fk_sample *s) {
    int r = host_call("nvmlGpmSampleFree");
    if (r) return r;
    if (!sample_ok(s)) return NVML_ERROR_INVALID_ARGUMENT;
    s->alive = 0;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpmSampleFree(fk_sample *s) { LOCKED(gpm_free_(s)); }

static nvmlReturn_t gpm_get_(const char *fn, fk_dev *d, int gi, fk_sample *s) {
    fk_gpu *g;
    int r = resolve(fn, d, &g, NULL);
    if (r) return r;
    if (!sample_ok(s)) return NVML_ERROR_INVALID_ARGUMENT;
    if (!SUPPORTED(g, K_GPM) || !KN(g, K_GPM)) return NVML_ERROR_NOT_SUPPORTED;
    if ((gi >= 0) != (g->mig_on != 0)) return NVML_ERROR_INVALID_ARGUMENT;
    if (gi >= 0) {
        int found = 0;
        for (int k = 0; k < nmig; k++)
            found |= migs[k].alive && migs[k].gpu == gpu_index(g) && migs[k].gi == (unsigned int)gi;
        if (!found) return NVML_ERROR_INVALID_ARGUMENT;
    }
    s->filled = 1, s->gpu = gpu_index(g), s->gi = gi, s->t_ns = now_ns();
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpmSampleGet(fk_dev *d, fk_sample *s) { LOCKED(gpm_get_("nvmlGpmSampleGet", d, -1, s)); }
nvmlReturn_t nvmlGpmMigSampleGet(fk_dev *d, unsigned int gi, fk_sample *s) { LOCKED(gpm_get_("nvmlGpmMigSampleGet", d, (int)gi, s)); }

static nvmlReturn_t gpm_metrics_(nvmlGpmMetricsGet_t *mg) {
    int r = host_call("nvmlGpmMetricsGet");
    if (r) return r;
    if (!mg) return NVML_ERROR_INVALID_ARGUMENT;
    if (mg->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    fk_sample *a = mg->sample1, *b = mg->sample2;
    if (!sample_ok(a) || !sample_ok(b) || a == b || !a->filled || !b->filled) return NVML_ERROR_INVALID_ARGUMENT;
    if (a->gpu != b->gpu || a->gi != b->gi || b->t_ns <= a->t_ns) return NVML_ERROR_INVALID_ARGUMENT;
    if (mg->numMetrics == 0 || mg->numMetrics > 333) return NVML_ERROR_INVALID_ARGUMENT;
    int short_pair = b->t_ns - a->t_ns < 100000000LL;
    if (short_pair) count("gpm_short_pair", a->gpu);
    for (unsigned int i = 0; i < mg->numMetrics; i++) {
        nvmlGpmMetric_t *m = &mg->metrics[i];
        m->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        m->value = 0.0;
        for (int j = 0; j < ngpmv; j++) {
            fk_gpmv *v = &gpmvs[j];
            if (v->gpu != a->gpu || v->gi != a->gi || v->metric != m->metricId) continue;
            m->nvmlReturn = v->ret;
            m->value = short_pair ? 0.0 : v->value;
        }
    }
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *mg) { LOCKED(gpm_metrics_(mg)); }
