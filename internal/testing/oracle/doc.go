// Package oracle computes what a point-in-time restore must contain — the
// source table's rows whose transactions committed at or before T — and
// compares a restored table with it, byte for byte. It is a test aid.
package oracle
