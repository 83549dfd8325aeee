// Package deploytest checks Tidemark's deployment artefacts under deploy/:
// every manifest parses; the Kubernetes workloads keep their operational
// contract (probes, replica counts, hardening, secrets only through
// secretKeyRef); the configuration names flags the programs really have; the
// NATS, compose and systemd files are consistent; and every metric the
// Grafana dashboard and the Prometheus alert rules query is one the programs
// really export, as collected from their Go source with go/parser.
//
// The package holds tests only: go test ./deploy/...
package deploytest
