// Package mountinfo reads /proc/PID/mountinfo: Under lists what is mounted
// under a directory, for the run profiler (optimize/profile/run), the
// benchmark builder (benchmarks/build) and the podman stores
// (internal/podman), each of which removes a tree only when nothing is
// mounted inside it.
package mountinfo
