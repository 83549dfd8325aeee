// Package storetest is the behaviour suite every objstore backend passes:
// a backend's tests call RunConformance with a function that returns a
// fresh, empty store.
package storetest
