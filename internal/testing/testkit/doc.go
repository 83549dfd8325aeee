// Package testkit holds the small helpers Tidemark's tests and test
// programs share, so each exists once: polling until a condition holds
// (WaitFor), free loopback ports (FreePort, FreeAddr), child processes with
// their output kept in a file or in memory (Proc), a goroutine-safe log
// buffer (Buffer, Tail), a process's peak memory (PeakRSS) and a TestMain
// that releases what a package's tests shared (Main).
//
// It imports only the standard library, so every package under
// internal/testing and every _test.go file can use it. Functions taking a
// testing.TB fail the test instead of returning an error; those whose
// names end in T are the test forms of a function of the same name.
package testkit
