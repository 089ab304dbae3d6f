// Package elftest builds small synthetic ELF objects for the tests of the
// profilers and of the ELF reader: a header, program headers (PT_INTERP,
// one PT_LOAD, PT_DYNAMIC) and a dynamic section with the strings a loader
// reads. The objects hold no code.
package elftest
