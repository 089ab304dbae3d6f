// Package imagepath resolves paths inside an image's root filesystem the way
// the kernel walks them inside a container: absolute link targets start
// again at the root, ".." stops at the root, and more than 40 links fail
// like ELOOP. Nothing outside the root is ever named.
//
// The static profiler (optimize/profile) resolves every path it follows with
// it; the run profiler (optimize/profile/run) resolves the ELF interpreter of
// the programs it saw executed.
package imagepath
