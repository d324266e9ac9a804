"""The demo, the dose sweep and the benchmarks: applications of the library, imported only by
the command line."""
