// Package version is lrmc's version, stamped into provenance and printed by
// `lrmc version`.
package version

// Version is lrmc's release. Outputs record it; cache keys do not (op
// versions do that job per op).
const Version = "0.2.0-dev"
