// Package bench measures lrmc's kernels on this machine: GEMM throughput
// next to a naive triple loop and gonum's Sgemm on the same shapes, and the
// prefill, decode and calibration-capture speed of synthetic models of real
// shapes.
//
// Every number is measured in the same run as its comparison: the
// development machines are shared and drift by tens of percent over minutes,
// so a ratio against a baseline taken seconds apart means more than an
// absolute number. Repetitions are summarised by their median, and each
// result also carries the process's CPU time, which a descheduled process
// does not accumulate. Nothing here asserts a speed; callers print what
// was measured.
package bench
