// Cost of shmbox::Segment's safety against the textbook calls it wraps, in one run.
//
//   textbook: shm_open(O_CREAT|O_EXCL) + ftruncate + mmap   (pages allocated lazily, SIGBUS if /dev/shm fills)
//   reserved: the same with posix_fallocate                  (what Segment does to rule the SIGBUS out)
//   Segment:  O_TMPFILE + fallocate + fchmod + mmap + linkat (also: never visible half-made)
//
// Each figure is repeated; the report gives median and p99 over the repetitions.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "shmbox/segment.hpp"

namespace {

const std::string bench_name = "shmbox-bench-" + std::to_string(::getpid());

double p99(const std::vector<double>& values) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const auto index = static_cast<std::size_t>(0.99 * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

void textbook_create(benchmark::State& state, bool reserve) {
  const auto size = static_cast<off_t>(state.range(0));
  const std::string posix_name = "/" + bench_name;
  for (auto _ : state) {
    const int fd = ::shm_open(posix_name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0 || (reserve ? ::posix_fallocate(fd, 0, size) != 0 : ::ftruncate(fd, size) != 0)) {
      state.SkipWithError("shm_open/size failed");
      break;
    }
    void* base = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    static_cast<volatile char*>(base)[0] = 1;
    benchmark::DoNotOptimize(base);
    ::munmap(base, static_cast<std::size_t>(size));
    ::close(fd);
    ::shm_unlink(posix_name.c_str());
  }
}

void BM_TextbookCreate(benchmark::State& state) { textbook_create(state, false); }
void BM_TextbookCreateReserved(benchmark::State& state) { textbook_create(state, true); }

void BM_SegmentCreate(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto segment = shmbox::Segment::create(bench_name, size);
    if (!segment) {
      state.SkipWithError(segment.error().message().c_str());
      break;
    }
    segment->writable_bytes().value()[0] = std::byte{1};
    benchmark::DoNotOptimize(segment->bytes().data());
    (void)shmbox::Segment::remove(bench_name);
  }
}

void BM_TextbookOpen(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto created = shmbox::Segment::create(bench_name, size);
  if (!created) return state.SkipWithError(created.error().message().c_str());
  const std::string posix_name = "/" + bench_name;
  for (auto _ : state) {
    const int fd = ::shm_open(posix_name.c_str(), O_RDONLY, 0);
    void* base = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return state.SkipWithError("shm_open/mmap failed");
    // A copy: DoNotOptimize's asm may write its operand back, and the page is read-only.
    char first = static_cast<volatile const char*>(base)[0];
    benchmark::DoNotOptimize(first);
    ::munmap(base, size);
    ::close(fd);
  }
  (void)shmbox::Segment::remove(bench_name);
}

void BM_SegmentOpen(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto created = shmbox::Segment::create(bench_name, size);
  if (!created) return state.SkipWithError(created.error().message().c_str());
  for (auto _ : state) {
    auto segment = shmbox::Segment::open(bench_name, shmbox::Access::read_only);
    if (!segment) return state.SkipWithError(segment.error().message().c_str());
    std::byte first = static_cast<const volatile std::byte*>(segment->bytes().data())[0];
    benchmark::DoNotOptimize(first);
  }
  (void)shmbox::Segment::remove(bench_name);
}

void configure(benchmark::internal::Benchmark* bench) {
  bench->Arg(4 << 10)->Arg(1 << 20)->Repetitions(15)->ReportAggregatesOnly(true)->ComputeStatistics("p99", p99);
}

BENCHMARK(BM_TextbookCreate)->Apply(configure);
BENCHMARK(BM_TextbookCreateReserved)->Apply(configure);
BENCHMARK(BM_SegmentCreate)->Apply(configure);
BENCHMARK(BM_TextbookOpen)->Apply(configure);
BENCHMARK(BM_SegmentOpen)->Apply(configure);

}  // namespace

BENCHMARK_MAIN();
