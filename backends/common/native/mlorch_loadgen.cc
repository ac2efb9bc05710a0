// mlorch's native LoadGen issue path: a C ABI over LoadGen's C++ API, loaded with ctypes.
//
// LoadGen's Python bindings turn every issued sample into Python ints and every completion into
// a pybind object: about 0.4 us per sample, which a 510 M-sample Offline query (8 GPUs, 660 s)
// cannot afford. Here LoadGen hands the issue callback a pointer to its own QuerySample array
// (ids and QSL indices, alive until the test ends), the harness slices it without touching a
// sample, and completes a whole batch in one call that builds the responses in C++.
//
// Compiled together with the LoadGen sources of the pinned mlcommons-loadgen release
// (backends/common/native/build.py), so this library carries its own LoadGen of that version.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "loadgen.h"
#include "query_sample.h"
#include "query_sample_library.h"
#include "system_under_test.h"
#include "test_settings.h"

namespace {

using IssueFn = void (*)(uintptr_t client, const mlperf::QuerySample* samples, size_t count);
using FlushFn = void (*)(uintptr_t client);
using IndicesFn = void (*)(uintptr_t client, const mlperf::QuerySampleIndex* indices,
                           size_t count);

class CallbackSut : public mlperf::SystemUnderTest {
 public:
  CallbackSut(std::string name, uintptr_t client, IssueFn issue, FlushFn flush)
      : name_(std::move(name)), client_(client), issue_(issue), flush_(flush) {}
  const std::string& Name() override { return name_; }
  void IssueQuery(const std::vector<mlperf::QuerySample>& samples) override {
    issue_(client_, samples.data(), samples.size());
  }
  void FlushQueries() override { flush_(client_); }

 private:
  std::string name_;
  uintptr_t client_;
  IssueFn issue_;
  FlushFn flush_;
};

class CallbackQsl : public mlperf::QuerySampleLibrary {
 public:
  CallbackQsl(std::string name, uintptr_t client, size_t total, size_t performance,
              IndicesFn load, IndicesFn unload)
      : name_(std::move(name)),
        client_(client),
        total_(total),
        performance_(performance),
        load_(load),
        unload_(unload) {}
  const std::string& Name() override { return name_; }
  size_t TotalSampleCount() override { return total_; }
  size_t PerformanceSampleCount() override { return performance_; }
  void LoadSamplesToRam(const std::vector<mlperf::QuerySampleIndex>& samples) override {
    load_(client_, samples.data(), samples.size());
  }
  void UnloadSamplesFromRam(const std::vector<mlperf::QuerySampleIndex>& samples) override {
    unload_(client_, samples.data(), samples.size());
  }

 private:
  std::string name_;
  uintptr_t client_;
  size_t total_;
  size_t performance_;
  IndicesFn load_;
  IndicesFn unload_;
};

// Responses are built in chunks on the stack: no allocation per call, LoadGen copies what it
// logs before QuerySamplesComplete returns.
constexpr size_t kChunk = 512;

// The TestSettings fields a run may change after user.conf, by name: exactly one pointer is set
// for a known name (by the field's type), none for an unknown one. Setter and getter share it.
struct SettingsField {
  double* real = nullptr;
  uint64_t* count = nullptr;
  bool* flag = nullptr;
};

SettingsField find_field(mlperf::TestSettings* s, const std::string& name) {
  SettingsField f;
  if (name == "offline_expected_qps") f.real = &s->offline_expected_qps;
  if (name == "server_target_qps") f.real = &s->server_target_qps;
  if (name == "single_stream_expected_latency_ns") f.real = &s->single_stream_expected_latency_ns;
  if (name == "multi_stream_expected_latency_ns") f.real = &s->multi_stream_expected_latency_ns;
  if (name == "accuracy_log_probability") f.real = &s->accuracy_log_probability;
  if (name == "min_duration_ms") f.count = &s->min_duration_ms;
  if (name == "min_query_count") f.count = &s->min_query_count;
  if (name == "accuracy_log_sampling_target") f.count = &s->accuracy_log_sampling_target;
  if (name == "server_coalesce_queries") f.flag = &s->server_coalesce_queries;
  return f;
}

}  // namespace

extern "C" {

// The ABI version the Python side checks before it calls anything else.
int mlorch_abi_version() { return 1; }

void* mlorch_settings_new(int scenario, int mode) {
  auto* settings = new mlperf::TestSettings();
  settings->scenario = static_cast<mlperf::TestScenario>(scenario);
  settings->mode = static_cast<mlperf::TestMode>(mode);
  return settings;
}

void mlorch_settings_free(void* settings) { delete static_cast<mlperf::TestSettings*>(settings); }

int mlorch_settings_from_config(void* settings, const char* path, const char* model,
                                const char* scenario) {
  return static_cast<mlperf::TestSettings*>(settings)->FromConfig(path, model, scenario, 1);
}

// Sets one of the TestSettings fields a run may change after user.conf; -1 for a name this
// library does not know (the Python side names it).
int mlorch_settings_set(void* handle, const char* field, double value) {
  const SettingsField f = find_field(static_cast<mlperf::TestSettings*>(handle), field);
  if (f.real != nullptr) {
    *f.real = value;
  } else if (f.count != nullptr) {
    *f.count = static_cast<uint64_t>(value);
  } else if (f.flag != nullptr) {
    *f.flag = value != 0.0;
  } else {
    return -1;
  }
  return 0;
}

// Reads back a field (the same names); returns 0 and sets *ok = 0 when unknown.
double mlorch_settings_get(void* handle, const char* field, int* ok) {
  const SettingsField f = find_field(static_cast<mlperf::TestSettings*>(handle), field);
  *ok = 1;
  if (f.real != nullptr) return *f.real;
  if (f.count != nullptr) return static_cast<double>(*f.count);
  if (f.flag != nullptr) return *f.flag ? 1.0 : 0.0;
  *ok = 0;
  return 0.0;
}

// Runs one test to its end (blocking). ctypes releases the GIL for the call; the callbacks
// take it again.
void mlorch_start_test(void* settings, const char* outdir, const char* audit_config,
                       int enable_trace, const char* name, size_t total, size_t performance,
                       uintptr_t client, IssueFn issue, FlushFn flush, IndicesFn load,
                       IndicesFn unload) {
  CallbackSut sut(name, client, issue, flush);
  CallbackQsl qsl(name, client, total, performance, load, unload);
  mlperf::LogSettings log;
  log.log_output.outdir = outdir;
  log.log_output.copy_summary_to_stdout = false;
  log.enable_trace = enable_trace != 0;
  mlperf::StartTest(&sut, &qsl, *static_cast<mlperf::TestSettings*>(settings), log,
                    audit_config);
}

// Completes `count` samples: the id of sample i is the uint64 at ids + i * id_stride bytes, its
// response data the `data_size` bytes at data + i * data_size. Thread-safe (LoadGen's
// QuerySamplesComplete is); several completion threads may call it at once.
void mlorch_complete(const char* ids, size_t id_stride, const char* data, size_t data_size,
                     size_t count) {
  alignas(64) mlperf::QuerySampleResponse chunk[kChunk] = {};
  for (size_t start = 0; start < count; start += kChunk) {
    const size_t n = count - start < kChunk ? count - start : kChunk;
    for (size_t i = 0; i < n; ++i) {
      const size_t k = start + i;
      uint64_t id;
      std::memcpy(&id, ids + k * id_stride, sizeof id);
      chunk[i].id = id;
      chunk[i].data = reinterpret_cast<uintptr_t>(data + k * data_size);
      chunk[i].size = data_size;
      chunk[i].n_tokens = 0;
    }
    mlperf::QuerySamplesComplete(chunk, n);
  }
}

}  // extern "C"
