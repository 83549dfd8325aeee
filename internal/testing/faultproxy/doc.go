// Package faultproxy is a loopback TCP proxy with faults that can be
// switched at run time: pass, delay, drop, blackhole and reset. The chaos
// suite puts one between each Tidemark component and the server it talks
// to (PostgreSQL, NATS) to cut, stall, slow down or reset the link.
package faultproxy
