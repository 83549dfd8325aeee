package main

// crashEnv names the archiver's crash failpoint, for tests only:
// "<stage>:<n>" makes the process exit with status 137 (as if killed with
// SIGKILL) the n-th time the archiver reaches the stage (archive.Stages,
// archive.MergeStages), so crash tests can stop it at exact points of the
// durability sequence and of a merge.
// Only a binary built with -tags failpoints reads it (crash.go); in the
// default build nothing uses this constant, so the production binary does
// not contain the name.
const crashEnv = "TIDEMARK_ARCHIVER_CRASH_AT"
