// Package restoretest builds archives for the restorer's tests without the
// capture and archiver: it reads a source table's rows with their commit
// times and transaction ids and writes them as segments plus a catalog,
// the way the archiver does. It also holds what the restore and
// cmd/restorer tests share: one cluster and fixture per test binary
// (Shared), the oracle check of a restored target (Compare) and a target's
// state for "untouched" checks (TargetState).
package restoretest
