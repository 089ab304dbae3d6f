// Package elfhdr reads what the kernel and the dynamic loader read from an
// ELF object: the file header, the program headers, PT_INTERP and the
// PT_DYNAMIC entries with their strings (DT_NEEDED, DT_RPATH, DT_RUNPATH,
// DT_SONAME).
//
// Section headers are never read, so stripped and sstrip'ed binaries work
// the same, and every read is bounded before it is made: the program header
// table at 64 KiB, the interpreter path at 4 KiB, the dynamic section at
// 1 MiB, one string at 4 KiB, DT_NEEDED at 1024 entries. A malformed file
// gives an error, never a large allocation.
//
// The static profiler (optimize/profile) follows programs and libraries with
// it; the run profiler (optimize/profile/run) finds the interpreter of the
// programs it saw executed.
package elfhdr
