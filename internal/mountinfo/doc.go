// Package mountinfo decodes the fields of /proc/PID/mountinfo that the run
// profiler (optimize/profile/run) and the benchmark builder
// (benchmarks/build) read to find what is mounted under a directory.
package mountinfo
